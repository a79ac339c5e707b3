//! What the web pages, the API, the reporter and retention read and tidy in PostgreSQL: builds,
//! jobs, logs, counts, the status outbox, and pruning.

use super::builds::{
    BUILD_COLS, FILTERED, JOB_COLS, build_rows, count_by_state, get_build, job_row, jobs_of,
};
use super::{Db, PgStore, in_tx, read};
use crate::store::*;

/// Most builds removed in one transaction, so pruning never holds locks for long.
const BATCH: i64 = 200;

/// Permission answers older than this are never used again.
const PERMISSION_ROWS_KEPT_MS: i64 = 86_400_000;

impl PgStore {
    pub(super) async fn outbox_due_rows(
        &self,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        read!(self, |db| {
            let rows = db
                .rows(
                    "SELECT id, build_id, repo, sha, state, description, attempts, kind, payload FROM outbox
                     WHERE NOT done AND next_at <= $1 ORDER BY id LIMIT $2",
                    &[&now_ms(), &(limit as i64)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(OutboxItem {
                        id: r.try_get(0)?,
                        build_id: r.try_get(1)?,
                        repo: r.try_get(2)?,
                        sha: r.try_get(3)?,
                        state: r.try_get(4)?,
                        description: r.try_get(5)?,
                        attempts: r.try_get(6)?,
                        kind: OutboxKind::parse(r.try_get(7)?).unwrap_or(OutboxKind::Status),
                        payload: r.try_get(8)?,
                    })
                })
                .collect()
        })
    }

    pub(super) async fn outbox_done_row(&self, id: i64) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec("UPDATE outbox SET done = true WHERE id = $1", &[&id])
                .await?;
            Ok(())
        })
    }

    pub(super) async fn outbox_retry_row(
        &self,
        id: i64,
        next_at: Millis,
        error: &str,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec(
                "UPDATE outbox SET attempts = attempts + 1, next_at = $2, last_error = $3 WHERE id = $1",
                &[&id, &next_at, &error],
            )
            .await?;
            Ok(())
        })
    }

    pub(super) async fn outbox_newer(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        read!(self, |db| {
            let newer: i64 = match item.kind {
                // A newer status of the same commit says it all.
                OutboxKind::Status => db
                    .one(
                        "SELECT count(*) FROM outbox WHERE repo = $1 AND sha = $2 AND id > $3 AND kind = 'status'",
                        &[&item.repo, &item.sha, &item.id],
                    )
                    .await?
                    .try_get(0)?,
                // A newer sync of the same build brings every check run up to date anyway.
                OutboxKind::Checks => db
                    .one(
                        "SELECT count(*) FROM outbox WHERE build_id = $1 AND id > $2 AND kind = 'checks'",
                        &[&item.build_id, &item.id],
                    )
                    .await?
                    .try_get(0)?,
                OutboxKind::Lint => 0,
            };
            Ok(newer > 0)
        })
    }

    pub(super) async fn repos_rows(&self) -> Result<Vec<Build>, StoreError> {
        read!(self, |db| {
            build_rows(
                db.rows(
                    &format!(
                        "SELECT {BUILD_COLS} FROM builds
                         WHERE id IN (SELECT max(id) FROM builds GROUP BY repo) ORDER BY repo"
                    ),
                    &[],
                )
                .await?,
            )
        })
    }

    pub(super) async fn builds_rows(
        &self,
        filter: BuildFilter,
        limit: i64,
    ) -> Result<Vec<Build>, StoreError> {
        let event = filter.event.map(|e| e.event().as_str());
        let tag = filter.event.and_then(BuiltBy::tag);
        read!(self, |db| {
            build_rows(
                db.rows(
                    &format!(
                        "SELECT {BUILD_COLS} FROM builds
                         WHERE ($1::text IS NULL OR repo = $1) AND {FILTERED}
                         ORDER BY id DESC LIMIT $4"
                    ),
                    &[&filter.repo, &filter.branch, &event, &limit, &tag],
                )
                .await?,
            )
        })
    }

    pub(super) async fn build_row_with_jobs(
        &self,
        id: i64,
    ) -> Result<Option<(Build, Vec<Job>)>, StoreError> {
        read!(self, |db| {
            let Some(b) = get_build(&db, id).await? else {
                return Ok(None);
            };
            Ok(Some((b, jobs_of(&db, id).await?)))
        })
    }

    pub(super) async fn job_by_id(&self, id: i64) -> Result<Option<Job>, StoreError> {
        read!(self, |db| {
            db.opt(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(job_row)
            .transpose()
        })
    }

    pub(super) async fn log_rows(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<LogChunk>, StoreError> {
        read!(self, |db| {
            let rows = db
                .rows(
                    "SELECT seq, kind, data FROM log_chunks WHERE job_id = $1 AND seq > $2
                     ORDER BY seq LIMIT $3",
                    &[&job_id, &after_seq, &limit],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(LogChunk {
                        seq: r.try_get(0)?,
                        kind: ChunkKind::parse(r.try_get(1)?)?,
                        data: r.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    pub(super) async fn branch_state_row(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<BuildState>, StoreError> {
        read!(self, |db| {
            let row = db
                .opt(
                    "SELECT state FROM builds WHERE repo = $1 AND branch = $2 AND event = 'push'
                     AND state NOT IN ('queued', 'preparing', 'running', 'canceled')
                     ORDER BY id DESC LIMIT 1",
                    &[&repo, &branch],
                )
                .await?;
            row.map(|r| BuildState::parse(r.try_get(0)?)).transpose()
        })
    }

    pub(super) async fn count_rows(&self) -> Result<Counts, StoreError> {
        read!(self, |db| {
            Ok(Counts {
                builds: count_by_state(&db, "builds").await?,
                jobs: count_by_state(&db, "jobs").await?,
                outbox_pending: db
                    .one("SELECT count(*) FROM outbox WHERE NOT done", &[])
                    .await?
                    .try_get(0)?,
                deliveries: db
                    .one("SELECT count(*) FROM deliveries", &[])
                    .await?
                    .try_get(0)?,
            })
        })
    }

    /// See [`crate::store::Store::prune`].
    pub(super) async fn prune_all(
        &self,
        older_than: Option<Millis>,
        keep_per_repo: Option<i64>,
    ) -> Result<Pruned, StoreError> {
        let mut total = Pruned::default();
        loop {
            let batch = in_tx!(self, |db| {
                prune_batch(&db, older_than, keep_per_repo).await
            })?;
            let done = (batch.builds.len() as i64) < BATCH;
            total.add(batch);
            if done {
                break;
            }
        }
        if let Some(t) = older_than {
            total.deliveries = in_tx!(self, |db| {
                db.exec(
                    "DELETE FROM permissions WHERE checked_at < $1",
                    &[&(now_ms() - PERMISSION_ROWS_KEPT_MS)],
                )
                .await?;
                Ok(db
                    .exec("DELETE FROM deliveries WHERE received_at < $1", &[&t])
                    .await? as usize)
            })?;
        }
        Ok(total)
    }
}

async fn prune_batch(
    db: &Db<'_, '_>,
    older_than: Option<Millis>,
    keep_per_repo: Option<i64>,
) -> Result<Pruned, StoreError> {
    // Only final builds whose reports have all been sent.
    let victims = db
        .rows(
            "SELECT id, repo FROM (
                 SELECT b.id, b.repo, coalesce(b.finished_at, b.created_at) AS t,
                        row_number() OVER (PARTITION BY lower(b.repo) ORDER BY b.id DESC) AS n
                 FROM builds b
                 WHERE b.state IN ('passed', 'failed', 'errored', 'canceled', 'skipped')) v
             WHERE (($1::bigint IS NOT NULL AND t < $1) OR ($2::bigint IS NOT NULL AND n > $2))
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.build_id = v.id AND NOT o.done)
               AND NOT EXISTS (SELECT 1 FROM notify_outbox o WHERE o.build_id = v.id AND NOT o.done)
             ORDER BY id LIMIT $3",
            &[&older_than, &keep_per_repo, &BATCH],
        )
        .await?;
    let mut pruned = Pruned::default();
    for row in victims {
        let (id, repo): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        pruned.log_chunks += db
            .exec(
                "DELETE FROM log_chunks WHERE job_id IN (SELECT id FROM jobs WHERE build_id = $1)",
                &[&id],
            )
            .await? as usize;
        db.exec(
            "DELETE FROM deploys WHERE job_id IN (SELECT id FROM jobs WHERE build_id = $1)",
            &[&id],
        )
        .await?;
        pruned.jobs += db
            .exec("DELETE FROM jobs WHERE build_id = $1", &[&id])
            .await? as usize;
        for sql in [
            "DELETE FROM outbox WHERE build_id = $1",
            "DELETE FROM check_runs WHERE build_id = $1",
            "DELETE FROM notify_outbox WHERE build_id = $1",
            "UPDATE deliveries SET build_id = NULL WHERE build_id = $1",
            "DELETE FROM builds WHERE id = $1",
        ] {
            db.exec(sql, &[&id]).await?;
        }
        pruned.builds.push((id, repo));
    }
    Ok(pruned)
}
