//! Builds and jobs in PostgreSQL: their rows, inserting a build, ending one, and applying the
//! build state machine ([`crate::store::progress`]) as jobs end.

use super::{Db, checks, notify};
use crate::event::NewBuild;
use crate::store::progress::{EARLIER_STAGE_FAILED, Step, describe, next_step};
use crate::store::{Build, BuildState, Job, JobState, StoreError, now_ms};
use tokio_postgres::Row;

pub(super) const BUILD_COLS: &str =
    "id, repo, spec, state, reason, log, merge_sha, created_at, started_at, finished_at";

/// The list filters after the repository: `$2` branch, `$3` event, `$5` whether of a tag.
pub(super) const FILTERED: &str = "($2::text IS NULL OR branch = $2) AND ($3::text IS NULL OR event = $3) \
     AND ($5::bool IS NULL OR ((spec::jsonb -> 'context' ->> 'tag') IS NOT NULL) = $5)";

pub(super) fn build_row(r: &Row) -> Result<Build, StoreError> {
    let spec: String = r.try_get(2)?;
    Ok(Build {
        id: r.try_get(0)?,
        repo: r.try_get(1)?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Invalid(e.to_string()))?,
        state: BuildState::parse(r.try_get(3)?)?,
        reason: r.try_get(4)?,
        log: r.try_get(5)?,
        merge_sha: r.try_get(6)?,
        created_at: r.try_get(7)?,
        started_at: r.try_get(8)?,
        finished_at: r.try_get(9)?,
    })
}

pub(super) fn build_rows(rows: Vec<Row>) -> Result<Vec<Build>, StoreError> {
    rows.iter().map(build_row).collect()
}

pub(super) async fn get_build(db: &Db<'_, '_>, id: i64) -> Result<Option<Build>, StoreError> {
    db.opt(
        &format!("SELECT {BUILD_COLS} FROM builds WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(build_row)
    .transpose()
}

pub(super) const JOB_COLS: &str = "id, build_id, number, stage_index, stage, name, allow_failure, \
                        matrix, state, reason, attempts, started_at, finished_at";

pub(super) fn job_row(r: &Row) -> Result<Job, StoreError> {
    let matrix: String = r.try_get(7)?;
    Ok(Job {
        id: r.try_get(0)?,
        build_id: r.try_get(1)?,
        number: r.try_get(2)?,
        stage_index: r.try_get(3)?,
        stage: r.try_get(4)?,
        name: r.try_get(5)?,
        allow_failure: r.try_get(6)?,
        matrix: serde_json::from_str(&matrix).map_err(|e| StoreError::Invalid(e.to_string()))?,
        state: JobState::parse(r.try_get(8)?)?,
        reason: r.try_get(9)?,
        attempts: r.try_get(10)?,
        started_at: r.try_get(11)?,
        finished_at: r.try_get(12)?,
    })
}

pub(super) async fn jobs_of(db: &Db<'_, '_>, build_id: i64) -> Result<Vec<Job>, StoreError> {
    let rows = db
        .rows(
            &format!(
                "SELECT {JOB_COLS} FROM jobs WHERE build_id = $1 ORDER BY stage_index, number"
            ),
            &[&build_id],
        )
        .await?;
    rows.iter().map(job_row).collect()
}

/// Locks a build's row for the rest of the transaction: every change to a build or its jobs
/// takes this lock first, so concurrent changes to one build run one after the other.
pub(super) async fn lock_build(db: &Db<'_, '_>, build_id: i64) -> Result<(), StoreError> {
    db.opt(
        "SELECT 1 FROM builds WHERE id = $1 FOR UPDATE",
        &[&build_id],
    )
    .await?;
    Ok(())
}

pub(super) async fn enqueue_status(
    db: &Db<'_, '_>,
    build_id: i64,
    state: BuildState,
    description: &str,
) -> Result<(), StoreError> {
    let description: String = description.chars().take(140).collect();
    let n = db
        .exec(
            "INSERT INTO outbox (build_id, repo, sha, state, description, next_at)
             SELECT id, repo, spec::jsonb ->> 'head_sha', $2, $3, $4 FROM builds WHERE id = $1",
            &[&build_id, &state.github_state(), &description, &now_ms()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "a status for build {build_id}, which does not exist"
        )));
    }
    Ok(())
}

/// Ends a build that is not final yet, with its jobs; returns false if it had already ended.
pub(super) async fn end_build(
    db: &Db<'_, '_>,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let n = db
        .exec(
            "UPDATE builds SET state = $2, reason = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND state IN ('queued', 'preparing', 'running')",
            &[&build_id, &state.as_str(), &reason, &now],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    let job_state = if state == BuildState::Canceled {
        JobState::Canceled
    } else {
        JobState::Errored
    };
    db.exec(
        "UPDATE jobs SET state = $2, reason = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL
         WHERE build_id = $1 AND state IN ('waiting', 'queued', 'running')",
        &[&build_id, &job_state.as_str(), &reason, &now],
    )
    .await?;
    report_end(db, build_id, state, reason).await?;
    Ok(true)
}

/// Queues the reports of a build that ended: its status, check runs and notifications.
async fn report_end(
    db: &Db<'_, '_>,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<(), StoreError> {
    enqueue_status(
        db,
        build_id,
        state,
        &format!("{}: {reason}", describe(state)),
    )
    .await?;
    checks::enqueue_checks(db, build_id).await?;
    notify::enqueue(db, build_id, state, reason).await
}

/// Moves a running build forward after a job ended (the caller holds the build's lock).
pub(super) async fn advance(
    db: &Db<'_, '_>,
    build_id: i64,
) -> Result<Option<BuildState>, StoreError> {
    let Some(build) = get_build(db, build_id).await? else {
        return Ok(None);
    };
    if build.state != BuildState::Running {
        return Ok(None);
    }
    match next_step(&jobs_of(db, build_id).await?) {
        Step::Wait => Ok(None),
        Step::Open(stage) => {
            db.exec(
                "UPDATE jobs SET state = 'queued'
                 WHERE build_id = $1 AND stage_index = $2 AND state = 'waiting'",
                &[&build_id, &stage],
            )
            .await?;
            wake_workers(db).await?;
            Ok(None)
        }
        Step::End {
            cancel_after,
            state,
            reason,
        } => {
            if let Some(stage) = cancel_after {
                db.exec(
                    "UPDATE jobs SET state = 'canceled', reason = $4, finished_at = $3
                     WHERE build_id = $1 AND stage_index > $2 AND state = 'waiting'",
                    &[&build_id, &stage, &now_ms(), &EARLIER_STAGE_FAILED],
                )
                .await?;
            }
            db.exec(
                "UPDATE builds SET state = $2, reason = $3, finished_at = $4 WHERE id = $1",
                &[&build_id, &state.as_str(), &reason, &now_ms()],
            )
            .await?;
            report_end(db, build_id, state, reason).await?;
            Ok(Some(state))
        }
    }
}

/// Inserts a queued build; with `auto_cancel`, cancels the older open builds with its supersede
/// key. Returns its id and the builds it cancelled.
pub(super) async fn insert_build(
    db: &Db<'_, '_>,
    build: &NewBuild,
    auto_cancel: bool,
) -> Result<(i64, Vec<i64>), StoreError> {
    let spec = serde_json::to_string(build).map_err(|e| StoreError::Invalid(e.to_string()))?;
    if auto_cancel && let Some(key) = &build.supersede_key {
        // Two servers taking pushes of one branch at once: the later one sees the earlier.
        db.exec(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("{}\n{key}", build.repo.to_lowercase())],
        )
        .await?;
    }
    let id: i64 = db
        .one(
            "INSERT INTO builds (repo, spec, supersede_key, branch, event, state, created_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6) RETURNING id",
            &[
                &build.repo,
                &spec,
                &build.supersede_key,
                &build.context.branch,
                &build.context.event.as_str(),
                &now_ms(),
            ],
        )
        .await?
        .try_get(0)?;
    let mut canceled = Vec::new();
    if auto_cancel && let Some(key) = &build.supersede_key {
        let older = db
            .rows(
                "SELECT id FROM builds WHERE repo = $1 AND supersede_key = $2 AND id < $3
                 AND state IN ('queued', 'preparing', 'running') ORDER BY id",
                &[&build.repo, key, &id],
            )
            .await?;
        for row in older {
            let old: i64 = row.try_get(0)?;
            lock_build(db, old).await?;
            let why = format!("superseded by build #{id}");
            if end_build(db, old, BuildState::Canceled, &why).await? {
                canceled.push(old);
            }
        }
    }
    enqueue_status(db, id, BuildState::Queued, "Queued").await?;
    wake_workers(db).await?;
    Ok((id, canceled))
}

pub(super) async fn count_by_state(
    db: &Db<'_, '_>,
    table: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = db
        .rows(
            &format!("SELECT state, count(*) FROM {table} GROUP BY state ORDER BY state"),
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The channel idle workers listen on; notified in the transaction that makes work claimable,
/// so it is delivered when that transaction commits.
pub(crate) const WORK_CHANNEL: &str = "slipway_work";

/// Wakes the idle workers of every process once the current transaction commits.
pub(super) async fn wake_workers(db: &Db<'_, '_>) -> Result<(), StoreError> {
    db.exec("SELECT pg_notify($1, '')", &[&WORK_CHANNEL])
        .await?;
    Ok(())
}
