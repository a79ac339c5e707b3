//! Claims, stages, leases and their expiry.

use super::*;
use std::collections::HashSet;
use std::time::Duration;

pub async fn each_build_and_job_is_claimed_exactly_once(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    prepare(&store, "w", jobs(&[24])).await;
    let mut workers = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("w{n}");
            let mut mine = Vec::new();
            while let Some(job) = claim_job(&store, &owner, 30_000).await {
                mine.push(job);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (24, 24), "claimed: {all:?}");
}

pub async fn stages_run_in_order_and_the_build_passes(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[2, 1])).await;
    let a = claim_job(&store, "w", 30_000).await.unwrap();
    let b = claim_job(&store, "w", 30_000).await.unwrap();
    assert_eq!(claim_job(&store, "w", 30_000).await, None, "stage 2 waits");
    let ended = store.finish_job(a, JobState::Passed, None).await;
    assert_eq!(ended.unwrap(), None);
    let ended = store.finish_job(b, JobState::Passed, None).await;
    assert_eq!(ended.unwrap(), None);
    let c = claim_job(&store, "w", 30_000).await.unwrap();
    let ended = store.finish_job(c, JobState::Passed, None).await;
    assert_eq!(ended.unwrap(), Some(BuildState::Passed));
    let (b, _) = store.build(build).await.unwrap().unwrap();
    assert_eq!(b.reason.as_deref(), Some("all jobs passed"));
    assert!(b.finished_at.is_some());
}

pub async fn a_failed_stage_cancels_the_later_stages(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[1, 2])).await;
    let a = claim_job(&store, "w", 30_000).await.unwrap();
    let why = Some("a script command failed".to_string());
    let ended = store.finish_job(a, JobState::Failed, why).await;
    assert_eq!(ended.unwrap(), Some(BuildState::Failed));
    assert_eq!(
        job_states(&store, build).await,
        vec![JobState::Failed, JobState::Canceled, JobState::Canceled]
    );
}

pub async fn an_expired_lease_re_queues_the_job_then_errors_it(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[1])).await;
    let job = claim_job(&store, "w1", 60_000).await.unwrap();
    let live = store.recover(false, 2).await.unwrap();
    assert_eq!(live, Recovery::default(), "a live lease is left alone");
    // Its holder goes quiet: the lease runs out.
    store.renew_job(job, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let first = store.recover(false, 2).await.unwrap();
    assert_eq!((first.requeued, first.errored), (1, 0));
    let log = store.log(job.job_id, 0, 10).await.unwrap();
    assert!(log[0].data.starts_with("re-queued:"), "{log:?}");
    assert_eq!(
        claim_job(&store, "w2", 1).await.map(|l| l.job_id),
        Some(job.job_id)
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store.recover(false, 2).await.unwrap();
    assert_eq!((second.requeued, second.errored), (0, 1));
    let (b, jobs) = store.build(build).await.unwrap().unwrap();
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Errored, 2));
    assert_eq!(b.state, BuildState::Errored);
}

pub async fn a_cancelled_build_stops_renewals(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[2])).await;
    let job = claim_job(&store, "w", 30_000).await.unwrap();
    assert!(store.renew_job(job, 30_000).await.unwrap());
    assert!(
        store
            .cancel_build(build, "canceled by alice")
            .await
            .unwrap()
    );
    assert!(!store.renew_job(job, 30_000).await.unwrap());
    assert_eq!(
        job_states(&store, build).await,
        vec![JobState::Canceled, JobState::Canceled]
    );
    assert!(!store.cancel_build(build, "again").await.unwrap());
    assert_eq!(claim_job(&store, "w", 30_000).await, None);
}

pub async fn jobs_ending_at_once_open_the_next_stage_once(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[16, 1])).await;
    let mut leases = Vec::new();
    for n in 0..16 {
        leases.push(claim_job(&store, &format!("w{n}"), 30_000).await.unwrap());
    }
    let ending: Vec<_> = leases
        .into_iter()
        .map(|lease| {
            let store = store.clone();
            tokio::spawn(async move { store.finish_job(lease, JobState::Passed, None).await })
        })
        .collect();
    for end in ending {
        assert_eq!(end.await.unwrap().unwrap(), None, "the build goes on");
    }
    let mut want = vec![JobState::Passed; 16];
    want.push(JobState::Queued);
    assert_eq!(job_states(&store, build).await, want, "stage 2 opened");
    let last = claim_job(&store, "w", 30_000).await.unwrap();
    assert_eq!(claim_job(&store, "w", 30_000).await, None);
    let ended = store.finish_job(last, JobState::Passed, None).await;
    assert_eq!(ended.unwrap(), Some(BuildState::Passed));
}

pub async fn a_failed_job_waits_for_the_rest_of_its_stage(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[2, 1])).await;
    let a = claim_job(&store, "w", 30_000).await.unwrap();
    let b = claim_job(&store, "w", 30_000).await.unwrap();
    let why = Some("a script command failed".to_string());
    let ended = store.finish_job(a, JobState::Failed, why).await;
    assert_eq!(ended.unwrap(), None, "its stage still runs a job");
    assert_eq!(
        job_states(&store, build).await,
        vec![JobState::Failed, JobState::Running, JobState::Waiting]
    );
    let ended = store.finish_job(b, JobState::Passed, None).await;
    assert_eq!(ended.unwrap(), Some(BuildState::Failed));
    assert_eq!(
        job_states(&store, build).await,
        vec![JobState::Failed, JobState::Passed, JobState::Canceled]
    );
}
