//! A server killed while deliveries stream in over three servers: every delivery a server
//! answered with a 2xx has its build, and every build ends; a delivery that got no answer is
//! sent again to another server, as GitHub's redelivery would, and builds once.

use super::cluster::{Cluster, Shape};
use crate::serve::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const PIPELINE: &str =
    "language: shell\nimage: slipway-test/busybox:latest\nscript: echo \"ran-$((6 * 7))\"\n";

const DELIVERIES: usize = 60;

#[test]
fn a_server_killed_while_deliveries_arrive_loses_no_accepted_delivery() {
    let shape = Shape {
        servers: 3,
        server_workers: 1,
        workers: 1,
        worker_workers: 2,
        lease_seconds: 2,
    };
    let Some(cluster) = Cluster::start(PIPELINE, shape) else {
        return;
    };
    let shas = cluster.commits(DELIVERIES);
    let victim = cluster.servers[1].pid();
    let killed = AtomicBool::new(false);
    // Three senders, delivery n to server n % 3; the main thread kills server 1 a third of the
    // way through, while they keep sending.
    let answers: Vec<(usize, u16, String)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..3)
            .map(|t| {
                let (cluster, shas, killed) = (&cluster, &shas, &killed);
                s.spawn(move || {
                    let mut out = Vec::new();
                    for n in (t..DELIVERIES).step_by(3) {
                        let via = n % 3;
                        let body = cluster.push_body(&shas[n], n);
                        let id = format!("push-{n}");
                        let (status, text) = try_deliver(&cluster.servers[via].url(), &id, &body);
                        out.push((n, status, text));
                        if n == DELIVERIES / 3 {
                            killed.store(true, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    out
                })
            })
            .collect();
        while !killed.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        sigkill(victim);
        senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let accepted: BTreeMap<usize, i64> = answers
        .iter()
        .filter(|(_, status, _)| (200..300).contains(status))
        .map(|(n, status, text)| (*n, build_of((*status, text.clone()))))
        .collect();
    let unanswered: Vec<usize> = answers
        .iter()
        .filter(|(_, status, _)| !(200..300).contains(status))
        .map(|a| a.0)
        .collect();
    assert!(
        !unanswered.is_empty() && unanswered.iter().all(|n| n % 3 == 1),
        "only the killed server failed deliveries, and some: {unanswered:?}"
    );

    // GitHub redelivers what got no 2xx; another server takes it.
    let mut redelivered = BTreeMap::new();
    for n in &unanswered {
        let answer = cluster.servers[0].deliver(
            "push",
            &format!("push-{n}"),
            &cluster.push_body(&shas[*n], *n),
        );
        assert!((200..300).contains(&answer.0), "{answer:?}");
        redelivered.insert(*n, answer);
    }
    cluster.settle(300);

    // Every accepted delivery is stored with the build it was answered with, and that build
    // ended; redeliveries made one build each, whether the killed server had stored the first.
    let db = &cluster.db;
    for (n, build) in &accepted {
        let stored = db.count(&format!(
            "SELECT coalesce(build_id, 0) FROM deliveries WHERE id = 'push-{n}'"
        ));
        assert_eq!(stored, *build, "accepted delivery push-{n} lost");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM deliveries WHERE build_id IS NOT NULL"),
        DELIVERIES as i64
    );
    assert_eq!(db.count("SELECT count(*) FROM builds"), DELIVERIES as i64);
    let states: Vec<(i64, String)> = db
        .rows("SELECT id, state FROM builds ORDER BY id")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let not_passed: Vec<_> = states.iter().filter(|s| s.1 != "passed").collect();
    assert!(not_passed.is_empty(), "{not_passed:?}\n{}", cluster.logs());

    // Every build's outcome reached GitHub from a live server.
    cluster.reported(30);
    let reported: HashSet<i64> = cluster
        .github
        .statuses()
        .iter()
        .filter(|s| s.1 == "success")
        .map(|s| s.2.rsplit('/').next().unwrap().parse().unwrap())
        .collect();
    let silent: Vec<_> = states.iter().filter(|s| !reported.contains(&s.0)).collect();
    assert!(silent.is_empty(), "no success status for {silent:?}");
    eprintln!(
        "{} accepted, {} unanswered and redelivered",
        accepted.len(),
        redelivered.len()
    );
}

/// SIGKILL, while other threads still use the process's handle.
pub fn sigkill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

/// A signed push delivery's status and body; status 0 when the server gave no answer (it is
/// gone, or went while answering).
fn try_deliver(url: &str, id: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let host = url.trim_start_matches("http://");
    let Ok(mut conn) = std::net::TcpStream::connect(host) else {
        return (0, "connection refused".into());
    };
    let sig = slipway_webhook::signature::sign(SECRET.as_bytes(), body);
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: {host}\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: {id}\r\nX-Hub-Signature-256: {sig}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut raw = Vec::new();
    let sent = conn
        .write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body));
    if sent.and_then(|()| conn.read_to_end(&mut raw)).is_err() {
        return (0, "connection broken".into());
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}
