//! Check runs: the `check_runs` table, the outbox's `checks` and `lint` items, the log digest a
//! check run's summary shows, and re-running what a `rerequested` event names.

use super::builds::{enqueue_status, get_build, insert_build, lock_build};
use super::{Cells, Sql};
use crate::store::progress::EARLIER_STAGE_FAILED;
use crate::store::{
    BuildState, CheckRun, CheckSync, LintAnnotation, LogDigest, Recorded, Rerun, StoreError, now_ms,
};

/// Queues "bring this build's check runs up to date", in the transaction of the change; nothing
/// when such an item is due already and nobody is sending it: that one reads the check runs'
/// state when it is sent, this change included. Jobs claimed and ended one after the other so
/// queue one item, not two each (and the commit is not read out of the build's spec again).
pub(crate) async fn enqueue_checks<D: Sql>(db: &D, build_id: i64) -> Result<(), StoreError> {
    enqueue_checks_of(db, "= ?1", &build_id).await
}

/// [`enqueue_checks`] for the build of job `job_id`.
pub(crate) async fn enqueue_checks_of_job<D: Sql>(db: &D, job_id: i64) -> Result<(), StoreError> {
    enqueue_checks_of(db, "= (SELECT build_id FROM jobs WHERE id = ?1)", &job_id).await
}

/// [`enqueue_checks`] for the builds whose id is `builds` in SQL (`= ?1`, `IN (…)`), given `?1`
/// bound to `arg`. A build without jobs has no check run to bring up to date (a build superseded
/// before it was prepared).
pub(crate) async fn enqueue_checks_of<D: Sql>(
    db: &D,
    builds: &str,
    arg: &dyn super::Arg,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at, kind)
         SELECT b.id, b.repo, {}, 'sync', '', ?2, 'checks' FROM builds b WHERE b.id {builds}
           AND EXISTS (SELECT 1 FROM jobs j WHERE j.build_id = b.id)
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.build_id = b.id AND o.kind = 'checks'
                           AND o.done = false AND o.next_at <= ?2
                           AND coalesce(o.claimed_until, 0) <= ?2)
         ORDER BY b.id",
        D::DIALECT.json("b.spec", "head_sha")
    );
    db.exec(&sql, &[arg, &now_ms()]).await?;
    Ok(())
}

/// Queues the check run of a pipeline file that could not be planned.
pub(crate) async fn enqueue_lint<D: Sql>(
    db: &D,
    build_id: i64,
    reason: &str,
    annotations: &[LintAnnotation],
) -> Result<(), StoreError> {
    let payload =
        serde_json::to_string(annotations).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let description: String = reason.chars().take(140).collect();
    let sql = format!(
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at, kind, payload)
         SELECT id, repo, {}, 'failure', ?2, ?3, 'lint', ?4 FROM builds WHERE id = ?1",
        D::DIALECT.json("spec", "head_sha")
    );
    db.exec(&sql, &[&build_id, &description, &now_ms(), &payload])
        .await?;
    Ok(())
}

/// Runs again what a `rerequested` event names, if it is of `repo` and Slipway made its check
/// runs: a job in place (with the later stages a failure had cancelled), or a commit's latest
/// build as a new build.
pub(crate) async fn rerun<D: Sql>(
    db: &D,
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
                 WHERE c.check_run_id = ?1 AND lower(b.repo) = lower(?2) AND lower(c.repo) = lower(?2)",
                &[id, &repo],
            )
            .await?
            .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?)))
            .transpose()?,
        Rerun::Suite { head_sha } => {
            let sql = format!(
                "SELECT max(b.id) FROM builds b WHERE lower(b.repo) = lower(?1) AND {} = ?2
                   AND EXISTS (SELECT 1 FROM check_runs c WHERE c.build_id = b.id)",
                D::DIALECT.json("b.spec", "head_sha")
            );
            let latest: Option<i64> = super::scalar(db, &sql, &[&repo, head_sha]).await?;
            latest.map(|b| (b, None))
        }
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
/// stages that its failure had cancelled wait again, and an ended build runs again. False when
/// the job has not ended (it is running or about to).
async fn restart_job<D: Sql>(db: &D, build_id: i64, job_id: i64) -> Result<bool, StoreError> {
    let n = db
        .exec(
            "UPDATE jobs SET state = 'queued', reason = NULL, started_at = NULL, finished_at = NULL,
             lease_owner = NULL, lease_until = NULL, attempts = 0
             WHERE id = ?1 AND build_id = ?2
               AND state IN ('passed', 'failed', 'errored', 'canceled', 'not_run')",
            &[&job_id, &build_id],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    let later = "SELECT id FROM jobs WHERE build_id = ?1 AND state = 'canceled' AND reason = ?3
                 AND stage_index > (SELECT stage_index FROM jobs WHERE id = ?2)";
    let args: [&dyn super::Arg; 3] = [&build_id, &job_id, &EARLIER_STAGE_FAILED];
    let sql = format!("DELETE FROM check_runs WHERE job_id = ?2 OR job_id IN ({later})");
    db.exec(&sql, &args).await?;
    db.exec("DELETE FROM log_chunks WHERE job_id = ?1", &[&job_id])
        .await?;
    // Run again on purpose: its earlier deploys no longer hold it back.
    db.exec("DELETE FROM deploys WHERE job_id = ?1", &[&job_id])
        .await?;
    let sql = format!(
        "UPDATE jobs SET state = 'waiting', reason = NULL, finished_at = NULL WHERE id IN ({later})"
    );
    db.exec(&sql, &args).await?;
    let reopened = db
        .exec(
            "UPDATE builds SET state = 'running', reason = NULL, finished_at = NULL
             WHERE id = ?1 AND state IN ('passed', 'failed', 'errored', 'canceled')",
            &[&build_id],
        )
        .await?;
    if reopened > 0 {
        enqueue_status(db, build_id, BuildState::Running, "Running").await?;
    }
    enqueue_checks(db, build_id).await?;
    db.wake_workers().await?;
    Ok(true)
}

/// See [`crate::store::ChecksStore::check_run`].
pub(crate) async fn check_run<D: Sql>(db: &D, job_id: i64) -> Result<Option<CheckRun>, StoreError> {
    let row = db
        .opt(
            "SELECT check_run_id, build_id, repo, synced FROM check_runs WHERE job_id = ?1",
            &[&job_id],
        )
        .await?;
    row.map(|r| {
        Ok(CheckRun {
            job_id: Some(job_id),
            check_run_id: r.get(0)?,
            build_id: r.get(1)?,
            repo: r.get(2)?,
            synced: CheckSync::parse(&r.get::<String>(3)?)?,
        })
    })
    .transpose()
}

/// See [`crate::store::ChecksStore::save_check_run`].
pub(crate) async fn save_check_run<D: Sql>(db: &D, run: &CheckRun) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO check_runs (check_run_id, build_id, repo, job_id, synced)
         VALUES (?1, ?2, ?3, ?4, ?5)
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
}

/// See [`crate::store::ChecksStore::log_digest`].
pub(crate) async fn log_digest<D: Sql>(
    db: &D,
    job_id: i64,
    tail_bytes: usize,
) -> Result<LogDigest, StoreError> {
    let phase_ends = db
        .rows(
            "SELECT data FROM log_chunks WHERE job_id = ?1 AND kind = 'phase_end' ORDER BY seq",
            &[&job_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<Vec<String>, _>>()?;
    let sql = format!(
        "SELECT data FROM log_chunks WHERE job_id = ?1 AND kind = 'output'
         AND {}(data, 'The command \"') > 0 ORDER BY seq LIMIT 1",
        D::DIALECT.position()
    );
    let failure = db
        .opt(&sql, &[&job_id])
        .await?
        .map(|r| r.get(0))
        .transpose()?;
    // Read backwards in pages until the tail is long enough.
    let mut tail = Vec::new();
    let (mut bytes, mut before) = (0usize, i64::MAX);
    while bytes <= tail_bytes {
        let rows = db
            .rows(
                "SELECT seq, kind, data FROM log_chunks
                 WHERE job_id = ?1 AND kind IN ('output', 'note') AND seq < ?2
                 ORDER BY seq DESC LIMIT 256",
                &[&job_id, &before],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            before = r.get(0)?;
            let data: String = r.get(2)?;
            bytes += data.len() + 1;
            tail.push((r.get(1)?, data));
        }
    }
    Ok(LogDigest::of(
        phase_ends,
        failure,
        tail.into_iter(),
        tail_bytes,
    ))
}
