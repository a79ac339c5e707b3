//! 200 pushes spread over three servers, run by the workers of three servers and two worker
//! processes: every push makes one build, every build's job runs exactly once, and GitHub hears
//! each build's outcome once.

use super::cluster::{Cluster, Shape};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// The job prints a line its own script does not contain, to count real runs in the log.
const PIPELINE: &str =
    "language: shell\nimage: slipway-test/busybox:latest\nscript: echo \"ran-$((6 * 7))\"\n";

const PUSHES: usize = 200;

#[test]
fn two_hundred_pushes_over_three_servers_each_build_once() {
    let shape = Shape {
        servers: 3,
        server_workers: 2,
        workers: 2,
        worker_workers: 2,
        lease_seconds: 5,
    };
    let Some(cluster) = Cluster::start(PIPELINE, shape) else {
        return;
    };
    let started = Instant::now();
    let shas = cluster.commits(PUSHES);
    // Four senders, each delivery to server n % 3, as a load balancer would spread them.
    let builds: Vec<(usize, i64)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..4)
            .map(|t| {
                let (cluster, shas) = (&cluster, &shas);
                s.spawn(move || {
                    (t..PUSHES)
                        .step_by(4)
                        .map(|n| (n, cluster.push(n % 3, &shas[n], n)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let accepted = started.elapsed();
    let distinct: HashSet<i64> = builds.iter().map(|b| b.1).collect();
    assert_eq!(distinct.len(), PUSHES, "one build per push: {builds:?}");

    cluster.settle(300);
    let ran = started.elapsed();
    let db = &cluster.db;
    assert_eq!(db.count("SELECT count(*) FROM builds"), PUSHES as i64);
    assert_eq!(
        db.count("SELECT count(*) FROM deliveries WHERE build_id IS NOT NULL"),
        PUSHES as i64
    );
    // Every job passed on its first and only claim, and its output holds one run.
    let jobs = db.rows(
        "SELECT j.id, j.build_id, j.state, j.attempts,
                (SELECT string_agg(data, '' ORDER BY seq) FROM log_chunks c
                 WHERE c.job_id = j.id AND c.kind = 'output')
         FROM jobs j ORDER BY j.id",
    );
    assert_eq!(jobs.len(), PUSHES);
    for row in &jobs {
        let (id, build, state, attempts): (i64, i64, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let output: Option<String> = row.get(4);
        let runs = output.as_deref().unwrap_or("").matches("ran-42").count();
        assert!(
            state == "passed" && attempts == 1 && runs == 1,
            "job {id} of build {build}: {state}, {attempts} claims, {runs} runs: {output:?}\n{}",
            cluster.logs()
        );
    }
    assert_eq!(
        db.count("SELECT count(*) FROM builds WHERE state = 'passed' AND attempts = 1"),
        PUSHES as i64,
        "every build prepared once and passed"
    );

    // GitHub heard each build's success once, whichever server sent it, and no other final
    // state: a due status is taken by one server.
    cluster.reported(30);
    let mut successes: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, state, url, _) in cluster.github.statuses() {
        assert_ne!(state, "failure", "{url}");
        assert_ne!(state, "error", "{url}");
        if state == "success" {
            let build = url.rsplit('/').next().unwrap().parse().unwrap();
            *successes.entry(build).or_default() += 1;
        }
    }
    let missing: Vec<_> = distinct
        .iter()
        .filter(|b| !successes.contains_key(b))
        .collect();
    let repeated: Vec<_> = successes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && successes.len() == PUSHES,
        "success statuses missing for {missing:?}, sent more than once {repeated:?}"
    );

    // The work was shared: every process ran jobs.
    let owners = cluster.job_runners();
    eprintln!(
        "{PUSHES} pushes accepted in {:.1} s, all run in {:.1} s; jobs per process: {owners:?}",
        accepted.as_secs_f64(),
        ran.as_secs_f64()
    );
    assert!(
        owners.iter().all(|n| *n > 0),
        "jobs per process: {owners:?}"
    );
}
