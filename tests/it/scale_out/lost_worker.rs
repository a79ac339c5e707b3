//! A worker process killed in the middle of a job: the job is re-queued once its lease expires,
//! another process runs it again, and its log keeps what the lost attempt printed, then says
//! the attempt was lost and re-run, then the whole second run.

use super::cluster::{Cluster, Shape};
use crate::serve::containers_of;
use std::time::{Duration, Instant};

/// Twenty numbered lines, a tenth of a second apart.
const PIPELINE: &str = "language: shell\nimage: slipway-test/busybox:latest\nscript: i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo \"line-$i\"; sleep 0.1; done\n";

const LEASE: u64 = 2;

#[test]
fn a_job_whose_worker_is_killed_is_finished_by_another_with_its_log_kept_and_marked() {
    // The server runs no jobs: the job lands on one of the two worker processes.
    let shape = Shape {
        servers: 1,
        server_workers: 0,
        workers: 2,
        worker_workers: 1,
        lease_seconds: LEASE,
    };
    let Some(mut cluster) = Cluster::start(PIPELINE, shape) else {
        return;
    };
    let build = cluster.push(0, &cluster.master(), 1);
    let job = cluster.first_job(build, 30);
    cluster.wait_log(job, "line-5", 30);
    let before_kill = cluster.job_log(0, job);
    let pid = cluster.kill_lease_holder(job);
    let killed = Instant::now();

    // Re-queued once the lease ends (the reaper looks every few seconds), then run elsewhere.
    wait_for_attempt(&cluster, job, 2, LEASE + 8);
    let requeued = killed.elapsed();
    assert!(
        containers_of(&[pid]).is_empty(),
        "the lost attempt's containers still run beside the new one: {:?}",
        containers_of(&[pid])
    );
    cluster.wait_ended(build, "passed", 60);
    assert_eq!(
        cluster
            .db
            .count(&format!("SELECT attempts FROM jobs WHERE id = {job}")),
        2
    );

    // The log: the lost attempt's lines as stored before the kill, the mark, the second run.
    let log = cluster.job_log(0, job);
    let mark = "[slipway] re-queued: its worker was lost (server stopped or lease expired) during attempt 1";
    let (first, second) = log
        .split_once(mark)
        .unwrap_or_else(|| panic!("no mark of the lost attempt: {log}"));
    assert!(
        first.starts_with(before_kill.trim_end()),
        "what was stored before the kill changed:\n{before_kill}\n---\n{first}"
    );
    let numbers = |text: &str| -> Vec<u32> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("line-")?.parse().ok())
            .collect()
    };
    let lost = numbers(first);
    assert!(
        lost.len() >= 5 && lost.len() < 20 && lost == (1..=lost.len() as u32).collect::<Vec<_>>(),
        "the lost attempt's lines, in order, none missing: {lost:?}\n{log}"
    );
    assert_eq!(numbers(second), (1..=20).collect::<Vec<_>>(), "{log}");
    eprintln!(
        "re-queued and claimed again {:.1} s after the kill (lease {LEASE} s)",
        requeued.as_secs_f64()
    );
    assert!(
        requeued < Duration::from_secs(LEASE + 6),
        "re-queued {requeued:?} after the kill"
    );
}

/// Waits until `job` is claimed for the `attempt`th time.
fn wait_for_attempt(cluster: &Cluster, job: i64, attempt: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while cluster
        .db
        .count(&format!("SELECT attempts FROM jobs WHERE id = {job}"))
        < attempt
    {
        assert!(
            Instant::now() < deadline,
            "job {job} not claimed again within {secs} s\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
