//! A batch of pushes recorded set-wise: a handful of statements for the whole batch (its
//! deliveries, their repositories' visibility, the builds they supersede, their builds, their
//! status reports) instead of about ten per delivery. PostgreSQL spends most of a small
//! statement's time in its round of parse, plan and executor start, not in its rows, so this is
//! where a batch's cost goes from per delivery to per batch.
//!
//! The outcome is the one of recording the deliveries one after the other in arrival order: a
//! delivery whose id or body is known (before the batch, or earlier in it) is a duplicate; each
//! push cancels the open builds of its branch older than its own build, those before the batch
//! and those earlier in it, each once, "superseded by" the build that came next; each build's
//! reports are queued in that order. Batches holding anything else (a re-run, a closed pull
//! request) take the statement-per-delivery way ([`super::intake`]).

use super::Db;
use super::intake::Batch;
use crate::event::NewBuild;
use crate::store::progress::describe;
use crate::store::sql::{access, checks, id_list, notify};
use crate::store::{BuildState, Delivery, DeliveryAction, Recorded, StoreError, now_ms};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::types::ToSql;

type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// True when every delivery of the batch is a push or records nothing but itself.
pub(super) fn fits(deliveries: &[Delivery]) -> bool {
    deliveries.iter().all(|d| {
        matches!(
            d.action,
            DeliveryAction::Build { .. } | DeliveryAction::Nothing
        )
    })
}

/// A build of the batch, once its delivery is known to be new.
struct New<'d> {
    /// Its delivery's index in the batch.
    index: usize,
    id: i64,
    build: &'d NewBuild,
    auto_cancel: bool,
    /// The build of the batch that superseded it, if one did.
    superseded_by: Option<i64>,
}

/// A build from before the batch that one of the batch's cancelled.
struct Ended {
    id: i64,
    by: i64,
    notifies: bool,
    repo: String,
    sha: String,
}

/// Records `deliveries` (each [`fits`]) in `tx`, whose batch holds their branches' locks; their
/// outcomes in order.
pub(super) async fn record(
    tx: &Tx<'_>,
    batch: &Batch,
    deliveries: &[Delivery],
) -> Result<Vec<Recorded>, StoreError> {
    let now = now_ms();
    let inserted = insert_deliveries(tx, deliveries, now).await?;
    let mut out: Vec<Recorded> = vec![Recorded::Duplicate; deliveries.len()];
    record_visibility(tx, deliveries, &inserted, now).await?;
    let mut news = Vec::new();
    for (&index, build_id) in &inserted {
        out[index] = Recorded::Accepted {
            build: *build_id,
            canceled: vec![],
        };
        if let (DeliveryAction::Build { build, auto_cancel }, Some(id)) =
            (&deliveries[index].action, build_id)
        {
            news.push(New {
                index,
                id: *id,
                build,
                auto_cancel: *auto_cancel,
                superseded_by: None,
            });
        }
    }
    if news.windows(2).any(|w| w[0].id >= w[1].id) {
        // Never seen: the ids come from one statement, in arrival order.
        return Err(StoreError::Invalid(
            "a batch's build ids out of arrival order".into(),
        ));
    }
    let ended = cancel_before(tx, &news, now).await?;
    if !ended.is_empty() {
        report_ended(tx, batch, &ended, now).await?;
    }
    let within = supersede_within(&mut news);
    insert_builds(tx, &news, now).await?;
    enqueue_statuses(tx, &news, &within, now).await?;
    if !news.is_empty() {
        batch.wake();
    }
    for n in &news {
        let mut canceled: Vec<i64> = ended
            .iter()
            .filter(|e| e.by == n.id)
            .map(|e| e.id)
            .collect();
        canceled.extend(within.get(&n.id).into_iter().flatten());
        canceled.sort_unstable();
        out[n.index] = Recorded::Accepted {
            build: Some(n.id),
            canceled,
        };
    }
    Ok(out)
}

/// Inserts the deliveries whose id and body are new, in arrival order (a later one with the id
/// or body of an earlier one is a duplicate), each push's delivery with the id of its build-to-be,
/// taken from the builds' sequence in that order (under the branch locks the batch holds, so
/// after every build of those branches that another process recorded before). Returns the
/// inserted deliveries by index, with their build ids.
async fn insert_deliveries(
    tx: &Tx<'_>,
    deliveries: &[Delivery],
    now: i64,
) -> Result<BTreeMap<usize, Option<i64>>, StoreError> {
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let events: Vec<&str> = deliveries.iter().map(|d| d.event.as_str()).collect();
    let bodies: Vec<&[u8]> = deliveries
        .iter()
        .map(|d| d.body_sha256.as_slice())
        .collect();
    let builds: Vec<bool> = deliveries
        .iter()
        .map(|d| matches!(d.action, DeliveryAction::Build { .. }))
        .collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO deliveries (id, event, received_at, body_sha256, build_id)
             SELECT d.id, d.event, $5, d.body, CASE WHEN d.build THEN nextval('builds_id_seq') END
             FROM unnest($1::text[], $2::text[], $3::bytea[], $4::boolean[])
                  WITH ORDINALITY AS d(id, event, body, build, ord)
             ORDER BY d.ord
             ON CONFLICT DO NOTHING
             RETURNING id, body_sha256, build_id",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 5] = [&ids, &events, &bodies, &builds, &now];
    let rows = tx.query(&st, &params).await?;
    // A row is its delivery's by id and body: two deliveries alike in both are one delivery
    // twice, of which only the first can be new.
    let mut by_key: HashMap<(&str, &[u8]), Option<i64>> = HashMap::new();
    for r in &rows {
        let id: &str = r.try_get(0)?;
        let body: &[u8] = r.try_get(1)?;
        by_key.insert((id, body), r.try_get(2)?);
    }
    let mut inserted = BTreeMap::new();
    for (index, d) in deliveries.iter().enumerate() {
        if let Some(build) = by_key.remove(&(d.id.as_str(), d.body_sha256.as_slice())) {
            inserted.insert(index, build);
        }
    }
    Ok(inserted)
}

/// The visibility the new deliveries state, one row per repository: as recording them one by
/// one leaves it, the name as first written and the visibility last stated.
async fn record_visibility(
    tx: &Tx<'_>,
    deliveries: &[Delivery],
    inserted: &BTreeMap<usize, Option<i64>>,
    now: i64,
) -> Result<(), StoreError> {
    let mut repos: BTreeMap<String, (&str, bool)> = BTreeMap::new();
    for &index in inserted.keys() {
        if let Some(vis) = &deliveries[index].visibility {
            repos
                .entry(vis.repo.to_lowercase())
                .and_modify(|r| r.1 = vis.private)
                .or_insert((vis.repo.as_str(), vis.private));
        }
    }
    if repos.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = repos.values().map(|r| r.0).collect();
    let private: Vec<bool> = repos.values().map(|r| r.1).collect();
    let tokens = (0..repos.len())
        .map(|_| access::random_token())
        .collect::<Result<Vec<String>, StoreError>>()?;
    let st = tx
        .prepare_cached(
            "INSERT INTO repos (name, private, badge_token, updated_at)
             SELECT r.name, r.private, r.token, $4
             FROM unnest($1::text[], $2::boolean[], $3::text[]) AS r(name, private, token)
             ON CONFLICT ((lower(name))) DO UPDATE SET private = excluded.private,
             updated_at = excluded.updated_at WHERE repos.private != excluded.private",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 4] = [&names, &private, &tokens, &now];
    tx.execute(&st, &params).await?;
    Ok(())
}

/// The reason a build superseded by build `by` ends with.
fn superseded(by: i64) -> String {
    format!("superseded by build #{by}")
}

/// Cancels the open builds from before the batch that its pushes supersede: each open build of a
/// push's repository and supersede key older than the push's build, ended by the first such
/// push. Their row locks stand for [`crate::store::sql::builds::lock_build`], as in
/// [`crate::store::sql::builds::cancel_open`].
async fn cancel_before(tx: &Tx<'_>, news: &[New<'_>], now: i64) -> Result<Vec<Ended>, StoreError> {
    let keyed: Vec<&New> = news
        .iter()
        .filter(|n| n.auto_cancel && n.build.supersede_key.is_some())
        .collect();
    if keyed.is_empty() {
        return Ok(Vec::new());
    }
    let repos: Vec<&str> = keyed.iter().map(|n| n.build.repo.as_str()).collect();
    let keys: Vec<&str> = keyed
        .iter()
        .map(|n| n.build.supersede_key.as_deref().unwrap_or_default())
        .collect();
    let ids: Vec<i64> = keyed.iter().map(|n| n.id).collect();
    let st = tx
        .prepare_cached(
            "UPDATE builds b SET state = 'canceled', reason = 'superseded by build #' || s.by,
                 finished_at = $4, lease_owner = NULL, lease_until = NULL
             FROM (SELECT o.id, min(n.id) AS by
                   FROM unnest($1::text[], $2::text[], $3::bigint[]) AS n(repo, key, id)
                   JOIN builds o ON o.repo = n.repo AND o.supersede_key = n.key AND o.id < n.id
                   WHERE o.state IN ('queued', 'preparing', 'running')
                   GROUP BY o.id) s
             WHERE b.id = s.id AND b.state IN ('queued', 'preparing', 'running')
             RETURNING b.id, s.by, b.notify IS NOT NULL, b.repo, (b.spec::jsonb ->> 'head_sha')",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 4] = [&repos, &keys, &ids, &now];
    let mut ended = tx
        .query(&st, &params)
        .await?
        .iter()
        .map(|r| {
            Ok(Ended {
                id: r.try_get(0)?,
                by: r.try_get(1)?,
                notifies: r.try_get(2)?,
                repo: r.try_get(3)?,
                sha: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    ended.sort_unstable_by_key(|e| (e.by, e.id));
    Ok(ended)
}

/// What follows cancelling builds from before the batch: their jobs end, and their status, check
/// runs and notifications are queued (each build's status before its check runs).
async fn report_ended(
    tx: &Tx<'_>,
    batch: &Batch,
    ended: &[Ended],
    now: i64,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = ended.iter().map(|e| e.id).collect();
    let reasons: Vec<String> = ended.iter().map(|e| superseded(e.by)).collect();
    let st = tx
        .prepare_cached(
            "UPDATE jobs j SET state = 'canceled', reason = c.reason, finished_at = $3,
                 lease_owner = NULL, lease_until = NULL
             FROM unnest($1::bigint[], $2::text[]) AS c(id, reason)
             WHERE j.build_id = c.id AND j.state IN ('waiting', 'queued', 'running')",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 3] = [&ids, &reasons, &now];
    tx.execute(&st, &params).await?;
    let statuses: Vec<Status> = ended
        .iter()
        .zip(&reasons)
        .map(|(e, reason)| Status::canceled(e.id, &e.repo, &e.sha, reason))
        .collect();
    insert_statuses(tx, &statuses, now).await?;
    let db = Db::Batch(tx, batch);
    let list = id_list(&ids)?;
    let in_list = crate::store::sql::Dialect::Postgres.in_ids("?1");
    checks::enqueue_checks_of(&db, &in_list, &list).await?;
    for (e, reason) in ended.iter().zip(&reasons) {
        if e.notifies {
            notify::enqueue(&db, e.id, BuildState::Canceled, reason).await?;
        }
    }
    Ok(())
}

/// Supersedes, within the batch, each build by the next push of its repository and key that
/// cancels (as recording them in turn would); returns the builds each cancelled.
fn supersede_within(news: &mut [New<'_>]) -> HashMap<i64, Vec<i64>> {
    let mut open: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut within: HashMap<i64, Vec<i64>> = HashMap::new();
    for i in 0..news.len() {
        let Some(key) = news[i].build.supersede_key.as_deref() else {
            continue;
        };
        let slot = open.entry((news[i].build.repo.as_str(), key)).or_default();
        if news[i].auto_cancel {
            let by = news[i].id;
            for j in slot.drain(..) {
                news[j].superseded_by = Some(by);
                within.entry(by).or_default().push(news[j].id);
            }
        }
        slot.push(i);
    }
    within
}

/// Inserts the batch's builds: queued, or cancelled already by a later push of the batch.
async fn insert_builds(tx: &Tx<'_>, news: &[New<'_>], now: i64) -> Result<(), StoreError> {
    if news.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = news.iter().map(|n| n.id).collect();
    let repos: Vec<&str> = news.iter().map(|n| n.build.repo.as_str()).collect();
    let specs = news
        .iter()
        .map(|n| serde_json::to_string(n.build).map_err(|e| StoreError::Invalid(e.to_string())))
        .collect::<Result<Vec<String>, StoreError>>()?;
    let keys: Vec<Option<&str>> = news
        .iter()
        .map(|n| n.build.supersede_key.as_deref())
        .collect();
    let branches: Vec<&str> = news
        .iter()
        .map(|n| n.build.context.branch.as_str())
        .collect();
    let events: Vec<&str> = news
        .iter()
        .map(|n| n.build.context.event.as_str())
        .collect();
    let states: Vec<&str> = news
        .iter()
        .map(|n| match n.superseded_by {
            Some(_) => BuildState::Canceled.as_str(),
            None => BuildState::Queued.as_str(),
        })
        .collect();
    let reasons: Vec<Option<String>> = news
        .iter()
        .map(|n| n.superseded_by.map(superseded))
        .collect();
    let finished: Vec<Option<i64>> = news.iter().map(|n| n.superseded_by.map(|_| now)).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO builds (id, repo, spec, supersede_key, branch, event, state, reason,
                                 finished_at, created_at)
             SELECT b.*, $10 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[])
                 AS b(id, repo, spec, key, branch, event, state, reason, finished_at)
             ORDER BY b.id",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 10] = [
        &ids, &repos, &specs, &keys, &branches, &events, &states, &reasons, &finished, &now,
    ];
    tx.execute(&st, &params).await?;
    Ok(())
}

/// A status report to queue.
struct Status {
    build_id: i64,
    repo: String,
    sha: String,
    state: &'static str,
    description: String,
}

impl Status {
    fn canceled(build_id: i64, repo: &str, sha: &str, reason: &str) -> Status {
        Status {
            build_id,
            repo: repo.to_string(),
            sha: sha.to_string(),
            state: BuildState::Canceled.github_state(),
            description: format!("{}: {reason}", describe(BuildState::Canceled))
                .chars()
                .take(140)
                .collect(),
        }
    }
}

/// Queues the statuses of the batch's builds: each push's, after those of the builds of the
/// batch that it cancelled.
async fn enqueue_statuses(
    tx: &Tx<'_>,
    news: &[New<'_>],
    within: &HashMap<i64, Vec<i64>>,
    now: i64,
) -> Result<(), StoreError> {
    let by_id: HashMap<i64, &New> = news.iter().map(|n| (n.id, n)).collect();
    let mut statuses = Vec::with_capacity(news.len() * 2);
    for n in news {
        let mut canceled = within.get(&n.id).cloned().unwrap_or_default();
        canceled.sort_unstable();
        for c in canceled.iter().filter_map(|c| by_id.get(c)) {
            let b = c.build;
            statuses.push(Status::canceled(
                c.id,
                &b.repo,
                &b.head_sha,
                &superseded(n.id),
            ));
        }
        statuses.push(Status {
            build_id: n.id,
            repo: n.build.repo.clone(),
            sha: n.build.head_sha.clone(),
            state: BuildState::Queued.github_state(),
            description: "Queued".to_string(),
        });
    }
    insert_statuses(tx, &statuses, now).await
}

/// Inserts status reports in the order given.
async fn insert_statuses(tx: &Tx<'_>, statuses: &[Status], now: i64) -> Result<(), StoreError> {
    if statuses.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = statuses.iter().map(|s| s.build_id).collect();
    let repos: Vec<&str> = statuses.iter().map(|s| s.repo.as_str()).collect();
    let shas: Vec<&str> = statuses.iter().map(|s| s.sha.as_str()).collect();
    let states: Vec<&str> = statuses.iter().map(|s| s.state).collect();
    let descriptions: Vec<&str> = statuses.iter().map(|s| s.description.as_str()).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO outbox (build_id, repo, sha, state, description, next_at)
             SELECT s.build_id, s.repo, s.sha, s.state, s.description, $6
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
                  WITH ORDINALITY AS s(build_id, repo, sha, state, description, ord)
             ORDER BY s.ord",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 6] = [&ids, &repos, &shas, &states, &descriptions, &now];
    tx.execute(&st, &params).await?;
    Ok(())
}
