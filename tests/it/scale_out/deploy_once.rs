//! A worker killed in the middle of a deploy: the deploy's start is in the store with no
//! outcome, so when the lease expires the job is errored, saying that running it again would
//! deploy again and that restarting the build does so on purpose; nobody deploys a second time.

use super::cluster::{Cluster, Shape};
use std::time::Duration;

/// A `script` deploy that takes long enough to be killed in.
const PIPELINE: &str = "language: shell\nimage: slipway-test/busybox:latest\nscript: echo built\n\
deploy:\n  provider: script\n  script: echo \"deploy-$((1 + 1))-began\"; sleep 20; echo \"deploy-$((2 + 2))-done\"\n  on:\n    branch: master\n";

#[test]
fn a_job_killed_mid_deploy_errors_and_is_not_deployed_twice() {
    let shape = Shape {
        servers: 1,
        server_workers: 0,
        workers: 2,
        worker_workers: 1,
        lease_seconds: 2,
    };
    let Some(cluster) = Cluster::start(PIPELINE, shape) else {
        return;
    };
    let build = cluster.push(0, &cluster.master(), 1);
    let job = cluster.first_job(build, 30);
    cluster.wait_log(job, "deploy-2-began", 30);
    let deploys = format!("SELECT count(*) FROM deploys WHERE job_id = {job}");
    assert_eq!(
        cluster.db.count(&deploys),
        1,
        "the deploy's start is stored first"
    );
    let mut cluster = cluster;
    cluster.kill_lease_holder(job);

    let ended = cluster.wait_ended(build, "errored", 30);
    let reason = ended["jobs"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("a deploy began during attempt 1 and its worker was lost before the deploy's outcome was known")
            && reason.contains("Restarting the build deploys again (on purpose)"),
        "{ended}"
    );
    let log = cluster.job_log(0, job);
    assert!(
        log.contains(&format!("[slipway] errored: {reason}")),
        "{log}"
    );
    assert_eq!(log.matches("deploy-2-began").count(), 1, "{log}");
    assert!(!log.contains("deploy-4-done"), "{log}");

    // Nobody took the job again, in this round or later ones.
    std::thread::sleep(Duration::from_secs(3));
    let row = &cluster.db.rows(&format!(
        "SELECT state, attempts FROM jobs WHERE id = {job}"
    ))[0];
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("errored".into(), 1)
    );
    assert_eq!(cluster.db.count(&deploys), 1);
    assert_eq!(
        cluster.db.count(&format!(
            "SELECT count(*) FROM deploys WHERE job_id = {job} AND succeeded IS NULL"
        )),
        1
    );
    cluster.reported(30);
    let last = cluster
        .github
        .statuses()
        .into_iter()
        .next_back()
        .expect("a status");
    assert_eq!(last.1, "error", "{last:?}");
}
