//! A deploy runs once: a job lost after its deploy began is errored, not run again.

use super::*;
use std::time::Duration;

/// A one-job build whose job is claimed with a lease that runs out at once.
async fn claimed_briefly(store: &Arc<dyn Store>) -> (i64, JobLease) {
    deliver(store, "d-1", push("master", "a1")).await;
    let build = prepare(store, "w", jobs(&[1])).await;
    (build, claim_job(store, "w", 1).await.unwrap())
}

pub async fn a_job_lost_mid_deploy_is_errored_not_deployed_again(store: Arc<dyn Store>) {
    let (build, lease) = claimed_briefly(&store).await;
    store.deploy_started(lease, 0, "s3").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rec = store.recover(false, 3).await.unwrap();
    assert_eq!((rec.requeued, rec.errored), (0, 1));
    let (b, jobs) = store.build(build).await.unwrap().unwrap();
    assert_eq!(
        (b.state, jobs[0].state),
        (BuildState::Errored, JobState::Errored)
    );
    let reason = jobs[0].reason.clone().unwrap();
    assert!(
        reason.contains("outcome was known") && reason.contains("not run again"),
        "{reason}"
    );
    assert!(
        reason.contains("Restarting the build deploys again (on purpose)"),
        "{reason}"
    );
    let log = store.log(lease.job_id, 0, 10).await.unwrap();
    assert!(
        log.last().unwrap().data.contains("not run again"),
        "{log:?}"
    );
    assert_eq!(
        claim_job(&store, "w", 30_000).await,
        None,
        "nothing runs it again"
    );
    // A restart is the way to deploy again, on purpose.
    let restarted = store.restart_build(build, true).await.unwrap();
    assert!(restarted.is_some());
}

pub async fn a_job_lost_after_its_deploy_ended_is_not_deployed_again(store: Arc<dyn Store>) {
    let (build, lease) = claimed_briefly(&store).await;
    store.deploy_started(lease, 0, "s3").await.unwrap();
    store.deploy_finished(lease, 0, true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rec = store.recover(false, 3).await.unwrap();
    assert_eq!((rec.requeued, rec.errored), (0, 1));
    let (_, jobs) = store.build(build).await.unwrap().unwrap();
    let reason = jobs[0].reason.clone().unwrap();
    assert!(
        reason.contains("the deploy succeeded, then its worker was lost"),
        "{reason}"
    );
}

pub async fn a_job_lost_before_any_deploy_is_re_queued(store: Arc<dyn Store>) {
    let (build, _) = claimed_briefly(&store).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rec = store.recover(false, 3).await.unwrap();
    assert_eq!((rec.requeued, rec.errored), (1, 0));
    assert_eq!(job_states(&store, build).await, vec![JobState::Queued]);
}

pub async fn a_stale_worker_cannot_record_a_deploy(store: Arc<dyn Store>) {
    let (_, stale) = claimed_briefly(&store).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.recover(false, 3).await.unwrap();
    let refused = store.deploy_started(stale, 0, "s3").await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let fresh = claim_job(&store, "w", 30_000).await.unwrap();
    store.deploy_started(fresh, 0, "s3").await.unwrap();
    let refused = store.deploy_finished(stale, 0, false).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
}
