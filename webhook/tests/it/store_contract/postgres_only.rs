//! What only the PostgreSQL store has: its URL setting (whose password is a secret), migrations
//! shared by processes starting together, and deliveries recorded in batches.

use super::*;
use std::collections::BTreeMap;

#[test]
fn a_bad_store_url_names_the_setting_and_never_the_password() {
    let err = PgUrl::parse("mysql://slipway:hunter2-secret@db/slipway").unwrap_err();
    let text = err.to_string();
    assert!(text.contains(STORE_SETTING), "{text}");
    assert!(
        text.contains("postgres://"),
        "says what is expected: {text}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");

    let url = PgUrl::parse("postgres://slipway:hunter2-secret@127.0.0.1:1/slipway").unwrap();
    assert_eq!(
        url.to_string(),
        "postgres://slipway:***@127.0.0.1:1/slipway"
    );
    assert!(!format!("{url:?}").contains("hunter2-secret"));
    let setting = StoreSetting::new("postgres://slipway:hunter2-secret@127.0.0.1:1/slipway".into());
    assert!(!format!("{setting:?}").contains("hunter2-secret"));
    let err = runtime()
        .block_on(PgStore::connect(&url))
        .err()
        .expect("nothing listens on port 1");
    let text = err.to_string();
    assert!(
        text.contains(STORE_SETTING) && text.contains("cannot be reached"),
        "{text}"
    );
    assert!(text.contains("slipway:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
}

#[test]
fn processes_starting_together_migrate_the_schema_once() {
    let Some(base) = postgres_url() else { return };
    runtime().block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let url = PgUrl::parse(&url).unwrap();
        let starting: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PgStore::connect(&url).await.map(|_| ()) })
            })
            .collect();
        for s in starting {
            s.await.unwrap().unwrap();
        }
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(
                &format!("SELECT version FROM {schema}.schema_version ORDER BY version"),
                &[],
            )
            .await
            .unwrap();
        let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5, 6], "each migration once");
        drop_schema(&base, &schema).await;
    });
}

#[test]
fn a_delivery_failing_in_a_batch_fails_alone() {
    let Some(base) = postgres_url() else { return };
    // One thread: the three deliveries are all handed over before the task recording them runs,
    // so they make one batch.
    let rt = one_thread();
    rt.block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let store = PgStore::connect(&PgUrl::parse(&url).unwrap())
            .await
            .unwrap();
        let delivery = |id: &str, n: u8, branch: &str| Delivery {
            id: id.into(),
            event: "push".into(),
            body_sha256: [n; 32],
            visibility: None,
            action: DeliveryAction::Build {
                build: Box::new(push(branch, &format!("c{n}"))),
                auto_cancel: true,
            },
        };
        // PostgreSQL refuses a NUL in text.
        let (first, bad, last) = tokio::join!(
            store.record_delivery(delivery("d-1", 1, "b1")),
            store.record_delivery(delivery("d-\0", 2, "b2")),
            store.record_delivery(delivery("d-3", 3, "b3")),
        );
        assert!(bad.is_err(), "{bad:?}");
        for recorded in [first.unwrap(), last.unwrap()] {
            let Recorded::Accepted {
                build: Some(id), ..
            } = recorded
            else {
                panic!("{recorded:?}");
            };
            let (b, _) = store.build(id).await.unwrap().unwrap();
            assert_eq!(b.state, BuildState::Queued);
        }
        let counts = store.counts().await.unwrap();
        let builds: i64 = counts.builds.iter().map(|(_, n)| n).sum();
        assert_eq!((counts.deliveries, builds), (2, 2));
        drop(store);
        drop_schema(&base, &schema).await;
    });
}

/// A delivery for the batch below: `build` (with `auto_cancel`), or nothing but itself.
fn scripted(
    id: &str,
    body: u8,
    build: Option<(NewBuild, bool)>,
    private: Option<bool>,
) -> Delivery {
    Delivery {
        id: id.into(),
        event: "push".into(),
        body_sha256: [body; 32],
        visibility: private.map(|private| slipway_webhook::event::Visibility {
            repo: "Octo/App".into(),
            private,
        }),
        action: match build {
            Some((build, auto_cancel)) => DeliveryAction::Build {
                build: Box::new(build),
                auto_cancel,
            },
            None => DeliveryAction::Nothing,
        },
    }
}

/// The build a delivery made.
fn built(recorded: Recorded) -> i64 {
    match recorded {
        Recorded::Accepted { build: Some(b), .. } => b,
        other => panic!("{other:?}"),
    }
}

/// The deliveries recorded before the batch: a running build of `b1` (two jobs), a queued one of
/// `b2`.
fn before_the_batch() -> Vec<Delivery> {
    vec![
        scripted("p-1", 201, Some((push("b1", "s-p1"), true)), None),
        scripted("p-2", 202, Some((push("b2", "s-p2"), true)), None),
    ]
}

/// Pushes to several branches, each superseding the one before, among duplicates by id and by
/// body (of the batch and of before it), a push that does not cancel, a tag, and visibility.
fn the_batch() -> Vec<Delivery> {
    let mut tag = push("main", "s-tag");
    tag.supersede_key = None;
    tag.context.tag = Some("v1".into());
    vec![
        scripted("d-1", 1, Some((push("b1", "s1"), true)), Some(true)),
        scripted("d-2", 2, Some((push("b2", "s2"), true)), None),
        scripted("d-3", 3, Some((push("b1", "s3"), true)), None),
        scripted("d-3", 4, Some((push("b1", "s4"), true)), None),
        scripted("d-5", 2, Some((push("b2", "s5"), true)), None),
        scripted("d-6", 6, None, Some(false)),
        scripted("d-7", 7, Some((push("b3", "s7"), false)), None),
        scripted("d-8", 8, Some((push("b3", "s8"), false)), None),
        scripted("d-9", 9, Some((push("b3", "s9"), true)), None),
        scripted("d-10", 10, Some((tag, true)), None),
        scripted("p-1", 11, Some((push("b1", "s11"), true)), None),
        scripted("d-12", 12, Some((push("b2", "s12"), true)), Some(true)),
        scripted("d-13", 13, Some((push("b1", "s13"), true)), None),
    ]
}

/// What a store holds after the script, with build ids as ranks (the stores number builds
/// differently): each delivery's outcome, each build's state, reason and jobs, each commit's
/// reports in order, and the repository's visibility.
async fn outcome(store: &Arc<dyn Store>, before: &[i64], recorded: &[Recorded]) -> Vec<String> {
    let mut ids: Vec<i64> = recorded
        .iter()
        .filter_map(|r| match r {
            Recorded::Accepted { build, .. } => *build,
            Recorded::Duplicate => None,
        })
        .collect();
    ids.extend(before);
    ids.sort_unstable();
    ids.dedup();
    let rank = |id: i64| ids.iter().position(|i| *i == id).unwrap();
    let named = |text: &str| {
        let mut text = text.to_string();
        for id in ids.iter().rev() {
            text = text.replace(&format!("#{id}"), &format!("#r{}", rank(*id)));
        }
        text
    };
    let mut out: Vec<String> = recorded
        .iter()
        .map(|r| match r {
            Recorded::Accepted { build, canceled } => format!(
                "accepted {:?} canceling {:?}",
                build.map(rank),
                canceled.iter().map(|c| rank(*c)).collect::<Vec<_>>()
            ),
            Recorded::Duplicate => "duplicate".into(),
        })
        .collect();
    for id in &ids {
        let (b, jobs) = store.build(*id).await.unwrap().unwrap();
        let jobs: Vec<String> = jobs
            .iter()
            .map(|j| format!("{:?} {:?}", j.state, j.reason.as_deref().map(named)))
            .collect();
        out.push(format!(
            "build r{} {}: {:?} {:?} jobs {jobs:?}",
            rank(*id),
            b.spec.head_sha,
            b.state,
            b.reason.as_deref().map(named)
        ));
    }
    let mut reports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in store.outbox_take("t", 1000, 60_000).await.unwrap() {
        reports.entry(item.sha.clone()).or_default().push(format!(
            "{:?} r{} {} {}",
            item.kind,
            rank(item.build_id),
            item.state,
            named(&item.description)
        ));
    }
    out.extend(reports.into_iter().map(|(sha, r)| format!("{sha}: {r:?}")));
    let repo = store.repo_access("octo/app").await.unwrap().unwrap();
    out.push(format!("{} private {}", repo.name, repo.private));
    let counts = store.counts().await.unwrap();
    out.push(format!(
        "{} deliveries, builds {:?}",
        counts.deliveries, counts.builds
    ));
    out
}

#[test]
fn a_batch_of_pushes_ends_as_recording_them_one_by_one_does() {
    let Some(base) = postgres_url() else { return };
    // The reference: SQLite, one delivery after the other.
    let dir = tempfile::tempdir().unwrap();
    let lite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let expected = runtime().block_on(async {
        let mut before = Vec::new();
        for d in before_the_batch() {
            before.push(built(lite.record_delivery(d).await.unwrap()));
        }
        prepare(&lite, "w", jobs(&[2])).await;
        let mut recorded = Vec::new();
        for d in the_batch() {
            recorded.push(lite.record_delivery(d).await.unwrap());
        }
        outcome(&lite, &before, &recorded).await
    });
    // PostgreSQL: what came before through one server, the batch through another. One thread:
    // the batch's deliveries are all handed over before the task recording them runs.
    let rt = one_thread();
    rt.block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let url = PgUrl::parse(&url).unwrap();
        let one: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
        let other: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
        let mut before = Vec::new();
        for d in before_the_batch() {
            before.push(built(one.record_delivery(d).await.unwrap()));
        }
        prepare(&one, "w", jobs(&[2])).await;
        let recorded: Vec<Recorded> =
            futures::future::join_all(the_batch().into_iter().map(|d| other.record_delivery(d)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        let got = outcome(&other, &before, &recorded).await;
        drop((one, other));
        drop_schema(&base, &schema).await;
        assert_eq!(got, expected);
    });
}

/// A runtime of one thread: deliveries handed over together are all queued before the task
/// recording them runs, so they make one batch.
fn one_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
