//! What the web pages, the API and metrics read — builds, jobs, logs, counts — and retention's
//! pruning of finished builds.

use super::builds::{
    BUILD_COLS, JOB_COLS, build_rows, count_by_state, filter_args, filtered, get_build, job_row,
    jobs_of,
};
use super::{Cells, Sql, scalar};
use crate::store::*;

/// Most builds removed in one transaction, so pruning never holds locks (or SQLite's writer)
/// for long.
pub(crate) const PRUNE_BATCH: i64 = 200;

/// Permission answers older than this are never used again.
const PERMISSION_ROWS_KEPT_MS: i64 = 86_400_000;

/// See [`Store::repos`].
pub(crate) async fn repos<D: Sql>(db: &D) -> Result<Vec<Build>, StoreError> {
    let sql = format!(
        "SELECT {BUILD_COLS} FROM builds
         WHERE id IN (SELECT max(id) FROM builds GROUP BY repo) ORDER BY repo"
    );
    build_rows(db.rows(&sql, &[]).await?)
}

/// See [`Store::builds`].
pub(crate) async fn builds<D: Sql>(
    db: &D,
    filter: &BuildFilter,
    limit: i64,
) -> Result<Vec<Build>, StoreError> {
    // Two statements: `?1 IS NULL OR repo = ?1` would keep SQLite from the (repo, id) index and
    // scan every build to list one repository's.
    let repo = match filter.repo {
        Some(_) => "repo = ?1",
        None => "CAST(?1 AS TEXT) IS NULL",
    };
    let sql = format!(
        "SELECT {BUILD_COLS} FROM builds WHERE {repo} AND {} ORDER BY id DESC LIMIT ?4",
        filtered(D::DIALECT)
    );
    let (event, tag) = filter_args(filter);
    let args: [&dyn super::Arg; 5] = [&filter.repo, &filter.branch, &event, &limit, &tag];
    build_rows(db.rows(&sql, &args).await?)
}

/// See [`Store::build`].
pub(crate) async fn build<D: Sql>(
    db: &D,
    id: i64,
) -> Result<Option<(Build, Vec<Job>)>, StoreError> {
    let Some(b) = get_build(db, id).await? else {
        return Ok(None);
    };
    Ok(Some((b, jobs_of(db, id).await?)))
}

/// See [`Store::job`].
pub(crate) async fn job<D: Sql>(db: &D, id: i64) -> Result<Option<Job>, StoreError> {
    db.opt(
        &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(job_row)
    .transpose()
}

/// See [`Store::log`].
pub(crate) async fn log<D: Sql>(
    db: &D,
    job_id: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<LogChunk>, StoreError> {
    let rows = db
        .rows(
            "SELECT seq, kind, data FROM log_chunks WHERE job_id = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
            &[&job_id, &after_seq, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(LogChunk {
                seq: r.get(0)?,
                kind: ChunkKind::parse(&r.get::<String>(1)?)?,
                data: r.get(2)?,
            })
        })
        .collect()
}

/// See [`Store::branch_state`].
pub(crate) async fn branch_state<D: Sql>(
    db: &D,
    repo: &str,
    branch: &str,
) -> Result<Option<BuildState>, StoreError> {
    let row = db
        .opt(
            "SELECT state FROM builds WHERE repo = ?1 AND branch = ?2 AND event = 'push'
             AND state NOT IN ('queued', 'preparing', 'running', 'canceled')
             ORDER BY id DESC LIMIT 1",
            &[&repo, &branch],
        )
        .await?;
    row.map(|r| BuildState::parse(&r.get::<String>(0)?))
        .transpose()
}

/// See [`Store::counts`].
pub(crate) async fn counts<D: Sql>(db: &D) -> Result<Counts, StoreError> {
    Ok(Counts {
        builds: count_by_state(db, "builds").await?,
        jobs: count_by_state(db, "jobs").await?,
        outbox_pending: scalar(db, "SELECT count(*) FROM outbox WHERE done = false", &[]).await?,
        deliveries: scalar(db, "SELECT count(*) FROM deliveries", &[]).await?,
    })
}

/// Removes at most [`PRUNE_BATCH`] builds past the limits, with their jobs, logs and reports.
pub(crate) async fn prune_batch<D: Sql>(
    db: &D,
    older_than: Option<Millis>,
    keep_per_repo: Option<i64>,
) -> Result<Pruned, StoreError> {
    // Only final builds whose reports have all been sent: a running build, or one whose result
    // GitHub has not been told yet, is never touched.
    let victims = db
        .rows(
            "SELECT id, repo FROM (
                 SELECT b.id, b.repo, coalesce(b.finished_at, b.created_at) AS t,
                        row_number() OVER (PARTITION BY lower(b.repo) ORDER BY b.id DESC) AS n
                 FROM builds b
                 WHERE b.state IN ('passed', 'failed', 'errored', 'canceled', 'skipped')) v
             WHERE ((CAST(?1 AS BIGINT) IS NOT NULL AND t < ?1)
                    OR (CAST(?2 AS BIGINT) IS NOT NULL AND n > ?2))
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.build_id = v.id AND o.done = false)
               AND NOT EXISTS (SELECT 1 FROM notify_outbox o WHERE o.build_id = v.id AND o.done = false)
             ORDER BY id LIMIT ?3",
            &[&older_than, &keep_per_repo, &PRUNE_BATCH],
        )
        .await?;
    let mut pruned = Pruned::default();
    for row in victims {
        let (id, repo): (i64, String) = (row.get(0)?, row.get(1)?);
        let of_jobs = "job_id IN (SELECT id FROM jobs WHERE build_id = ?1)";
        let sql = format!("DELETE FROM log_chunks WHERE {of_jobs}");
        pruned.log_chunks += db.exec(&sql, &[&id]).await? as usize;
        db.exec(&format!("DELETE FROM deploys WHERE {of_jobs}"), &[&id])
            .await?;
        pruned.jobs += db
            .exec("DELETE FROM jobs WHERE build_id = ?1", &[&id])
            .await? as usize;
        for sql in [
            "DELETE FROM outbox WHERE build_id = ?1",
            "DELETE FROM check_runs WHERE build_id = ?1",
            "DELETE FROM notify_outbox WHERE build_id = ?1",
            "UPDATE deliveries SET build_id = NULL WHERE build_id = ?1",
            "DELETE FROM builds WHERE id = ?1",
        ] {
            db.exec(sql, &[&id]).await?;
        }
        pruned.builds.push((id, repo));
    }
    Ok(pruned)
}

/// Removes deliveries received before `older_than` (and with them the replay protection of
/// their bodies, which lasts exactly as long as they are kept) and stale permission answers;
/// the number of deliveries removed.
pub(crate) async fn prune_deliveries<D: Sql>(
    db: &D,
    older_than: Millis,
) -> Result<usize, StoreError> {
    db.exec(
        "DELETE FROM permissions WHERE checked_at < ?1",
        &[&(now_ms() - PERMISSION_ROWS_KEPT_MS)],
    )
    .await?;
    let n = db
        .exec(
            "DELETE FROM deliveries WHERE received_at < ?1",
            &[&older_than],
        )
        .await?;
    Ok(n as usize)
}
