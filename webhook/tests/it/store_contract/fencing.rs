//! Fencing: every write a worker makes for a job carries its claim (job id, attempt), and is
//! refused once the lease moved on.

use super::*;
use std::time::Duration;

fn line(seq: i64, data: &str) -> LogChunk {
    LogChunk {
        seq,
        kind: ChunkKind::Output,
        data: data.into(),
    }
}

fn is_fenced(r: Result<impl std::fmt::Debug, StoreError>, lease: JobLease) {
    match r {
        Err(StoreError::Fenced { job_id, attempt }) => {
            assert_eq!((job_id, attempt), (lease.job_id, lease.attempt));
        }
        other => panic!(
            "expected the write of attempt {} refused, got {other:?}",
            lease.attempt
        ),
    }
}

/// Claims the only job with a lease that has run out by the time this returns, then lets
/// recovery re-queue it.
async fn claimed_then_re_queued(store: &Arc<dyn Store>) -> (i64, JobLease) {
    deliver(store, "d-1", push("master", "a1")).await;
    let build = prepare(store, "w", jobs(&[1])).await;
    let stale = claim_job(store, "slow", 1).await.unwrap();
    store
        .append_log(stale, vec![line(1, "before the pause\n")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rec = store.recover(false, 3).await.unwrap();
    assert_eq!(rec.requeued, 1);
    (build, stale)
}

pub async fn a_stale_worker_cannot_write_after_its_job_was_re_queued(store: Arc<dyn Store>) {
    let (build, stale) = claimed_then_re_queued(&store).await;
    is_fenced(
        store.append_log(stale, vec![line(3, "after\n")]).await,
        stale,
    );
    is_fenced(store.renew_job(stale, 30_000).await, stale);
    is_fenced(store.finish_job(stale, JobState::Passed, None).await, stale);
    assert_eq!(job_states(&store, build).await, vec![JobState::Queued]);
    let log = store.log(stale.job_id, 0, 10).await.unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].data, "before the pause\n");
    assert!(
        log[1].data.starts_with("re-queued:"),
        "the re-queue is marked: {log:?}"
    );
}

pub async fn a_stale_worker_cannot_overwrite_a_newer_attempts_result(store: Arc<dyn Store>) {
    let (build, stale) = claimed_then_re_queued(&store).await;
    // The same worker name claims again: only the attempt tells the two claims apart.
    let fresh = claim_job(&store, "slow", 30_000).await.unwrap();
    assert_eq!(
        (fresh.job_id, fresh.attempt),
        (stale.job_id, stale.attempt + 1)
    );
    store
        .append_log(fresh, vec![line(3, "attempt 2\n")])
        .await
        .unwrap();
    let why = Some("a script command failed".to_string());
    let ended = store
        .finish_job(fresh, JobState::Failed, why)
        .await
        .unwrap();
    assert_eq!(ended, Some(BuildState::Failed));
    is_fenced(store.finish_job(stale, JobState::Passed, None).await, stale);
    is_fenced(
        store.append_log(stale, vec![line(3, "forged\n")]).await,
        stale,
    );
    let (b, jobs) = store.build(build).await.unwrap().unwrap();
    assert_eq!(
        (b.state, jobs[0].state),
        (BuildState::Failed, JobState::Failed)
    );
    let log = store.log(stale.job_id, 2, 10).await.unwrap();
    assert_eq!(log, vec![line(3, "attempt 2\n")]);
}

pub async fn a_cancelled_jobs_worker_completes_its_log_but_not_its_state(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[1])).await;
    let lease = claim_job(&store, "w", 30_000).await.unwrap();
    assert!(
        store
            .cancel_build(build, "canceled by alice")
            .await
            .unwrap()
    );
    assert!(
        !store.renew_job(lease, 30_000).await.unwrap(),
        "renewal says stop"
    );
    store
        .append_log(lease, vec![line(1, "stopping\n")])
        .await
        .unwrap();
    let ended = store
        .finish_job(lease, JobState::Passed, None)
        .await
        .unwrap();
    assert_eq!(ended, None);
    assert_eq!(job_states(&store, build).await, vec![JobState::Canceled]);
}

/// A job's renewal and its end race whenever a job ends near a renewal (they come from two
/// tasks of one worker): both must go through, neither may fail the other (a failed end leaves
/// the job to be re-queued and run a second time).
pub async fn a_renewal_racing_the_jobs_end_fails_neither(store: Arc<dyn Store>) {
    for round in 0..40 {
        deliver(
            &store,
            &format!("race-{round}"),
            push(&format!("b{round}"), "a1"),
        )
        .await;
        let build = prepare(&store, "w", jobs(&[1])).await;
        let lease = claim_job(&store, "w", 30_000).await.unwrap();
        let (renewed, ended) = tokio::join!(
            store.renew_job(lease, 30_000),
            store.finish_job(lease, JobState::Passed, None)
        );
        renewed.unwrap_or_else(|e| panic!("round {round}: the renewal failed: {e}"));
        ended.unwrap_or_else(|e| panic!("round {round}: the job's end failed: {e}"));
        assert_eq!(job_states(&store, build).await, vec![JobState::Passed]);
    }
}
