//! Pruning: finished builds past the retention limits go with their jobs, logs and delivered
//! status reports; deliveries past the age limit go too (and with them the replay protection of
//! their bodies, which lasts exactly as long as they are kept).

use super::{SqliteStore, exec};
use crate::store::{Millis, Pruned, StoreError, now_ms};
use rusqlite::{Connection, params};

/// Most builds removed in one transaction, so pruning never holds the writer for long.
const BATCH: i64 = 200;

/// Permission answers older than this are never used again.
const PERMISSION_ROWS_KEPT_MS: i64 = 86_400_000;

fn prune_batch(
    conn: &Connection,
    older_than: Option<Millis>,
    keep_per_repo: Option<i64>,
) -> Result<Pruned, StoreError> {
    // Only final builds whose status reports have all been sent: a running build, or one whose
    // result GitHub has not been told yet, is never touched.
    let victims: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, repo FROM (
                 SELECT id, repo, coalesce(finished_at, created_at) AS t,
                        row_number() OVER (PARTITION BY lower(repo) ORDER BY id DESC) AS n
                 FROM builds
                 WHERE state IN ('passed', 'failed', 'errored', 'canceled', 'skipped'))
             WHERE ((?1 IS NOT NULL AND t < ?1) OR (?2 IS NOT NULL AND n > ?2))
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.build_id = id AND o.done = 0)
               AND NOT EXISTS (SELECT 1 FROM notify_outbox o WHERE o.build_id = id AND o.done = 0)
             ORDER BY id LIMIT ?3",
        )?
        .query_map(params![older_than, keep_per_repo, BATCH], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut pruned = Pruned::default();
    for (id, repo) in victims {
        pruned.log_chunks += exec(
            conn,
            "DELETE FROM log_chunks WHERE job_id IN (SELECT id FROM jobs WHERE build_id = ?1)",
            [id],
        )?;
        exec(
            conn,
            "DELETE FROM deploys WHERE job_id IN (SELECT id FROM jobs WHERE build_id = ?1)",
            [id],
        )?;
        pruned.jobs += exec(conn, "DELETE FROM jobs WHERE build_id = ?1", [id])?;
        exec(conn, "DELETE FROM outbox WHERE build_id = ?1", [id])?;
        super::checks::prune(conn, id)?;
        exec(conn, "DELETE FROM notify_outbox WHERE build_id = ?1", [id])?;
        exec(
            conn,
            "UPDATE deliveries SET build_id = NULL WHERE build_id = ?1",
            [id],
        )?;
        exec(conn, "DELETE FROM builds WHERE id = ?1", [id])?;
        pruned.builds.push((id, repo));
    }
    Ok(pruned)
}

impl SqliteStore {
    /// See [`crate::store::Store::prune`].
    pub(super) async fn prune_all(
        &self,
        older_than: Option<Millis>,
        keep_per_repo: Option<i64>,
    ) -> Result<Pruned, StoreError> {
        let mut total = Pruned::default();
        loop {
            let batch = self
                .write(move |conn| prune_batch(conn, older_than, keep_per_repo))
                .await?;
            let done = (batch.builds.len() as i64) < BATCH;
            total.add(batch);
            if done {
                break;
            }
        }
        total.deliveries = match older_than {
            Some(t) => {
                self.write(move |conn| {
                    exec(
                        conn,
                        "DELETE FROM permissions WHERE checked_at < ?1",
                        [now_ms() - PERMISSION_ROWS_KEPT_MS],
                    )?;
                    Ok(exec(
                        conn,
                        "DELETE FROM deliveries WHERE received_at < ?1",
                        [t],
                    )?)
                })
                .await?
            }
            None => 0,
        };
        Ok(total)
    }
}
