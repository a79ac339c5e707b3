//! Deliveries, superseding, logs, the status outbox, pruning and check-run re-runs.

use super::*;

pub async fn a_delivery_is_recorded_once_by_id_and_by_body(store: Arc<dyn Store>) {
    let delivery = |id: &str, body: u8| Delivery {
        id: id.into(),
        event: "push".into(),
        body_sha256: [body; 32],
        visibility: None,
        action: DeliveryAction::Build {
            build: Box::new(push("master", "a1")),
            auto_cancel: false,
        },
    };
    // The same delivery reaching several servers at once: exactly one of them records it.
    let mut racing = Vec::new();
    for _ in 0..8 {
        let (store, d) = (store.clone(), delivery("d-1", 1));
        racing.push(tokio::spawn(async move { store.record_delivery(d).await }));
    }
    let mut accepted = 0;
    for r in racing {
        match r.await.unwrap().unwrap() {
            Recorded::Accepted { build: Some(_), .. } => accepted += 1,
            Recorded::Duplicate => {}
            other @ Recorded::Accepted { .. } => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 1, "one delivery id, one build");
    let replay = store.record_delivery(delivery("d-2", 1)).await.unwrap();
    assert_eq!(
        replay,
        Recorded::Duplicate,
        "the same body under a new id is a replay"
    );
    let fresh = store.record_delivery(delivery("d-3", 3)).await.unwrap();
    assert!(matches!(fresh, Recorded::Accepted { build: Some(_), .. }));
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.deliveries, 2);
    assert_eq!(counts.builds, vec![("queued".to_string(), 2)]);
}

pub async fn a_push_supersedes_the_older_build_of_its_branch(store: Arc<dyn Store>) {
    let older = deliver(&store, "d-1", push("master", "a1")).await;
    let other_branch = deliver(&store, "d-2", push("dev", "b1")).await;
    let recorded = store
        .record_delivery(Delivery {
            id: "d-3".into(),
            event: "push".into(),
            body_sha256: [3; 32],
            visibility: None,
            action: DeliveryAction::Build {
                build: Box::new(push("master", "a2")),
                auto_cancel: true,
            },
        })
        .await
        .unwrap();
    let Recorded::Accepted {
        build: Some(newer),
        canceled,
    } = recorded
    else {
        panic!("{recorded:?}");
    };
    assert_eq!(canceled, vec![older]);
    let (b, _) = store.build(older).await.unwrap().unwrap();
    assert_eq!(b.state, BuildState::Canceled);
    assert_eq!(
        b.reason.as_deref(),
        Some(format!("superseded by build #{newer}").as_str())
    );
    let (b, _) = store.build(other_branch).await.unwrap().unwrap();
    assert_eq!(
        b.state,
        BuildState::Queued,
        "another branch is not superseded"
    );
}

pub async fn closing_a_pull_request_cancels_its_open_builds(store: Arc<dyn Store>) {
    let mut pr = push("master", "c1");
    pr.supersede_key = Some("pr:5".into());
    pr.context.event = EventType::PullRequest;
    pr.context.pull_request = Some(5);
    let build = deliver(&store, "d-1", pr).await;
    let kept = deliver(&store, "d-2", push("master", "a1")).await;
    let recorded = store
        .record_delivery(Delivery {
            id: "d-3".into(),
            event: "pull_request".into(),
            body_sha256: [9; 32],
            visibility: None,
            action: DeliveryAction::ClosePullRequest {
                repo: REPO.into(),
                number: 5,
            },
        })
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Recorded::Accepted {
            build: None,
            canceled: vec![build]
        }
    );
    let (b, _) = store.build(kept).await.unwrap().unwrap();
    assert_eq!(b.state, BuildState::Queued);
}

pub async fn logs_read_back_in_order_from_any_point(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    prepare(&store, "w", jobs(&[1])).await;
    let job = claim_job(&store, "w", 30_000).await.unwrap();
    assert_eq!(store.next_seq(job.job_id).await.unwrap(), 1);
    let chunk = |seq: i64, kind: ChunkKind, data: &str| LogChunk {
        seq,
        kind,
        data: data.into(),
    };
    let written = vec![
        chunk(1, ChunkKind::PhaseStart, "script"),
        chunk(2, ChunkKind::Output, "$ make\n"),
        chunk(
            3,
            ChunkKind::Output,
            "The command \"make\" exited with 2.\n",
        ),
        chunk(
            4,
            ChunkKind::PhaseEnd,
            r#"{"name":"script","exit_code":2,"ms":40}"#,
        ),
        chunk(5, ChunkKind::Note, "done"),
    ];
    store.append_log(job, written[..2].to_vec()).await.unwrap();
    store.append_log(job, written[2..].to_vec()).await.unwrap();
    assert_eq!(store.next_seq(job.job_id).await.unwrap(), 6);
    assert_eq!(store.log(job.job_id, 0, 100).await.unwrap(), written);
    assert_eq!(
        store.log(job.job_id, 2, 2).await.unwrap(),
        written[2..4].to_vec()
    );
    let digest = store.log_digest(job.job_id, 1000).await.unwrap();
    assert_eq!(
        digest.failure.as_deref(),
        Some("The command \"make\" exited with 2.\n")
    );
    assert_eq!(digest.phases.len(), 1);
    assert_eq!((digest.phases[0].exit_code, digest.phases[0].ms), (2, 40));
    assert_eq!(
        digest.tail,
        "$ make\nThe command \"make\" exited with 2.\ndone\n"
    );
}

pub async fn the_outbox_holds_statuses_in_order_until_sent(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    prepare(&store, "w", jobs(&[1])).await;
    let due = store.outbox_take("server", 10, 60_000).await.unwrap();
    let statuses: Vec<_> = due
        .iter()
        .filter(|i| i.kind == OutboxKind::Status)
        .collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(
        (statuses[0].state.as_str(), statuses[0].sha.as_str()),
        ("pending", "a1")
    );
    assert_eq!(statuses[0].description, "Queued");
    assert_eq!(statuses[1].description, "Running");
    let ids = [statuses[0].id, statuses[1].id];
    assert_eq!(
        store.outbox_superseded(&ids).await.unwrap(),
        vec![statuses[0].id],
        "the later status says it all"
    );
    store.outbox_done(&[statuses[0].id]).await.unwrap();
    let later = slipway_webhook::store::now_ms() + 3_600_000;
    store
        .outbox_retry(statuses[1].id, later, "GitHub answered 502")
        .await
        .unwrap();
    assert!(
        store
            .outbox_take("server", 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.counts().await.unwrap().outbox_pending, 1);
}

pub async fn pruning_removes_only_finished_and_reported_builds(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let done = prepare(&store, "w", jobs(&[1])).await;
    let job = claim_job(&store, "w", 30_000).await.unwrap();
    let line = LogChunk {
        seq: 1,
        kind: ChunkKind::Output,
        data: "ok\n".into(),
    };
    store.append_log(job, vec![line]).await.unwrap();
    let ended = store.finish_job(job, JobState::Passed, None).await.unwrap();
    assert_eq!(ended, Some(BuildState::Passed));
    let open = deliver(&store, "d-2", push("dev", "b1")).await;
    let future = slipway_webhook::store::now_ms() + 60_000;
    let pruned = store.prune(Some(future), None).await.unwrap();
    assert!(pruned.builds.is_empty(), "its statuses are not sent yet");
    assert_eq!(pruned.deliveries, 2, "deliveries go by age alone");
    let taken = store.outbox_take("server", 100, 60_000).await.unwrap();
    let ids: Vec<i64> = taken.iter().map(|i| i.id).collect();
    store.outbox_done(&ids).await.unwrap();
    let pruned = store.prune(Some(future), None).await.unwrap();
    assert_eq!(pruned.builds, vec![(done, REPO.to_string())]);
    assert_eq!((pruned.jobs, pruned.log_chunks), (1, 1));
    assert!(store.build(done).await.unwrap().is_none());
    assert!(
        store.build(open).await.unwrap().is_some(),
        "an open build stays"
    );
}

pub async fn a_check_run_re_run_queues_its_job_again(store: Arc<dyn Store>) {
    deliver(&store, "d-1", push("master", "a1")).await;
    let build = prepare(&store, "w", jobs(&[1])).await;
    let job = claim_job(&store, "w", 30_000).await.unwrap();
    store
        .finish_job(
            job,
            JobState::Failed,
            Some("a script command failed".into()),
        )
        .await
        .unwrap();
    let run = CheckRun {
        job_id: Some(job.job_id),
        build_id: build,
        repo: REPO.into(),
        check_run_id: 77,
        synced: CheckSync::Completed,
    };
    store.save_check_run(run.clone()).await.unwrap();
    assert_eq!(store.check_run(job.job_id).await.unwrap(), Some(run));
    let rerun = |id: &str, repo: &str, body: u8| Delivery {
        id: id.into(),
        event: "check_run".into(),
        body_sha256: [body; 32],
        visibility: None,
        action: DeliveryAction::Rerun {
            repo: repo.into(),
            rerun: Rerun::CheckRun(77),
            auto_cancel: true,
        },
    };
    // Another repository cannot re-run this one's job by naming its check run.
    let foreign = store
        .record_delivery(rerun("r-1", "evil/fork", 1))
        .await
        .unwrap();
    assert_eq!(
        foreign,
        Recorded::Accepted {
            build: None,
            canceled: vec![]
        }
    );
    let recorded = store
        .record_delivery(rerun("r-2", "OCTO/app", 2))
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Recorded::Accepted {
            build: Some(build),
            canceled: vec![]
        }
    );
    let (b, jobs) = store.build(build).await.unwrap().unwrap();
    assert_eq!(
        (b.state, jobs[0].state),
        (BuildState::Running, JobState::Queued)
    );
    assert_eq!(
        store.check_run(job.job_id).await.unwrap(),
        None,
        "a new check run comes"
    );
}

/// Pushes to three branches arriving at once, spread over `stores` (servers on one database):
/// recorded together or not, each branch keeps only its newest build open, and every older one
/// is cancelled once, by a newer build of its branch, and named in that delivery's answer.
async fn pushes_arriving_together(stores: &[Arc<dyn Store>]) {
    let pushes = (0..24).map(|i| {
        let store = stores[i % stores.len()].clone();
        let branch = format!("b{}", i % 3);
        tokio::spawn(async move {
            let recorded = store
                .record_delivery(Delivery {
                    id: format!("t-{i}"),
                    event: "push".into(),
                    body_sha256: [i as u8 + 1; 32],
                    visibility: None,
                    action: DeliveryAction::Build {
                        build: Box::new(push(&branch, &format!("s{i}"))),
                        auto_cancel: true,
                    },
                })
                .await
                .unwrap();
            match recorded {
                Recorded::Accepted {
                    build: Some(b),
                    canceled,
                } => (branch, b, canceled),
                other => panic!("push {i}: {other:?}"),
            }
        })
    });
    let mut answers = Vec::new();
    for p in pushes.collect::<Vec<_>>() {
        answers.push(p.await.unwrap());
    }
    let mut canceled: Vec<i64> = answers.iter().flat_map(|(_, _, c)| c.clone()).collect();
    canceled.sort_unstable();
    let mut older = Vec::new();
    for branch in ["b0", "b1", "b2"] {
        let mut ids: Vec<i64> = answers
            .iter()
            .filter(|(b, _, _)| b == branch)
            .map(|(_, id, _)| *id)
            .collect();
        ids.sort_unstable();
        let newest = ids.pop().unwrap();
        let (b, _) = stores[0].build(newest).await.unwrap().unwrap();
        assert_eq!(b.state, BuildState::Queued, "{branch}'s newest build");
        for id in &ids {
            let (b, _) = stores[0].build(*id).await.unwrap().unwrap();
            assert_eq!(b.state, BuildState::Canceled, "{branch}'s build {id}");
            let by: i64 = b
                .reason
                .as_deref()
                .and_then(|r| r.strip_prefix("superseded by build #"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("build {id}: {:?}", b.reason));
            assert!(by > *id && answers.iter().any(|(br, n, _)| br == branch && *n == by));
        }
        older.extend(ids);
    }
    older.sort_unstable();
    assert_eq!(canceled, older, "each older build is cancelled once");
}

pub async fn pushes_arriving_together_leave_each_branch_its_newest_build(store: Arc<dyn Store>) {
    pushes_arriving_together(&[store]).await;
}

pub async fn two_servers_taking_pushes_of_one_branch_leave_its_newest_build(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    pushes_arriving_together(&[a, b]).await;
}
