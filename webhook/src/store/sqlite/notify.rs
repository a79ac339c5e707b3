//! The notification outbox in SQLite: a build's notification setup (recorded when it is
//! prepared), the rows queued when it starts and ends — in the same transaction as the state
//! change, so none is lost — and the sender's reads and writes.

use super::*;
use crate::store::notify_rows::{Rows, outcome_of};
use slipway_pipelines::plan::Outcome;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL,
    repo TEXT NOT NULL,
    trusted INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    notification TEXT NOT NULL,
    facts TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox(done, next_at);
CREATE INDEX IF NOT EXISTS notify_outbox_build ON notify_outbox(build_id);
"#;

/// Adds what notifications need to a database made before they existed.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    let has: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('builds') WHERE name = 'notify'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        conn.execute_batch("ALTER TABLE builds ADD COLUMN notify TEXT")?;
    }
    Ok(())
}

/// Records a prepared build's notification setup (JSON), replacing an earlier one.
pub(super) fn record_setup(
    conn: &Connection,
    build_id: i64,
    setup: Option<&str>,
) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE builds SET notify = ?2 WHERE id = ?1",
        params![build_id, setup],
    )?;
    Ok(())
}

/// What notifications read of a build's row.
struct BuildRow {
    setup: Option<String>,
    repo: String,
    branch: String,
    event: String,
    pull_request: Option<i64>,
    started: Option<Millis>,
    finished: Option<Millis>,
}

/// Queues the notifications a build's new state fires: one row per target (one per email).
pub(super) fn enqueue(
    conn: &Connection,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<(), StoreError> {
    let Some(outcome) = outcome_of(state, reason) else {
        return Ok(());
    };
    let Some(row) = query_row(
        conn,
        "SELECT notify, repo, branch, event, json_extract(spec, '$.context.pull_request'), started_at, finished_at
         FROM builds WHERE id = ?1",
        [build_id],
        |r| {
            Ok(BuildRow {
                setup: r.get(0)?,
                repo: r.get(1)?,
                branch: r.get(2)?,
                event: r.get(3)?,
                pull_request: r.get(4)?,
                started: r.get(5)?,
                finished: r.get(6)?,
            })
        },
    )
    .optional()?
    else {
        return Ok(());
    };
    let BuildRow {
        setup: Some(setup),
        repo,
        branch,
        event,
        pull_request,
        started,
        finished,
    } = row
    else {
        return Ok(());
    };
    let previous = match outcome {
        Outcome::Started => None,
        _ => previous_outcome(conn, build_id, &repo, &branch, &event, pull_request)?,
    };
    let rows = Rows::compose(
        &setup,
        outcome,
        previous,
        (started, finished),
        jobs_of(conn, build_id)?,
    )?;
    let now = now_ms();
    for json in &rows.notifications {
        exec(
            conn,
            "INSERT INTO notify_outbox (build_id, repo, trusted, outcome, notification, facts, next_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![build_id, repo, rows.trusted, outcome.as_str(), json, rows.facts, now],
        )?;
    }
    Ok(())
}

/// The outcome of the previous finished build of the same repository, branch and event (and,
/// for pull requests, the same pull request): what "change" compares with.
fn previous_outcome(
    conn: &Connection,
    build_id: i64,
    repo: &str,
    branch: &str,
    event: &str,
    pull_request: Option<i64>,
) -> Result<Option<Outcome>, StoreError> {
    let state: Option<String> = query_row(
        conn,
        "SELECT state FROM builds
         WHERE repo = ?1 AND branch = ?2 AND event = ?3 AND id < ?4
           AND coalesce(json_extract(spec, '$.context.pull_request'), 0) = coalesce(?5, 0)
           AND state IN ('passed', 'failed', 'errored', 'canceled')
         ORDER BY id DESC LIMIT 1",
        params![repo, branch, event, build_id, pull_request],
        |r| r.get(0),
    )
    .optional()?;
    Ok(state.as_deref().and_then(Outcome::parse))
}

impl SqliteStore {
    /// See [`crate::store::Store::notify_due`].
    pub(super) async fn notify_due_rows(
        &self,
        limit: usize,
    ) -> Result<Vec<NotifyItem>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, build_id, repo, trusted, notification, facts, attempts FROM notify_outbox
                 WHERE done = 0 AND next_at <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms(), limit as i64], |r| {
                Ok(NotifyItem {
                    id: r.get(0)?,
                    build_id: r.get(1)?,
                    repo: r.get(2)?,
                    trusted: r.get(3)?,
                    notification: r.get(4)?,
                    facts: r.get(5)?,
                    attempts: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// See [`crate::store::Store::notify_finished`].
    pub(super) async fn notify_finish_row(
        &self,
        id: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let error = error.map(str::to_owned);
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE notify_outbox SET done = 1, attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            Ok(())
        })
        .await
    }

    /// See [`crate::store::Store::notify_retry`].
    pub(super) async fn notify_retry_row(
        &self,
        id: i64,
        next_at: Millis,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE notify_outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, next_at, error],
            )?;
            Ok(())
        })
        .await
    }

    /// See [`crate::store::Store::notifications`].
    pub(super) async fn notify_rows(&self, build_id: i64) -> Result<Vec<NotifyRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, outcome, notification, attempts, done, last_error FROM notify_outbox
                 WHERE build_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([build_id], |r| {
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
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
