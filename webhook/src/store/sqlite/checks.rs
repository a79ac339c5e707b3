//! Check runs in SQLite: the `check_runs` table, the outbox's `checks` and `lint` items, the log
//! digest a check run's summary shows, and re-running what a `rerequested` event names.

use super::builds::{enqueue_status, get_build, insert_build};
use super::{SqliteStore, exec, query_row};
use crate::store::{
    BuildState, CheckRun, CheckSync, ChecksStore, LintAnnotation, LogDigest, Recorded, Rerun,
    StoreError, now_ms,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS check_runs (
    check_run_id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL,
    repo TEXT NOT NULL,
    job_id INTEGER UNIQUE,
    synced TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS check_runs_build ON check_runs(build_id);
";

/// Creates the table and adds the outbox's `kind` and `payload` columns to a database made
/// before check runs.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    for (column, declaration) in [
        ("kind", "TEXT NOT NULL DEFAULT 'status'"),
        ("payload", "TEXT"),
    ] {
        let has: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('outbox') WHERE name = ?1",
            [column],
            |r| r.get(0),
        )?;
        if has == 0 {
            conn.execute_batch(&format!(
                "ALTER TABLE outbox ADD COLUMN {column} {declaration}"
            ))?;
        }
    }
    Ok(())
}

/// Queues "bring this build's check runs up to date", in the transaction of the change.
pub(super) fn enqueue_checks(conn: &Connection, build_id: i64) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at, kind)
         SELECT id, repo, json_extract(spec, '$.head_sha'), 'sync', '', ?2, 'checks'
         FROM builds WHERE id = ?1",
        params![build_id, now_ms()],
    )?;
    Ok(())
}

/// Queues the check run of a pipeline file that could not be planned.
pub(super) fn enqueue_lint(
    conn: &Connection,
    build_id: i64,
    reason: &str,
    annotations: &[LintAnnotation],
) -> Result<(), StoreError> {
    let payload =
        serde_json::to_string(annotations).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let description: String = reason.chars().take(140).collect();
    exec(
        conn,
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at, kind, payload)
         SELECT id, repo, json_extract(spec, '$.head_sha'), 'failure', ?2, ?3, 'lint', ?4
         FROM builds WHERE id = ?1",
        params![build_id, description, now_ms(), payload],
    )?;
    Ok(())
}

/// Removes a pruned build's check runs.
pub(super) fn prune(conn: &Connection, build_id: i64) -> Result<(), StoreError> {
    exec(
        conn,
        "DELETE FROM check_runs WHERE build_id = ?1",
        [build_id],
    )?;
    Ok(())
}

/// Runs again what a `rerequested` event names, if it is of `repo` and Slipway made its check
/// runs: a job in place (with the later stages a failure had cancelled), or a commit's latest
/// build as a new build.
pub(super) fn rerun(
    conn: &Connection,
    repo: &str,
    rerun: &Rerun,
    auto_cancel: bool,
) -> Result<Recorded, StoreError> {
    let nothing = Recorded::Accepted {
        build: None,
        canceled: vec![],
    };
    let build_id: Option<(i64, Option<i64>)> = match rerun {
        Rerun::CheckRun(id) => query_row(
            conn,
            "SELECT c.build_id, c.job_id FROM check_runs c JOIN builds b ON b.id = c.build_id
             WHERE c.check_run_id = ?1 AND lower(b.repo) = lower(?2) AND lower(c.repo) = lower(?2)",
            params![id, repo],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?,
        Rerun::Suite { head_sha } => query_row(
            conn,
            "SELECT max(b.id), NULL FROM builds b
             WHERE lower(b.repo) = lower(?1) AND json_extract(b.spec, '$.head_sha') = ?2
               AND EXISTS (SELECT 1 FROM check_runs c WHERE c.build_id = b.id)",
            params![repo, head_sha],
            |r| Ok(r.get::<_, Option<i64>>(0)?.map(|b| (b, None))),
        )?,
    };
    match build_id {
        None => Ok(nothing),
        Some((build_id, Some(job_id))) => {
            if !restart_job(conn, build_id, job_id)? {
                return Ok(nothing);
            }
            Ok(Recorded::Accepted {
                build: Some(build_id),
                canceled: vec![],
            })
        }
        Some((build_id, None)) => {
            let Some(old) = get_build(conn, build_id)? else {
                return Ok(nothing);
            };
            let (id, canceled) = insert_build(conn, &old.spec, auto_cancel)?;
            Ok(Recorded::Accepted {
                build: Some(id),
                canceled,
            })
        }
    }
}

/// Queues an ended job again in its build, with a fresh log and a new check run; jobs of later
/// stages that its failure had cancelled wait again, and an ended build runs again. False when
/// the job has not ended (it is running or about to).
fn restart_job(conn: &Connection, build_id: i64, job_id: i64) -> Result<bool, StoreError> {
    let n = exec(
        conn,
        "UPDATE jobs SET state = 'queued', reason = NULL, started_at = NULL, finished_at = NULL,
         lease_owner = NULL, lease_until = NULL, attempts = 0
         WHERE id = ?1 AND build_id = ?2 AND state IN ('passed', 'failed', 'errored', 'canceled', 'not_run')",
        params![job_id, build_id],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let later = "SELECT id FROM jobs WHERE build_id = ?1 AND state = 'canceled'
                 AND reason = 'an earlier stage failed'
                 AND stage_index > (SELECT stage_index FROM jobs WHERE id = ?2)";
    exec(
        conn,
        &format!("DELETE FROM check_runs WHERE job_id = ?2 OR job_id IN ({later})"),
        params![build_id, job_id],
    )?;
    exec(conn, "DELETE FROM log_chunks WHERE job_id = ?1", [job_id])?;
    // Run again on purpose: its earlier deploys no longer hold it back.
    exec(conn, "DELETE FROM deploys WHERE job_id = ?1", [job_id])?;
    exec(
        conn,
        &format!(
            "UPDATE jobs SET state = 'waiting', reason = NULL, finished_at = NULL WHERE id IN ({later})"
        ),
        params![build_id, job_id],
    )?;
    let reopened = exec(
        conn,
        "UPDATE builds SET state = 'running', reason = NULL, finished_at = NULL
         WHERE id = ?1 AND state IN ('passed', 'failed', 'errored', 'canceled')",
        [build_id],
    )?;
    if reopened > 0 {
        enqueue_status(conn, build_id, BuildState::Running, "Running")?;
    }
    enqueue_checks(conn, build_id)?;
    Ok(true)
}

#[async_trait]
impl ChecksStore for SqliteStore {
    async fn check_run(&self, job_id: i64) -> Result<Option<CheckRun>, StoreError> {
        self.read(move |conn| {
            let row: Option<(i64, i64, String, String)> = query_row(
                conn,
                "SELECT check_run_id, build_id, repo, synced FROM check_runs WHERE job_id = ?1",
                [job_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
            row.map(|(check_run_id, build_id, repo, synced)| {
                Ok(CheckRun {
                    job_id: Some(job_id),
                    build_id,
                    repo,
                    check_run_id,
                    synced: CheckSync::parse(&synced)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save_check_run(&self, run: CheckRun) -> Result<(), StoreError> {
        self.write(move |conn| {
            exec(
                conn,
                "INSERT INTO check_runs (check_run_id, build_id, repo, job_id, synced)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(check_run_id) DO UPDATE SET synced = excluded.synced",
                params![
                    run.check_run_id,
                    run.build_id,
                    run.repo,
                    run.job_id,
                    run.synced.as_str()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn log_digest(&self, job_id: i64, tail_bytes: usize) -> Result<LogDigest, StoreError> {
        self.read(move |conn| {
            let mut phases = conn.prepare_cached(
                "SELECT data FROM log_chunks WHERE job_id = ?1 AND kind = 'phase_end' ORDER BY seq",
            )?;
            let phase_ends = phases
                .query_map([job_id], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let failure = query_row(
                conn,
                "SELECT data FROM log_chunks WHERE job_id = ?1 AND kind = 'output'
                 AND instr(data, 'The command \"') > 0 ORDER BY seq LIMIT 1",
                [job_id],
                |r| r.get(0),
            )
            .optional()?;
            let mut tail = conn.prepare_cached(
                "SELECT kind, data FROM log_chunks WHERE job_id = ?1 AND kind IN ('output', 'note')
                 ORDER BY seq DESC",
            )?;
            let mut rows = tail.query_map([job_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut error = None;
            let newest_first = std::iter::from_fn(|| match rows.next()? {
                Ok(row) => Some(row),
                Err(e) => {
                    error = Some(e);
                    None
                }
            });
            let digest = LogDigest::of(phase_ends, failure, newest_first, tail_bytes);
            match error {
                Some(e) => Err(e.into()),
                None => Ok(digest),
            }
        })
        .await
    }
}
