//! The notification outbox: a build's notification setup (recorded when it is prepared), the
//! rows queued when it starts and ends — in the transaction of the state change, so none is
//! lost, composed by [`crate::store::notify_rows`] — and the sender's reads and writes.

use super::builds::jobs_of;
use super::{Cells, Sql};
use crate::store::notify_rows::{Rows, outcome_of};
use crate::store::{BuildState, Millis, NotifyItem, NotifyRecord, StoreError, now_ms};
use slipway_pipelines::plan::Outcome;

/// Records a prepared build's notification setup (JSON), replacing an earlier one.
pub(crate) async fn record_setup<D: Sql>(
    db: &D,
    build_id: i64,
    setup: Option<&str>,
) -> Result<(), StoreError> {
    db.exec(
        "UPDATE builds SET notify = ?2 WHERE id = ?1",
        &[&build_id, &setup],
    )
    .await?;
    Ok(())
}

/// Queues the notifications a build's new state fires: one row per target (one per email).
pub(crate) async fn enqueue<D: Sql>(
    db: &D,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<(), StoreError> {
    let Some(outcome) = outcome_of(state, reason) else {
        return Ok(());
    };
    let pull_request = D::DIALECT.json_int("spec", "context.pull_request");
    let sql = format!(
        "SELECT notify, repo, branch, event, {pull_request}, started_at, finished_at
         FROM builds WHERE id = ?1 AND notify IS NOT NULL"
    );
    let Some(row) = db.opt(&sql, &[&build_id]).await? else {
        return Ok(());
    };
    let setup: String = row.get(0)?;
    let repo: String = row.get(1)?;
    let (branch, event): (String, String) = (row.get(2)?, row.get(3)?);
    let pull_request: Option<i64> = row.get(4)?;
    let times: (Option<Millis>, Option<Millis>) = (row.get(5)?, row.get(6)?);
    let previous = match outcome {
        Outcome::Started => None,
        _ => previous_outcome(db, build_id, [&repo, &branch, &event], pull_request).await?,
    };
    let jobs = jobs_of(db, build_id).await?;
    let rows = Rows::compose(&setup, outcome, previous, times, jobs)?;
    let now = now_ms();
    for json in &rows.notifications {
        db.exec(
            "INSERT INTO notify_outbox (build_id, repo, trusted, outcome, notification, facts, next_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            &[&build_id, &repo, &rows.trusted, &outcome.as_str(), json, &rows.facts, &now],
        )
        .await?;
    }
    Ok(())
}

/// The outcome of the previous finished build of the same repository, branch and event (and,
/// for pull requests, the same pull request): what "change" compares with.
async fn previous_outcome<D: Sql>(
    db: &D,
    build_id: i64,
    [repo, branch, event]: [&String; 3],
    pull_request: Option<i64>,
) -> Result<Option<Outcome>, StoreError> {
    let sql = format!(
        "SELECT state FROM builds
         WHERE repo = ?1 AND branch = ?2 AND event = ?3 AND id < ?4
           AND coalesce({}, 0) = coalesce(?5, 0)
           AND state IN ('passed', 'failed', 'errored', 'canceled')
         ORDER BY id DESC LIMIT 1",
        D::DIALECT.json_int("spec", "context.pull_request")
    );
    let args: [&dyn super::Arg; 5] = [repo, branch, event, &build_id, &pull_request];
    let state: Option<String> = db.opt(&sql, &args).await?.map(|r| r.get(0)).transpose()?;
    Ok(state.as_deref().and_then(Outcome::parse))
}

/// See [`crate::store::Store::notify_take`].
pub(crate) async fn take<D: Sql>(
    db: &D,
    holder: &str,
    limit: usize,
    hold_ms: i64,
) -> Result<Vec<NotifyItem>, StoreError> {
    let now = now_ms();
    let sql = format!(
        "UPDATE notify_outbox SET claimed_until = ?3, claimed_by = ?4
         WHERE id IN (SELECT id FROM notify_outbox
             WHERE done = false AND next_at <= ?1 AND coalesce(claimed_until, 0) <= ?1
             ORDER BY id LIMIT ?2{})
         RETURNING id, build_id, repo, trusted, notification, facts, attempts",
        D::DIALECT.lock(" FOR UPDATE SKIP LOCKED")
    );
    let args: [&dyn super::Arg; 4] = [&now, &(limit as i64), &(now + hold_ms), &holder];
    let mut items = db
        .rows(&sql, &args)
        .await?
        .iter()
        .map(|r| {
            Ok(NotifyItem {
                id: r.get(0)?,
                build_id: r.get(1)?,
                repo: r.get(2)?,
                trusted: r.get(3)?,
                notification: r.get(4)?,
                facts: r.get(5)?,
                attempts: r.get(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// See [`crate::store::Store::notify_finished`].
pub(crate) async fn finished<D: Sql>(
    db: &D,
    id: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    db.exec(
        "UPDATE notify_outbox SET done = true, attempts = attempts + 1, last_error = ?2,
         claimed_until = NULL WHERE id = ?1",
        &[&id, &error],
    )
    .await?;
    Ok(())
}

/// See [`crate::store::Store::notifications`].
pub(crate) async fn records<D: Sql>(
    db: &D,
    build_id: i64,
) -> Result<Vec<NotifyRecord>, StoreError> {
    let rows = db
        .rows(
            "SELECT id, outcome, notification, attempts, done, last_error FROM notify_outbox
             WHERE build_id = ?1 ORDER BY id",
            &[&build_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let notification: String = r.get(2)?;
            Ok(NotifyRecord {
                id: r.get(0)?,
                outcome: r.get(1)?,
                notification: serde_json::from_str(&notification)
                    .unwrap_or(serde_json::Value::Null),
                attempts: r.get(3)?,
                done: r.get(4)?,
                last_error: r.get(5)?,
            })
        })
        .collect()
}

/// See [`crate::store::Store::outbox_hold`].
pub(crate) async fn extend_holds<D: Sql>(
    db: &D,
    holder: &str,
    hold_ms: i64,
) -> Result<(), StoreError> {
    for table in ["outbox", "notify_outbox"] {
        let sql = format!(
            "UPDATE {table} SET claimed_until = ?2
             WHERE done = false AND claimed_by = ?1 AND claimed_until IS NOT NULL"
        );
        db.exec(&sql, &[&holder, &(now_ms() + hold_ms)]).await?;
    }
    Ok(())
}

/// Lets go of every row taken from the outboxes: a process starting on a store of its own holds
/// nothing yet, whatever it held before it stopped.
pub(crate) async fn release_holds<D: Sql>(db: &D) -> Result<(), StoreError> {
    for table in ["outbox", "notify_outbox"] {
        let sql = format!(
            "UPDATE {table} SET claimed_until = NULL WHERE done = false AND claimed_until IS NOT NULL"
        );
        db.exec(&sql, &[]).await?;
    }
    Ok(())
}

/// Schedules another try of a row of `table` (`outbox` or `notify_outbox`), letting it go.
pub(crate) async fn retry<D: Sql>(
    db: &D,
    table: &str,
    id: i64,
    next_at: Millis,
    error: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE {table} SET attempts = attempts + 1, next_at = ?2, last_error = ?3,
         claimed_until = NULL WHERE id = ?1"
    );
    db.exec(&sql, &[&id, &next_at, &error]).await?;
    Ok(())
}
