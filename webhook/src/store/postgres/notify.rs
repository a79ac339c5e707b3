//! The notification outbox in PostgreSQL: a build's notification setup, the rows queued when it
//! starts and ends (in the transaction of the state change, composed by
//! [`crate::store::notify_rows`]), and the sender's reads and writes.

use super::builds::jobs_of;
use super::{Db, PgStore, in_tx, read};
use crate::store::notify_rows::{Rows, outcome_of};
use crate::store::{BuildState, Millis, NotifyItem, NotifyRecord, StoreError, now_ms};
use slipway_pipelines::plan::Outcome;

/// Records a prepared build's notification setup (JSON), replacing an earlier one.
pub(super) async fn record_setup(
    db: &Db<'_, '_>,
    build_id: i64,
    setup: Option<&str>,
) -> Result<(), StoreError> {
    db.exec(
        "UPDATE builds SET notify = $2 WHERE id = $1",
        &[&build_id, &setup],
    )
    .await?;
    Ok(())
}

/// Queues the notifications a build's new state fires: one row per target.
pub(super) async fn enqueue(
    db: &Db<'_, '_>,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<(), StoreError> {
    let Some(outcome) = outcome_of(state, reason) else {
        return Ok(());
    };
    let Some(row) = db
        .opt(
            "SELECT notify, repo, branch, event, (spec::jsonb -> 'context' ->> 'pull_request')::bigint,
                    started_at, finished_at
             FROM builds WHERE id = $1 AND notify IS NOT NULL",
            &[&build_id],
        )
        .await?
    else {
        return Ok(());
    };
    let setup: String = row.try_get(0)?;
    let repo: String = row.try_get(1)?;
    let (branch, event): (String, String) = (row.try_get(2)?, row.try_get(3)?);
    let pull_request: Option<i64> = row.try_get(4)?;
    let times: (Option<Millis>, Option<Millis>) = (row.try_get(5)?, row.try_get(6)?);
    let previous = match outcome {
        Outcome::Started => None,
        _ => {
            let state = db
                .opt(
                    "SELECT state FROM builds
                     WHERE repo = $1 AND branch = $2 AND event = $3 AND id < $4
                       AND coalesce((spec::jsonb -> 'context' ->> 'pull_request')::bigint, 0) = coalesce($5, 0)
                       AND state IN ('passed', 'failed', 'errored', 'canceled')
                     ORDER BY id DESC LIMIT 1",
                    &[&repo, &branch, &event, &build_id, &pull_request],
                )
                .await?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?;
            state.as_deref().and_then(Outcome::parse)
        }
    };
    let rows = Rows::compose(
        &setup,
        outcome,
        previous,
        times,
        jobs_of(db, build_id).await?,
    )?;
    let now = now_ms();
    for json in &rows.notifications {
        db.exec(
            "INSERT INTO notify_outbox (build_id, repo, trusted, outcome, notification, facts, next_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            &[&build_id, &repo, &rows.trusted, &outcome.as_str(), json, &rows.facts, &now],
        )
        .await?;
    }
    Ok(())
}

impl PgStore {
    /// See [`crate::store::Store::notify_due`].
    pub(super) async fn notify_due_rows(
        &self,
        limit: usize,
    ) -> Result<Vec<NotifyItem>, StoreError> {
        read!(self, |db| {
            let rows = db
                .rows(
                    "SELECT id, build_id, repo, trusted, notification, facts, attempts FROM notify_outbox
                     WHERE NOT done AND next_at <= $1 ORDER BY id LIMIT $2",
                    &[&now_ms(), &(limit as i64)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(NotifyItem {
                        id: r.try_get(0)?,
                        build_id: r.try_get(1)?,
                        repo: r.try_get(2)?,
                        trusted: r.try_get(3)?,
                        notification: r.try_get(4)?,
                        facts: r.try_get(5)?,
                        attempts: r.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    /// See [`crate::store::Store::notify_finished`].
    pub(super) async fn notify_finish_row(
        &self,
        id: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec(
                "UPDATE notify_outbox SET done = true, attempts = attempts + 1, last_error = $2 WHERE id = $1",
                &[&id, &error],
            )
            .await?;
            Ok(())
        })
    }

    /// See [`crate::store::Store::notify_retry`].
    pub(super) async fn notify_retry_row(
        &self,
        id: i64,
        next_at: Millis,
        error: &str,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec(
                "UPDATE notify_outbox SET attempts = attempts + 1, next_at = $2, last_error = $3 WHERE id = $1",
                &[&id, &next_at, &error],
            )
            .await?;
            Ok(())
        })
    }

    /// See [`crate::store::Store::notifications`].
    pub(super) async fn notify_rows(&self, build_id: i64) -> Result<Vec<NotifyRecord>, StoreError> {
        read!(self, |db| {
            let rows = db
                .rows(
                    "SELECT id, outcome, notification, attempts, done, last_error FROM notify_outbox
                     WHERE build_id = $1 ORDER BY id",
                    &[&build_id],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let notification: String = r.try_get(2)?;
                    Ok(NotifyRecord {
                        id: r.try_get(0)?,
                        outcome: r.try_get(1)?,
                        notification: serde_json::from_str(&notification)
                            .unwrap_or(serde_json::Value::Null),
                        attempts: r.try_get(3)?,
                        done: r.try_get(4)?,
                        last_error: r.try_get(5)?,
                    })
                })
                .collect()
        })
    }
}
