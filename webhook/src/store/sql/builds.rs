//! Builds and jobs: their rows, inserting a build (superseding older ones), ending one, and
//! applying the build state machine ([`crate::store::progress`]) as its jobs end.

use super::{Cells, Dialect, Sql, checks, notify, scalar};
use crate::event::NewBuild;
use crate::store::progress::{EARLIER_STAGE_FAILED, Step, describe, next_step};
use crate::store::{Build, BuildFilter, BuildState, BuiltBy, Job, JobState, StoreError, now_ms};

/// The columns [`build_row`] reads.
pub(crate) const BUILD_COLS: &str =
    "id, repo, spec, state, reason, log, merge_sha, created_at, started_at, finished_at";

/// The columns [`job_row`] reads.
pub(crate) const JOB_COLS: &str = "id, build_id, number, stage_index, stage, name, \
     allow_failure, matrix, state, reason, attempts, started_at, finished_at";

/// What an open build's state is, in SQL.
pub(crate) const OPEN: &str = "state IN ('queued', 'preparing', 'running')";

fn invalid(e: serde_json::Error) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// A build from a row of [`BUILD_COLS`].
pub(crate) fn build_row(r: &impl Cells) -> Result<Build, StoreError> {
    Ok(Build {
        id: r.get(0)?,
        repo: r.get(1)?,
        spec: serde_json::from_str(&r.get::<String>(2)?).map_err(invalid)?,
        state: BuildState::parse(&r.get::<String>(3)?)?,
        reason: r.get(4)?,
        log: r.get(5)?,
        merge_sha: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

/// A job from a row of [`JOB_COLS`].
pub(crate) fn job_row(r: &impl Cells) -> Result<Job, StoreError> {
    Ok(Job {
        id: r.get(0)?,
        build_id: r.get(1)?,
        number: r.get(2)?,
        stage_index: r.get(3)?,
        stage: r.get(4)?,
        name: r.get(5)?,
        allow_failure: r.get(6)?,
        matrix: serde_json::from_str(&r.get::<String>(7)?).map_err(invalid)?,
        state: JobState::parse(&r.get::<String>(8)?)?,
        reason: r.get(9)?,
        attempts: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
    })
}

/// The builds of `rows`.
pub(crate) fn build_rows(rows: Vec<impl Cells>) -> Result<Vec<Build>, StoreError> {
    rows.iter().map(build_row).collect()
}

/// A [`BuildFilter`]'s branch (`?2`), event (`?3`) and whether the build is of a tag (`?5`), as
/// SQL; each `NULL` means any.
pub(crate) fn filtered(dialect: Dialect) -> String {
    format!(
        "(CAST(?2 AS TEXT) IS NULL OR branch = ?2) AND (CAST(?3 AS TEXT) IS NULL OR event = ?3) \
         AND (CAST(?5 AS BOOLEAN) IS NULL OR ({} IS NOT NULL) = ?5)",
        dialect.json("spec", "context.tag")
    )
}

/// A filter's event (`?3`) and tag flag (`?5`) as [`filtered`] binds them.
pub(crate) fn filter_args(filter: &BuildFilter) -> (Option<&'static str>, Option<bool>) {
    (
        filter.event.map(|e| e.event().as_str()),
        filter.event.and_then(BuiltBy::tag),
    )
}

pub(crate) async fn get_build<D: Sql>(db: &D, id: i64) -> Result<Option<Build>, StoreError> {
    db.opt(
        &format!("SELECT {BUILD_COLS} FROM builds WHERE id = ?1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(build_row)
    .transpose()
}

pub(crate) async fn jobs_of<D: Sql>(db: &D, build_id: i64) -> Result<Vec<Job>, StoreError> {
    let sql =
        format!("SELECT {JOB_COLS} FROM jobs WHERE build_id = ?1 ORDER BY stage_index, number");
    db.rows(&sql, &[&build_id])
        .await?
        .iter()
        .map(job_row)
        .collect()
}

/// Locks a build's row for the rest of the transaction: every change to a build or its jobs
/// takes this lock first, so concurrent changes to one build run one after the other (SQLite's
/// one writer has them in turn anyway).
pub(crate) async fn lock_build<D: Sql>(db: &D, build_id: i64) -> Result<(), StoreError> {
    if D::DIALECT == Dialect::Postgres {
        db.opt(
            "SELECT 1 FROM builds WHERE id = ?1 FOR UPDATE",
            &[&build_id],
        )
        .await?;
    }
    Ok(())
}

/// Queues a status report of a build; its commit comes straight out of the stored spec (no read
/// back and no JSON decoding here, on the delivery path).
pub(crate) async fn enqueue_status<D: Sql>(
    db: &D,
    build_id: i64,
    state: BuildState,
    description: &str,
) -> Result<(), StoreError> {
    let description: String = description.chars().take(140).collect();
    let sql = format!(
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at)
         SELECT id, repo, {}, ?2, ?3, ?4 FROM builds WHERE id = ?1",
        D::DIALECT.json("spec", "head_sha")
    );
    let args: [&dyn super::Arg; 4] = [&build_id, &state.github_state(), &description, &now_ms()];
    if db.exec(&sql, &args).await? == 0 {
        return Err(StoreError::Invalid(format!(
            "a status for build {build_id}, which does not exist"
        )));
    }
    Ok(())
}

/// Ends a build that is not final yet, with its jobs; returns false if it had already ended.
pub(crate) async fn end_build<D: Sql>(
    db: &D,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let sql = format!(
        "UPDATE builds SET state = ?2, reason = ?3, finished_at = ?4, lease_owner = NULL,
         lease_until = NULL WHERE id = ?1 AND {OPEN}"
    );
    if db
        .exec(&sql, &[&build_id, &state.as_str(), &reason, &now])
        .await?
        == 0
    {
        return Ok(false);
    }
    let job_state = if state == BuildState::Canceled {
        JobState::Canceled
    } else {
        JobState::Errored
    };
    db.exec(
        "UPDATE jobs SET state = ?2, reason = ?3, finished_at = ?4, lease_owner = NULL,
         lease_until = NULL WHERE build_id = ?1 AND state IN ('waiting', 'queued', 'running')",
        &[&build_id, &job_state.as_str(), &reason, &now],
    )
    .await?;
    report_end(db, build_id, state, reason).await?;
    Ok(true)
}

/// Queues the reports of a build that ended: its status, check runs and notifications.
async fn report_end<D: Sql>(
    db: &D,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<(), StoreError> {
    let description = format!("{}: {reason}", describe(state));
    enqueue_status(db, build_id, state, &description).await?;
    checks::enqueue_checks(db, build_id).await?;
    notify::enqueue(db, build_id, state, reason).await
}

/// Moves a running build forward after a job ended (the caller holds the build's lock): opens
/// the next stage, cancels stages after a failed one, and ends the build once every job ended.
pub(crate) async fn advance<D: Sql>(
    db: &D,
    build_id: i64,
) -> Result<Option<BuildState>, StoreError> {
    let sql = format!("SELECT state, {WAITS} FROM builds WHERE id = ?1");
    let Some(row) = db.opt(&sql, &[&build_id]).await? else {
        return Ok(None);
    };
    let (state, waits): (String, bool) = (row.get(0)?, row.get(1)?);
    if state != BuildState::Running.as_str() || waits {
        return Ok(None);
    }
    match next_step(&jobs_of(db, build_id).await?) {
        Step::Wait => Ok(None),
        Step::Open(stage) => {
            db.exec(
                "UPDATE jobs SET state = 'queued'
                 WHERE build_id = ?1 AND stage_index = ?2 AND state = 'waiting'",
                &[&build_id, &stage],
            )
            .await?;
            db.wake_workers().await?;
            Ok(None)
        }
        Step::End {
            cancel_after,
            state,
            reason,
        } => {
            if let Some(stage) = cancel_after {
                db.exec(
                    "UPDATE jobs SET state = 'canceled', reason = ?4, finished_at = ?3
                     WHERE build_id = ?1 AND stage_index > ?2 AND state = 'waiting'",
                    &[&build_id, &stage, &now_ms(), &EARLIER_STAGE_FAILED],
                )
                .await?;
            }
            db.exec(
                "UPDATE builds SET state = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1",
                &[&build_id, &state.as_str(), &reason, &now_ms()],
            )
            .await?;
            report_end(db, build_id, state, reason).await?;
            Ok(Some(state))
        }
    }
}

/// True when [`next_step`] would say [`Step::Wait`] for the build `?1`, read without its jobs:
/// the earliest stage with a queued or running job has no stage before it that waits or failed.
/// The common case when one of many jobs ends, answered by the database alone.
const WAITS: &str = "(SELECT q.s IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM jobs j WHERE j.build_id = ?1 AND j.stage_index < q.s
          AND (j.state = 'waiting'
               OR (j.allow_failure = false AND j.state IN ('failed', 'errored', 'canceled'))))
    FROM (SELECT min(stage_index) AS s FROM jobs
          WHERE build_id = ?1 AND state IN ('queued', 'running')) q)";

/// The key under which inserting `build` is serialized with other processes (see
/// [`insert_build`]), when it supersedes older builds.
pub(crate) fn supersede_lock(build: &NewBuild, auto_cancel: bool) -> Option<String> {
    let key = build.supersede_key.as_ref().filter(|_| auto_cancel)?;
    Some(format!("{}\n{key}", build.repo.to_lowercase()))
}

/// Inserts a queued build; with `auto_cancel`, cancels the older open builds with its supersede
/// key. Returns its id and the builds it cancelled.
pub(crate) async fn insert_build<D: Sql>(
    db: &D,
    build: &NewBuild,
    auto_cancel: bool,
) -> Result<(i64, Vec<i64>), StoreError> {
    let spec = serde_json::to_string(build).map_err(invalid)?;
    let supersede = build.supersede_key.as_ref().filter(|_| auto_cancel);
    if let Some(lock) = supersede_lock(build, auto_cancel) {
        // Two servers taking pushes of one branch at once: the later one sees the earlier.
        db.serialize(&lock).await?;
    }
    let id: i64 = scalar(
        db,
        "INSERT INTO builds (repo, spec, supersede_key, branch, event, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6) RETURNING id",
        &[
            &build.repo,
            &spec,
            &build.supersede_key,
            &build.context.branch,
            &build.context.event.as_str(),
            &now_ms(),
        ],
    )
    .await?;
    let canceled = match supersede {
        Some(key) => {
            let why = format!("superseded by build #{id}");
            cancel_open(db, &build.repo, key, Some(id), &why).await?
        }
        None => Vec::new(),
    };
    enqueue_status(db, id, BuildState::Queued, "Queued").await?;
    db.wake_workers().await?;
    Ok((id, canceled))
}

/// Cancels the open builds of `repo` with the supersede key `key` (older than `before`, when
/// given), with their jobs, and queues their reports; returns their ids in order. The builds are
/// ended and read back by one statement, whose row locks stand for [`lock_build`]: a build that
/// another transaction ends meanwhile is skipped once that one commits.
pub(crate) async fn cancel_open<D: Sql>(
    db: &D,
    repo: &str,
    key: &str,
    before: Option<i64>,
    reason: &str,
) -> Result<Vec<i64>, StoreError> {
    let now = now_ms();
    let sql = format!(
        "UPDATE builds SET state = 'canceled', reason = ?4, finished_at = ?5, lease_owner = NULL,
         lease_until = NULL
         WHERE repo = ?1 AND supersede_key = ?2 AND (CAST(?3 AS BIGINT) IS NULL OR id < ?3)
           AND {OPEN}
         RETURNING id, notify IS NOT NULL"
    );
    let args: [&dyn super::Arg; 5] = [&repo, &key, &before, &reason, &now];
    let mut ended = db
        .rows(&sql, &args)
        .await?
        .iter()
        .map(|r| Ok((r.get::<i64>(0)?, r.get::<bool>(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    ended.sort_unstable();
    let ids: Vec<i64> = ended.iter().map(|(id, _)| *id).collect();
    let list = super::id_list(&ids)?;
    let in_list = D::DIALECT.in_ids("?1");
    db.exec(
        &format!(
            "UPDATE jobs SET state = 'canceled', reason = ?2, finished_at = ?3, lease_owner = NULL,
             lease_until = NULL WHERE build_id {in_list} AND state IN ('waiting', 'queued', 'running')"
        ),
        &[&list, &reason, &now],
    )
    .await?;
    let description: String = format!("{}: {reason}", describe(BuildState::Canceled))
        .chars()
        .take(140)
        .collect();
    let sql = format!(
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at)
         SELECT id, repo, {}, ?2, ?3, ?4 FROM builds WHERE id {in_list} ORDER BY id",
        D::DIALECT.json("spec", "head_sha")
    );
    let state = BuildState::Canceled.github_state();
    db.exec(&sql, &[&list, &state, &description, &now]).await?;
    checks::enqueue_checks_of(db, &in_list, &list).await?;
    for (id, notifies) in ended {
        if notifies {
            notify::enqueue(db, id, BuildState::Canceled, reason).await?;
        }
    }
    Ok(ids)
}

/// How many rows of `table` (`builds` or `jobs`) are in each state.
pub(crate) async fn count_by_state<D: Sql>(
    db: &D,
    table: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = format!("SELECT state, count(*) FROM {table} GROUP BY state ORDER BY state");
    let rows = db.rows(&sql, &[]).await?;
    rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
}
