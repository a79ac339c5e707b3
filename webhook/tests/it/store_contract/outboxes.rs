//! The outboxes shared by several servers on one database: each due status report and
//! notification is taken by one server, which holds it while it sends; a commit's reports go out
//! in order whichever server sends them; a server that dies holding rows lets them go when its
//! hold ends. The two stores of each test are two handles on one database, as two servers have.

use super::*;
use slipway_pipelines::plan::{Channel, Decision, Frequency, Notification, Text, Triggers};
use slipway_webhook::notify::NotifySetup;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longer than any test here runs: a row is taken again only once its outcome is recorded.
const LONG: i64 = 600_000;

/// A notification setup firing a webhook to each of `urls` when the build starts.
fn webhooks_at_start(urls: usize) -> String {
    let always = Frequency::Always;
    let notification = Notification {
        channel: Channel::Webhooks {
            urls: (0..urls)
                .map(|n| Text::Plain(format!("http://127.0.0.1:9/{n}")))
                .collect(),
        },
        on: Triggers {
            start: always,
            success: always,
            failure: always,
            cancel: always,
            error: always,
        },
        template: vec![],
        decision: Decision {
            included: true,
            reason: "always".into(),
        },
    };
    let setup = NotifySetup {
        notifications: vec![notification],
        facts: Default::default(),
        trusted: true,
    };
    serde_json::to_string(&setup).unwrap()
}

/// Pushes `commits` commits (one branch each) and prepares their builds, each notifying `urls`
/// webhooks as it starts: every commit has two status reports (queued, running) and every build
/// `urls` notifications.
async fn builds(store: &Arc<dyn Store>, commits: usize, urls: usize) {
    for n in 0..commits {
        deliver(
            store,
            &format!("d-{n}"),
            push(&format!("b{n}"), &format!("c{n}")),
        )
        .await;
    }
    for _ in 0..commits {
        let Some(Task::Prepare(build)) = store.claim("w", 30_000).await.unwrap() else {
            panic!("no build to prepare");
        };
        let prepared = Prepared::Jobs {
            merge_sha: build.spec.head_sha.clone(),
            log: String::new(),
            jobs: jobs(&[1]),
            skipped_reason: None,
            notify: Some(webhooks_at_start(urls)),
        };
        store.finish_prepare(build.id, "w", prepared).await.unwrap();
    }
}

/// What the takers sent, in the order they sent it: (taker, row id, commit).
type Sent = Arc<Mutex<Vec<(usize, i64, String)>>>;

/// Four takers, two on each server, taking `limit` rows at a time and recording each row's
/// outcome after "sending" it, as servers do, until `expected` rows are sent (or 60 s passed).
async fn drain_concurrently(
    servers: [&Arc<dyn Store>; 2],
    expected: usize,
    notifications: bool,
) -> Vec<(usize, i64, String)> {
    let sent: Sent = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let takers: Vec<_> = (0..4)
        .map(|taker| {
            let (store, sent) = (servers[taker % 2].clone(), sent.clone());
            tokio::spawn(async move {
                let holder = format!("server-{}/{taker}", taker % 2);
                while sent.lock().unwrap().len() < expected && Instant::now() < deadline {
                    let taken: Vec<(i64, String)> = if notifications {
                        let rows = store.notify_take(&holder, 3, LONG).await.unwrap();
                        rows.into_iter().map(|i| (i.id, i.repo)).collect()
                    } else {
                        let rows = store.outbox_take(&holder, 3, LONG).await.unwrap();
                        rows.into_iter().map(|i| (i.id, i.sha)).collect()
                    };
                    if taken.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    for (id, commit) in taken {
                        sent.lock().unwrap().push((taker, id, commit));
                        if notifications {
                            store.notify_finished(id, None).await.unwrap();
                        } else {
                            store.outbox_done(&[id]).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for t in takers {
        t.await.unwrap();
    }
    Arc::try_unwrap(sent).unwrap().into_inner().unwrap()
}

pub async fn two_servers_send_each_due_row_once(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    builds(&a, 12, 3).await;

    let sent = drain_concurrently([&a, &b], 24, false).await;
    let mut times: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, id, _) in &sent {
        *times.entry(*id).or_default() += 1;
    }
    assert_eq!(times.len(), 24, "every status report sent: {sent:?}");
    assert!(times.values().all(|n| *n == 1), "each once: {sent:?}");
    // A commit's reports went out in the order they were queued, whoever sent them.
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, id, commit) in &sent {
        let before = last.insert(commit, *id).unwrap_or(0);
        assert!(
            before < *id,
            "{commit}: report {id} after {before}: {sent:?}"
        );
    }
    let takers: std::collections::BTreeSet<usize> = sent.iter().map(|s| s.0).collect();
    assert!(takers.len() > 1, "the servers shared the work: {sent:?}");
    assert!(b.outbox_take("late", 100, LONG).await.unwrap().is_empty());

    let sent = drain_concurrently([&a, &b], 36, true).await;
    let mut times: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, id, _) in &sent {
        *times.entry(*id).or_default() += 1;
    }
    assert_eq!(times.len(), 36, "every notification sent: {sent:?}");
    assert!(times.values().all(|n| *n == 1), "each once: {sent:?}");
    assert!(a.notify_take("late", 100, LONG).await.unwrap().is_empty());
}

pub async fn a_dead_servers_rows_are_taken_again_after_its_hold(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    builds(&a, 1, 2).await;
    let hold = Duration::from_secs(3);
    let taken_at = Instant::now();
    let statuses = a
        .outbox_take("a", 10, hold.as_millis() as i64)
        .await
        .unwrap();
    let notes = a
        .notify_take("a", 10, hold.as_millis() as i64)
        .await
        .unwrap();
    assert_eq!((statuses.len(), notes.len()), (2, 2));

    // Server a dies here, holding them. Server b finds nothing due while the hold lasts …
    assert!(b.outbox_take("b", 10, LONG).await.unwrap().is_empty());
    assert!(b.notify_take("b", 10, LONG).await.unwrap().is_empty());
    assert!(
        taken_at.elapsed() < hold,
        "the checks above ran within the hold"
    );

    // … and takes them once it is over, as they were: no try was counted.
    tokio::time::sleep_until((taken_at + hold + Duration::from_millis(200)).into()).await;
    let again = b.outbox_take("b", 10, LONG).await.unwrap();
    let ids = |items: &[OutboxItem]| items.iter().map(|i| (i.id, i.attempts)).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&statuses));
    let notes_again = b.notify_take("b", 10, LONG).await.unwrap();
    let note_ids =
        |items: &[NotifyItem]| items.iter().map(|i| (i.id, i.attempts)).collect::<Vec<_>>();
    assert_eq!(note_ids(&notes_again), note_ids(&notes));

    for item in &again {
        b.outbox_done(&[item.id]).await.unwrap();
    }
    for item in &notes_again {
        b.notify_finished(item.id, None).await.unwrap();
    }
    assert!(a.outbox_take("a", 10, LONG).await.unwrap().is_empty());
    assert!(a.notify_take("a", 10, LONG).await.unwrap().is_empty());
}

pub async fn a_commits_reports_wait_while_another_server_holds_an_earlier_one(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    builds(&a, 1, 0).await;
    deliver(&a, "d-other", push("other", "c-other")).await;
    let queued = a.outbox_take("a", 1, LONG).await.unwrap();
    assert_eq!(
        (
            queued.len(),
            queued[0].sha.as_str(),
            queued[0].description.as_str()
        ),
        (1, "c0", "Queued")
    );
    // c0's "Running" is due, but a holds c0's earlier report: b sends only the other commit's.
    let other = b.outbox_take("b", 10, LONG).await.unwrap();
    let shas: Vec<&str> = other.iter().map(|i| i.sha.as_str()).collect();
    assert_eq!(shas, ["c-other"]);

    // A retry lets the row go too: then b takes c0's reports, the earlier one first.
    let later = now_ms() + 3_600_000;
    a.outbox_retry(queued[0].id, later, "GitHub answered 502")
        .await
        .unwrap();
    let running = b.outbox_take("b", 10, LONG).await.unwrap();
    let taken: Vec<(&str, &str)> = running
        .iter()
        .map(|i| (i.sha.as_str(), i.description.as_str()))
        .collect();
    assert_eq!(taken, [("c0", "Running")]);
}

pub async fn a_renewed_hold_keeps_the_rows_with_their_server(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    builds(&a, 1, 1).await;
    let taken = a.outbox_take("a", 10, 1_000).await.unwrap();
    let notes = a.notify_take("a", 10, 1_000).await.unwrap();
    assert_eq!((taken.len(), notes.len()), (2, 1));
    // Still sending: a renews its hold before it ends, and b's own rows are not a's to renew.
    a.outbox_hold("a", LONG).await.unwrap();
    b.outbox_hold("b", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(b.outbox_take("b", 10, LONG).await.unwrap().is_empty());
    assert!(b.notify_take("b", 10, LONG).await.unwrap().is_empty());
    // Their outcomes recorded, rows are no longer held by anyone: renewing does not take back
    // the one due for another try.
    a.outbox_done(&[taken[0].id]).await.unwrap();
    a.outbox_retry(taken[1].id, now_ms(), "GitHub answered 502")
        .await
        .unwrap();
    a.outbox_hold("a", LONG).await.unwrap();
    let again = b.outbox_take("b", 10, LONG).await.unwrap();
    assert_eq!(
        again.iter().map(|i| i.id).collect::<Vec<_>>(),
        [taken[1].id]
    );
    assert_eq!(again[0].attempts, 1);
}
