//! Check runs in PostgreSQL: the `check_runs` table, the outbox's `checks` and `lint` items, the
//! log digest a check run's summary shows, and re-running what a `rerequested` event names.

use super::builds::{enqueue_status, get_build, insert_build, lock_build, wake_workers};
use super::{Db, PgStore, in_tx, read};
use crate::store::progress::EARLIER_STAGE_FAILED;
use crate::store::{
    BuildState, CheckRun, CheckSync, ChecksStore, LintAnnotation, LogDigest, Recorded, Rerun,
    StoreError, now_ms,
};
use async_trait::async_trait;

/// Queues "bring this build's check runs up to date", in the transaction of the change.
pub(super) async fn enqueue_checks(db: &Db<'_, '_>, build_id: i64) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at, kind)
         SELECT id, repo, spec::jsonb ->> 'head_sha', 'sync', '', $2, 'checks'
         FROM builds WHERE id = $1",
        &[&build_id, &now_ms()],
    )
    .await?;
    Ok(())
}

/// Queues the check run of a pipeline file that could not be planned.
pub(super) async fn enqueue_lint(
    db: &Db<'_, '_>,
    build_id: i64,
    reason: &str,
    annotations: &[LintAnnotation],
) -> Result<(), StoreError> {
    let payload =
        serde_json::to_string(annotations).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let description: String = reason.chars().take(140).collect();
    db.exec(
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at, kind, payload)
         SELECT id, repo, spec::jsonb ->> 'head_sha', 'failure', $2, $3, 'lint', $4
         FROM builds WHERE id = $1",
        &[&build_id, &description, &now_ms(), &payload],
    )
    .await?;
    Ok(())
}

/// Runs again what a `rerequested` event names, if it is of `repo` and Slipway made its check
/// runs: a job in place, or a commit's latest build as a new build.
pub(super) async fn rerun(
    db: &Db<'_, '_>,
    repo: &str,
    rerun: &Rerun,
    auto_cancel: bool,
) -> Result<Recorded, StoreError> {
    let nothing = Recorded::Accepted {
        build: None,
        canceled: vec![],
    };
    let target: Option<(i64, Option<i64>)> = match rerun {
        Rerun::CheckRun(id) => db
            .opt(
                "SELECT c.build_id, c.job_id FROM check_runs c JOIN builds b ON b.id = c.build_id
                 WHERE c.check_run_id = $1 AND lower(b.repo) = lower($2) AND lower(c.repo) = lower($2)",
                &[id, &repo],
            )
            .await?
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?,
        Rerun::Suite { head_sha } => db
            .one(
                "SELECT max(b.id) FROM builds b
                 WHERE lower(b.repo) = lower($1) AND b.spec::jsonb ->> 'head_sha' = $2
                   AND EXISTS (SELECT 1 FROM check_runs c WHERE c.build_id = b.id)",
                &[&repo, head_sha],
            )
            .await?
            .try_get::<_, Option<i64>>(0)?
            .map(|b| (b, None)),
    };
    match target {
        None => Ok(nothing),
        Some((build_id, Some(job_id))) => {
            lock_build(db, build_id).await?;
            if !restart_job(db, build_id, job_id).await? {
                return Ok(nothing);
            }
            Ok(Recorded::Accepted {
                build: Some(build_id),
                canceled: vec![],
            })
        }
        Some((build_id, None)) => {
            let Some(old) = get_build(db, build_id).await? else {
                return Ok(nothing);
            };
            let (id, canceled) = insert_build(db, &old.spec, auto_cancel).await?;
            Ok(Recorded::Accepted {
                build: Some(id),
                canceled,
            })
        }
    }
}

/// Queues an ended job again in its build, with a fresh log and a new check run; jobs of later
/// stages that its failure had cancelled wait again, and an ended build runs again.
async fn restart_job(db: &Db<'_, '_>, build_id: i64, job_id: i64) -> Result<bool, StoreError> {
    let n = db
        .exec(
            "UPDATE jobs SET state = 'queued', reason = NULL, started_at = NULL, finished_at = NULL,
             lease_owner = NULL, lease_until = NULL, attempts = 0
             WHERE id = $1 AND build_id = $2
               AND state IN ('passed', 'failed', 'errored', 'canceled', 'not_run')",
            &[&job_id, &build_id],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    let later = "SELECT id FROM jobs WHERE build_id = $1 AND state = 'canceled' AND reason = $3
                 AND stage_index > (SELECT stage_index FROM jobs WHERE id = $2)";
    db.exec(
        &format!("DELETE FROM check_runs WHERE job_id = $2 OR job_id IN ({later})"),
        &[&build_id, &job_id, &EARLIER_STAGE_FAILED],
    )
    .await?;
    db.exec("DELETE FROM log_chunks WHERE job_id = $1", &[&job_id])
        .await?;
    // Run again on purpose: its earlier deploys no longer hold it back.
    db.exec("DELETE FROM deploys WHERE job_id = $1", &[&job_id])
        .await?;
    db.exec(
        &format!(
            "UPDATE jobs SET state = 'waiting', reason = NULL, finished_at = NULL WHERE id IN ({later})"
        ),
        &[&build_id, &job_id, &EARLIER_STAGE_FAILED],
    )
    .await?;
    let reopened = db
        .exec(
            "UPDATE builds SET state = 'running', reason = NULL, finished_at = NULL
             WHERE id = $1 AND state IN ('passed', 'failed', 'errored', 'canceled')",
            &[&build_id],
        )
        .await?;
    if reopened > 0 {
        enqueue_status(db, build_id, BuildState::Running, "Running").await?;
    }
    enqueue_checks(db, build_id).await?;
    wake_workers(db).await?;
    Ok(true)
}

#[async_trait]
impl ChecksStore for PgStore {
    async fn check_run(&self, job_id: i64) -> Result<Option<CheckRun>, StoreError> {
        read!(self, |db| {
            let row = db
                .opt(
                    "SELECT check_run_id, build_id, repo, synced FROM check_runs WHERE job_id = $1",
                    &[&job_id],
                )
                .await?;
            row.map(|r| {
                Ok(CheckRun {
                    job_id: Some(job_id),
                    check_run_id: r.try_get(0)?,
                    build_id: r.try_get(1)?,
                    repo: r.try_get(2)?,
                    synced: CheckSync::parse(r.try_get(3)?)?,
                })
            })
            .transpose()
        })
    }

    async fn save_check_run(&self, run: CheckRun) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec(
                "INSERT INTO check_runs (check_run_id, build_id, repo, job_id, synced)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (check_run_id) DO UPDATE SET synced = excluded.synced",
                &[
                    &run.check_run_id,
                    &run.build_id,
                    &run.repo,
                    &run.job_id,
                    &run.synced.as_str(),
                ],
            )
            .await?;
            Ok(())
        })
    }

    async fn log_digest(&self, job_id: i64, tail_bytes: usize) -> Result<LogDigest, StoreError> {
        read!(self, |db| {
            let phase_ends = db
                .rows(
                    "SELECT data FROM log_chunks WHERE job_id = $1 AND kind = 'phase_end' ORDER BY seq",
                    &[&job_id],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            let failure = db
                .opt(
                    "SELECT data FROM log_chunks WHERE job_id = $1 AND kind = 'output'
                     AND strpos(data, 'The command \"') > 0 ORDER BY seq LIMIT 1",
                    &[&job_id],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            // Read backwards in pages until the tail is long enough.
            let mut tail = Vec::new();
            let (mut bytes, mut before) = (0usize, i64::MAX);
            while bytes <= tail_bytes {
                let rows = db
                    .rows(
                        "SELECT seq, kind, data FROM log_chunks
                         WHERE job_id = $1 AND kind IN ('output', 'note') AND seq < $2
                         ORDER BY seq DESC LIMIT 256",
                        &[&job_id, &before],
                    )
                    .await?;
                if rows.is_empty() {
                    break;
                }
                for r in rows {
                    before = r.try_get(0)?;
                    let data: String = r.try_get(2)?;
                    bytes += data.len() + 1;
                    tail.push((r.try_get(1)?, data));
                }
            }
            Ok(LogDigest::of(
                phase_ends,
                failure,
                tail.into_iter(),
                tail_bytes,
            ))
        })
    }
}
