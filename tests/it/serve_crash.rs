//! Crash safety of `slipway serve`: SIGKILL at random points while 100 deliveries stream in,
//! restart, and check that nothing accepted was lost and everything ends cleanly.

use crate::serve::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PIPELINE: &str = "language: minimal\nimage: slipway-test/debian:latest\nscript:\n  - echo start\n  - sleep 2\n  - echo done\n";

/// Running containers per job label of the servers on `host`, sampled; a job label seen twice in
/// one sample is a job running twice at once.
fn sample_duplicates(host: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "--filter",
            "label=dev.slipway.managed=true",
            "--format",
            "{{.Label \"dev.slipway.owner\"}} {{.Label \"dev.slipway.job\"}} {{.Names}}",
        ])
        .output()
        .unwrap();
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(line) = line.strip_prefix(&format!("{host}:")) else {
            continue;
        };
        let Some((_pid_and_start, line)) = line.split_once(' ') else {
            continue;
        };
        let (job, name) = line.split_once(' ').unwrap_or((line, ""));
        if name.contains("netns") || name.contains("svc") {
            continue;
        }
        seen.entry(job.to_string())
            .or_default()
            .push(name.to_string());
    }
    seen.into_iter()
        .filter(|(_, n)| n.len() > 1)
        .map(|(j, n)| format!("{j}: {n:?}"))
        .collect()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one crash scenario, read top to bottom"
)]
fn sigkill_during_a_stream_of_deliveries_loses_nothing() {
    let Some((tmp, origin)) = docker_and_origin(PIPELINE) else {
        return;
    };
    let shas: Vec<String> = (0..4)
        .map(|i| origin.push_master(&format!("f{i}.txt"), "x\n"))
        .collect();
    for (b, sha) in shas.iter().enumerate() {
        git(
            &origin.work,
            &["push", "-q", "origin", &format!("{sha}:refs/heads/b{b}")],
        );
    }
    let github = FakeGitHub::default();
    let api = github_api(&github);
    // On a host of its own: only its restarts sweep what its killed processes left, and the
    // sampler sees its jobs alone.
    let host = crate::support::own_host_name();
    let mut server = Served::on_host(&host, tmp.path(), &api, &origin.url(), "workers = 2");
    let mut pids = vec![server.pid()];

    let stop = Arc::new(AtomicBool::new(false));
    let dupes = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (stop, dupes) = (stop.clone(), dupes.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                dupes.lock().unwrap().extend(sample_duplicates(&host));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // Kill points: after these delivery numbers (spread over the stream, varying per run).
    let seed = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 17) as usize;
    let kills: HashSet<usize> = [11 + seed, 40 + seed, 70 + seed].into_iter().collect();
    let mut accepted = Vec::new();
    for i in 0..100 {
        let b = i % 4;
        // Each delivery's body differs, as GitHub's do (an identical body would be a replay).
        let body = push_payload_with(
            REPO,
            &origin.url(),
            &format!("refs/heads/b{b}"),
            &shas[b],
            false,
            &format!("push {i}"),
        );
        let id = format!("crash-{i}");
        match std::panic::catch_unwind(|| server.deliver("push", &id, &body)) {
            Ok((status, _)) if (200..300).contains(&status) => accepted.push(id),
            other => panic!("delivery {i} failed while the server was up: {other:?}"),
        }
        if kills.contains(&i) {
            // Let workers get into preparation or a running container, then kill without warning.
            std::thread::sleep(Duration::from_millis(300 + (seed as u64 * 97) % 2500));
            server.kill();
            server.start();
            pids.push(server.pid());
        }
    }

    // Every build reaches a final state.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let builds = server.json("/api/builds?limit=1000");
        let open: Vec<_> = builds["builds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| ["queued", "preparing", "running"].contains(&b["state"].as_str().unwrap()))
            .map(|b| b["id"].clone())
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "builds never ended: {open:?}\n{}",
            server.server_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    assert!(
        dupes.lock().unwrap().is_empty(),
        "a job ran twice at once: {:?}",
        dupes.lock().unwrap()
    );

    // 0 accepted deliveries lost: each is stored, and each push made its build.
    let db = db(&server.data);
    let stored: HashSet<String> = db
        .prepare("SELECT id FROM deliveries")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for id in &accepted {
        assert!(stored.contains(id), "accepted delivery {id} was lost");
    }
    assert_eq!(accepted.len(), 100);
    let builds: i64 = db
        .query_row(
            "SELECT count(*) FROM deliveries WHERE build_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(builds, 100);
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");

    // Nothing the killed processes started is left 30 s after the last restart.
    let killed: Vec<u32> = pids[..pids.len() - 1].to_vec();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = containers_of(&killed);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "containers left by killed servers: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every final state reached GitHub.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db
        .query_row("SELECT count(*) FROM outbox WHERE done = 0", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
        > 0
    {
        assert!(Instant::now() < deadline, "status reports still waiting");
        std::thread::sleep(Duration::from_millis(200));
    }
}
