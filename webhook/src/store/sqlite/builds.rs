//! Builds and jobs in SQLite: their rows, inserting a build with its jobs, and the build state
//! machine that advances a build as its jobs finish and queues its status reports.

use super::*;
use crate::store::progress::{EARLIER_STAGE_FAILED, Step, describe, next_step};

pub(super) const BUILD_COLS: &str =
    "id, repo, spec, state, reason, log, merge_sha, created_at, started_at, finished_at";

/// A [`crate::store::BuildFilter`]'s branch (`?2`), event (`?3`) and whether the build is of a
/// tag (`?5`), as SQL; each `NULL` means any.
pub(super) const FILTERED: &str = "(?2 IS NULL OR branch = ?2) AND (?3 IS NULL OR event = ?3) \
     AND (?5 IS NULL OR (json_extract(spec, '$.context.tag') IS NOT NULL) = ?5)";

pub(super) fn build_row(r: &Row<'_>) -> rusqlite::Result<(Build, String)> {
    let spec: String = r.get(2)?;
    let state: String = r.get(3)?;
    Ok((
        Build {
            id: r.get(0)?,
            repo: r.get(1)?,
            spec: placeholder_spec(),
            state: BuildState::Queued,
            reason: r.get(4)?,
            log: r.get(5)?,
            merge_sha: r.get(6)?,
            created_at: r.get(7)?,
            started_at: r.get(8)?,
            finished_at: r.get(9)?,
        },
        format!("{state}\n{spec}"),
    ))
}

fn placeholder_spec() -> NewBuild {
    NewBuild {
        repo: String::new(),
        clone_url: String::new(),
        head_sha: String::new(),
        head_ref: String::new(),
        base_ref: None,
        supersede_key: None,
        context: Default::default(),
        author: None,
    }
}

pub(super) fn finish_build_row((mut b, rest): (Build, String)) -> Result<Build, StoreError> {
    let (state, spec) = rest.split_once('\n').unwrap_or((&rest, ""));
    b.state = BuildState::parse(state)?;
    b.spec = serde_json::from_str(spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(b)
}

pub(super) fn get_build(conn: &Connection, id: i64) -> Result<Option<Build>, StoreError> {
    query_row(
        conn,
        &format!("SELECT {BUILD_COLS} FROM builds WHERE id = ?1"),
        [id],
        build_row,
    )
    .optional()?
    .map(finish_build_row)
    .transpose()
}

pub(super) const JOB_COLS: &str = "id, build_id, number, stage_index, stage, name, allow_failure, matrix, \
                        state, reason, attempts, started_at, finished_at";

pub(super) fn job_row(r: &Row<'_>) -> rusqlite::Result<(Job, String, String)> {
    let matrix: String = r.get(7)?;
    let state: String = r.get(8)?;
    Ok((
        Job {
            id: r.get(0)?,
            build_id: r.get(1)?,
            number: r.get(2)?,
            stage_index: r.get(3)?,
            stage: r.get(4)?,
            name: r.get(5)?,
            allow_failure: r.get(6)?,
            matrix: serde_json::Value::Null,
            state: JobState::Waiting,
            reason: r.get(9)?,
            attempts: r.get(10)?,
            started_at: r.get(11)?,
            finished_at: r.get(12)?,
        },
        matrix,
        state,
    ))
}

pub(super) fn finish_job_row(
    (mut j, matrix, state): (Job, String, String),
) -> Result<Job, StoreError> {
    j.state = JobState::parse(&state)?;
    j.matrix = serde_json::from_str(&matrix).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(j)
}

pub(super) fn jobs_of(conn: &Connection, build_id: i64) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLS} FROM jobs WHERE build_id = ?1 ORDER BY stage_index, number"
    ))?;
    let rows = stmt.query_map([build_id], job_row)?;
    rows.map(|r| finish_job_row(r?)).collect()
}

pub(super) fn enqueue_status(
    conn: &Connection,
    build_id: i64,
    state: BuildState,
    description: &str,
) -> Result<(), StoreError> {
    let description: String = description.chars().take(140).collect();
    // The commit comes straight out of the stored spec: no read back and no JSON decoding here,
    // on the delivery path.
    let n = exec(
        conn,
        "INSERT INTO outbox (build_id, repo, sha, state, description, next_at)
         SELECT id, repo, json_extract(spec, '$.head_sha'), ?2, ?3, ?4 FROM builds WHERE id = ?1",
        params![build_id, state.github_state(), description, now_ms()],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "a status for build {build_id}, which does not exist"
        )));
    }
    Ok(())
}

/// Ends a build that is not final yet, with its jobs; returns false if it had already ended.
pub(super) fn end_build(
    conn: &Connection,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let n = exec(
        conn,
        "UPDATE builds SET state = ?2, reason = ?3, finished_at = ?4, lease_owner = NULL, lease_until = NULL
         WHERE id = ?1 AND state IN ('queued', 'preparing', 'running')",
        params![build_id, state.as_str(), reason, now],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let job_state = if state == BuildState::Canceled {
        JobState::Canceled
    } else {
        JobState::Errored
    };
    exec(
        conn,
        "UPDATE jobs SET state = ?2, reason = ?3, finished_at = ?4, lease_owner = NULL, lease_until = NULL
         WHERE build_id = ?1 AND state IN ('waiting', 'queued', 'running')",
        params![build_id, job_state.as_str(), reason, now],
    )?;
    report_end(conn, build_id, state, reason)?;
    Ok(true)
}

/// Queues the status report of a build that ended: its state's word and why.
fn report_end(
    conn: &Connection,
    build_id: i64,
    state: BuildState,
    reason: &str,
) -> Result<(), StoreError> {
    enqueue_status(
        conn,
        build_id,
        state,
        &format!("{}: {reason}", describe(state)),
    )?;
    super::checks::enqueue_checks(conn, build_id)?;
    super::notify::enqueue(conn, build_id, state, reason)
}

/// Moves a running build forward after a job ended: opens the next stage, cancels stages after a
/// failed one, and ends the build once every job has ended ([`crate::store::progress`]).
pub(super) fn advance(conn: &Connection, build_id: i64) -> Result<Option<BuildState>, StoreError> {
    let Some(build) = get_build(conn, build_id)? else {
        return Ok(None);
    };
    if build.state != BuildState::Running {
        return Ok(None);
    }
    match next_step(&jobs_of(conn, build_id)?) {
        Step::Wait => Ok(None),
        Step::Open(stage) => {
            exec(
                conn,
                "UPDATE jobs SET state = 'queued' WHERE build_id = ?1 AND stage_index = ?2 AND state = 'waiting'",
                params![build_id, stage],
            )?;
            Ok(None)
        }
        Step::End {
            cancel_after,
            state,
            reason,
        } => {
            if let Some(stage) = cancel_after {
                exec(
                    conn,
                    "UPDATE jobs SET state = 'canceled', reason = ?4, finished_at = ?3
                     WHERE build_id = ?1 AND stage_index > ?2 AND state = 'waiting'",
                    params![build_id, stage, now_ms(), EARLIER_STAGE_FAILED],
                )?;
            }
            exec(
                conn,
                "UPDATE builds SET state = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1",
                params![build_id, state.as_str(), reason, now_ms()],
            )?;
            report_end(conn, build_id, state, reason)?;
            Ok(Some(state))
        }
    }
}

pub(super) fn insert_build(
    conn: &Connection,
    build: &NewBuild,
    auto_cancel: bool,
) -> Result<(i64, Vec<i64>), StoreError> {
    let spec = serde_json::to_string(build).map_err(|e| StoreError::Invalid(e.to_string()))?;
    exec(
        conn,
        "INSERT INTO builds (repo, spec, supersede_key, branch, event, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
        params![
            build.repo,
            spec,
            build.supersede_key,
            build.context.branch,
            build.context.event.as_str(),
            now_ms()
        ],
    )?;
    let id = conn.last_insert_rowid();
    let mut canceled = Vec::new();
    if auto_cancel && let Some(key) = &build.supersede_key {
        let older: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM builds WHERE repo = ?1 AND supersede_key = ?2 AND id < ?3
                 AND state IN ('queued', 'preparing', 'running')",
            )?
            .query_map(params![build.repo, key, id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for old in older {
            if end_build(
                conn,
                old,
                BuildState::Canceled,
                &format!("superseded by build #{id}"),
            )? {
                canceled.push(old);
            }
        }
    }
    enqueue_status(conn, id, BuildState::Queued, "Queued")?;
    Ok((id, canceled))
}

pub(super) fn count_by_state(
    conn: &Connection,
    table: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT state, count(*) FROM {table} GROUP BY state ORDER BY state"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
