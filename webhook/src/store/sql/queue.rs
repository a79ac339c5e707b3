//! The queue: deliveries, claims under leases, preparing builds, job logs, deploy records and
//! endings, and the recovery of expired leases. Claims take rows with `FOR UPDATE SKIP LOCKED`
//! on PostgreSQL, so concurrent workers never wait for each other nor take the same row.

use super::builds::{
    BUILD_COLS, JOB_COLS, advance, build_row, cancel_open, end_build, enqueue_status, get_build,
    insert_build, job_row, lock_build,
};
use super::{Cells, Sql, checks, notify, scalar};
use crate::store::*;

/// Where `lease`'s claim stands, holding the job's row until the transaction ends so that
/// recovery cannot move the lease on in between. The lock is exclusive: a renewal and the job's
/// end both go on to update the row, and two shared locks each waiting to be upgraded deadlock.
pub(crate) async fn held<D: Sql>(db: &D, lease: JobLease) -> Result<Hold, StoreError> {
    let sql = format!(
        "SELECT state, attempts FROM jobs WHERE id = ?1{}",
        D::DIALECT.lock(" FOR UPDATE")
    );
    let row = db.opt(&sql, &[&lease.job_id]).await?;
    let row = row
        .map(|r| Ok::<_, StoreError>((JobState::parse(&r.get::<String>(0)?)?, r.get(1)?)))
        .transpose()?;
    hold(lease, row)
}

/// Records a delivery and applies its action; a known id or body changes nothing.
pub(crate) async fn record_delivery<D: Sql>(db: &D, d: Delivery) -> Result<Recorded, StoreError> {
    // Nothing when the id or the body's hash is known: a redelivery, a replay, or the same
    // delivery taken by another server.
    let n = db
        .exec(
            "INSERT INTO deliveries (id, event, received_at, body_sha256)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            &[&d.id, &d.event, &now_ms(), &d.body_sha256.as_slice()],
        )
        .await?;
    if n == 0 {
        return Ok(Recorded::Duplicate);
    }
    if let Some(vis) = &d.visibility {
        super::access::record_visibility(db, vis).await?;
    }
    match d.action {
        DeliveryAction::Nothing => Ok(Recorded::Accepted {
            build: None,
            canceled: vec![],
        }),
        DeliveryAction::Build { build, auto_cancel } => {
            let (build_id, canceled) = insert_build(db, &build, auto_cancel).await?;
            db.exec(
                "UPDATE deliveries SET build_id = ?2 WHERE id = ?1",
                &[&d.id, &build_id],
            )
            .await?;
            Ok(Recorded::Accepted {
                build: Some(build_id),
                canceled,
            })
        }
        DeliveryAction::Rerun {
            repo,
            rerun,
            auto_cancel,
        } => checks::rerun(db, &repo, &rerun, auto_cancel).await,
        DeliveryAction::ClosePullRequest { repo, number } => {
            let key = format!("pr:{number}");
            let why = "the pull request was closed";
            let canceled = cancel_open(db, &repo, &key, None, why).await?;
            Ok(Recorded::Accepted {
                build: None,
                canceled,
            })
        }
    }
}

/// Claims the oldest queued build to prepare, else the oldest queued job of the oldest build.
pub(crate) async fn claim<D: Sql>(
    db: &D,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<Task>, StoreError> {
    let now = now_ms();
    let skip = D::DIALECT.lock(" FOR UPDATE SKIP LOCKED");
    let sql = format!(
        "UPDATE builds SET state = 'preparing', lease_owner = ?1, lease_until = ?2,
         attempts = attempts + 1, started_at = coalesce(started_at, ?3)
         WHERE id = (SELECT id FROM builds WHERE state = 'queued' ORDER BY id LIMIT 1{skip})
         RETURNING {BUILD_COLS}"
    );
    let args: [&dyn super::Arg; 3] = [&owner, &(now + lease_ms), &now];
    if let Some(row) = db.opt(&sql, &args).await? {
        return Ok(Some(Task::Prepare(Box::new(build_row(&row)?))));
    }
    let sql = format!(
        "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2,
         attempts = attempts + 1, started_at = ?3, reason = NULL
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY build_id, id LIMIT 1{skip})
         RETURNING {JOB_COLS}, plan"
    );
    let Some(row) = db.opt(&sql, &args).await? else {
        return Ok(None);
    };
    let job = job_row(&row)?;
    let plan_json: String = row.get(13)?;
    checks::enqueue_checks(db, job.build_id).await?;
    let build = get_build(db, job.build_id)
        .await?
        .ok_or_else(|| StoreError::Invalid("job without build".into()))?;
    Ok(Some(Task::Run {
        job: Box::new(job),
        build: Box::new(build),
        plan_json,
    }))
}

/// See [`Store::renew_job`].
pub(crate) async fn renew_job<D: Sql>(
    db: &D,
    lease: JobLease,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    if held(db, lease).await? == Hold::Ended {
        return Ok(false);
    }
    db.exec(
        "UPDATE jobs SET lease_until = ?2 WHERE id = ?1",
        &[&lease.job_id, &(now_ms() + lease_ms)],
    )
    .await?;
    Ok(true)
}

/// See [`Store::renew_build`].
pub(crate) async fn renew_build<D: Sql>(
    db: &D,
    build_id: i64,
    owner: &str,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let n = db
        .exec(
            "UPDATE builds SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 AND state = 'preparing'",
            &[&build_id, &owner, &(now_ms() + lease_ms)],
        )
        .await?;
    Ok(n == 1)
}

/// See [`Store::finish_prepare`].
pub(crate) async fn finish_prepare<D: Sql>(
    db: &D,
    build_id: i64,
    owner: &str,
    result: Prepared,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT 1 FROM builds WHERE id = ?1 AND lease_owner = ?2 AND state = 'preparing'{}",
        D::DIALECT.lock(" FOR UPDATE")
    );
    if db.opt(&sql, &[&build_id, &owner]).await?.is_none() {
        return Ok(());
    }
    let set_log = "UPDATE builds SET log = ?2 WHERE id = ?1";
    match result {
        Prepared::Errored { reason, log } => {
            db.exec(set_log, &[&build_id, &log]).await?;
            end_build(db, build_id, BuildState::Errored, &reason).await?;
        }
        Prepared::Invalid {
            reason,
            log,
            annotations,
        } => {
            db.exec(set_log, &[&build_id, &log]).await?;
            if end_build(db, build_id, BuildState::Errored, &reason).await? {
                checks::enqueue_lint(db, build_id, &reason, &annotations).await?;
            }
        }
        Prepared::Jobs {
            merge_sha,
            log,
            jobs,
            skipped_reason,
            notify: setup,
        } => {
            db.exec(
                "UPDATE builds SET log = ?2, merge_sha = ?3, lease_owner = NULL, lease_until = NULL,
                 state = 'running' WHERE id = ?1",
                &[&build_id, &log, &merge_sha],
            )
            .await?;
            queue_jobs(db, build_id, &jobs, skipped_reason, setup.as_deref()).await?;
        }
    }
    Ok(())
}

/// Queues a prepared build's jobs (the first stage's claimable at once), or skips the build.
async fn queue_jobs<D: Sql>(
    db: &D,
    build_id: i64,
    jobs: &[NewJob],
    skipped_reason: Option<String>,
    setup: Option<&str>,
) -> Result<(), StoreError> {
    if jobs.is_empty() {
        let why = skipped_reason.unwrap_or_else(|| "nothing to run".into());
        end_build(db, build_id, BuildState::Skipped, &why).await?;
        return Ok(());
    }
    let first = jobs.iter().map(|j| j.stage_index).min().unwrap_or(0);
    for j in jobs {
        let state = if j.stage_index == first {
            "queued"
        } else {
            "waiting"
        };
        db.exec(
            "INSERT INTO jobs (build_id, number, stage_index, stage, name, allow_failure, matrix, plan, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &[
                &build_id,
                &j.number,
                &j.stage_index,
                &j.stage,
                &j.name,
                &j.allow_failure,
                &j.matrix.to_string(),
                &j.plan_json,
                &state,
            ],
        )
        .await?;
    }
    enqueue_status(db, build_id, BuildState::Running, "Running").await?;
    notify::record_setup(db, build_id, setup).await?;
    notify::enqueue(db, build_id, BuildState::Running, "").await?;
    db.wake_workers().await
}

/// See [`Store::append_log`].
pub(crate) async fn append_log<D: Sql>(
    db: &D,
    lease: JobLease,
    chunks: &[LogChunk],
) -> Result<(), StoreError> {
    held(db, lease).await?;
    let Some(last) = chunks.last().map(|c| c.seq) else {
        return Ok(());
    };
    db.store_log(lease.job_id, chunks).await?;
    db.log_stored(lease.job_id, last).await
}

/// See [`Store::deploy_started`].
pub(crate) async fn deploy_started<D: Sql>(
    db: &D,
    lease: JobLease,
    index: i64,
    provider: &str,
) -> Result<(), StoreError> {
    held(db, lease).await?;
    db.exec(
        "INSERT INTO deploys (job_id, attempt, idx, provider, started_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (job_id, attempt, idx) DO UPDATE SET provider = excluded.provider,
         started_at = excluded.started_at, finished_at = NULL, succeeded = NULL",
        &[&lease.job_id, &lease.attempt, &index, &provider, &now_ms()],
    )
    .await?;
    Ok(())
}

/// See [`Store::deploy_finished`].
pub(crate) async fn deploy_finished<D: Sql>(
    db: &D,
    lease: JobLease,
    index: i64,
    succeeded: bool,
) -> Result<(), StoreError> {
    held(db, lease).await?;
    db.exec(
        "UPDATE deploys SET finished_at = ?4, succeeded = ?5
         WHERE job_id = ?1 AND attempt = ?2 AND idx = ?3",
        &[&lease.job_id, &lease.attempt, &index, &now_ms(), &succeeded],
    )
    .await?;
    Ok(())
}

/// The next free log sequence number of a job.
pub(crate) async fn next_seq<D: Sql>(db: &D, job_id: i64) -> Result<i64, StoreError> {
    scalar(
        db,
        "SELECT coalesce(max(seq), 0) + 1 FROM log_chunks WHERE job_id = ?1",
        &[&job_id],
    )
    .await
}

/// See [`Store::finish_job`].
pub(crate) async fn finish_job<D: Sql>(
    db: &D,
    lease: JobLease,
    state: JobState,
    reason: Option<&str>,
) -> Result<Option<BuildState>, StoreError> {
    // Its check run changes, whatever follows (a fenced end rolls this back with the rest):
    // queued before the build's lock, which the rest holds as briefly as it can.
    checks::enqueue_checks_of_job(db, lease.job_id).await?;
    // The job's build, locked (as `lock_build` does) in the same statement.
    let sql = format!(
        "SELECT id FROM builds WHERE id = (SELECT build_id FROM jobs WHERE id = ?1){}",
        D::DIALECT.lock(" FOR UPDATE")
    );
    let Some(build) = db.opt(&sql, &[&lease.job_id]).await? else {
        return Err(StoreError::Fenced {
            job_id: lease.job_id,
            attempt: lease.attempt,
        });
    };
    let build_id: i64 = build.get(0)?;
    let ended = db
        .exec(
            "UPDATE jobs SET state = ?2, reason = ?3, finished_at = ?4, lease_owner = NULL,
             lease_until = NULL WHERE id = ?1 AND attempts = ?5 AND state = 'running'",
            &[
                &lease.job_id,
                &state.as_str(),
                &reason,
                &now_ms(),
                &lease.attempt,
            ],
        )
        .await?;
    if ended == 0 {
        // The claim no longer holds the running job: ended already (nothing to do), or fenced.
        return match held(db, lease).await? {
            Hold::Ended => Ok(None),
            Hold::Running => Err(StoreError::Fenced {
                job_id: lease.job_id,
                attempt: lease.attempt,
            }),
        };
    }
    advance(db, build_id).await
}

/// What becomes of a job whose worker was lost.
enum Lost {
    /// Queued again; the note goes to its log.
    Requeue(String),
    /// Ended as errored for this reason.
    Error(String),
}

/// The rule for a lost job after `attempts` claims: re-queued, unless it was claimed too often or
/// a deploy began (running it again would deploy again).
fn lost(attempts: i64, max_attempts: i64, deployed: Option<(i64, Option<bool>)>) -> Lost {
    match deployed {
        Some((attempt, outcome)) => Lost::Error(deploy_began(attempt, outcome)),
        None if attempts >= max_attempts => Lost::Error(format!(
            "its worker was lost {attempts} times (server stopped or lease expired)"
        )),
        None => Lost::Requeue(format!(
            "re-queued: its worker was lost (server stopped or lease expired) during attempt {attempts}"
        )),
    }
}

/// Re-queues or errors one job whose lease expired (the caller holds its build's lock); true
/// when re-queued.
async fn recover_job<D: Sql>(
    db: &D,
    (id, build_id, attempts): (i64, i64, i64),
    max_attempts: i64,
) -> Result<bool, StoreError> {
    let seq = next_seq(db, id).await?;
    let deployed: Option<(i64, Option<bool>)> = db
        .opt(
            "SELECT attempt, succeeded FROM deploys WHERE job_id = ?1
             ORDER BY (succeeded IS NULL) DESC, attempt LIMIT 1",
            &[&id],
        )
        .await?
        .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?)))
        .transpose()?;
    let note = "INSERT INTO log_chunks VALUES (?1, ?2, 'note', ?3)";
    match lost(attempts, max_attempts, deployed) {
        Lost::Error(why) => {
            db.exec(
                "UPDATE jobs SET state = 'errored', reason = ?2, finished_at = ?3, lease_owner = NULL,
                 lease_until = NULL WHERE id = ?1",
                &[&id, &why, &now_ms()],
            )
            .await?;
            db.exec(note, &[&id, &seq, &format!("errored: {why}")])
                .await?;
            advance(db, build_id).await?;
            Ok(false)
        }
        Lost::Requeue(text) => {
            db.exec(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                &[&id],
            )
            .await?;
            db.exec(note, &[&id, &seq, &text]).await?;
            db.attempt_ended(id).await?;
            db.wake_workers().await?;
            Ok(true)
        }
    }
}

/// Re-queues or errors the jobs and builds whose lease ended before `cutoff`.
pub(crate) async fn recover<D: Sql>(
    db: &D,
    cutoff: i64,
    max_attempts: i64,
) -> Result<Recovery, StoreError> {
    let mut rec = Recovery::default();
    let jobs = db
        .rows(
            "SELECT id, build_id FROM jobs WHERE state = 'running' AND coalesce(lease_until, 0) < ?1",
            &[&cutoff],
        )
        .await?;
    for row in jobs {
        let (id, build_id): (i64, i64) = (row.get(0)?, row.get(1)?);
        lock_build(db, build_id).await?;
        // Checked again under the lock: the worker may have renewed or finished meanwhile.
        let still = db
            .opt(
                "SELECT attempts FROM jobs WHERE id = ?1 AND state = 'running'
                 AND coalesce(lease_until, 0) < ?2",
                &[&id, &cutoff],
            )
            .await?;
        let Some(still) = still else { continue };
        if recover_job(db, (id, build_id, still.get(0)?), max_attempts).await? {
            rec.requeued += 1;
        } else {
            rec.errored += 1;
        }
    }
    let sql = format!(
        "SELECT id, attempts FROM builds WHERE state = 'preparing'
         AND coalesce(lease_until, 0) < ?1{}",
        D::DIALECT.lock(" FOR UPDATE SKIP LOCKED")
    );
    for row in db.rows(&sql, &[&cutoff]).await? {
        let (id, attempts): (i64, i64) = (row.get(0)?, row.get(1)?);
        if attempts >= max_attempts {
            let why = "preparation was interrupted too many times";
            end_build(db, id, BuildState::Errored, why).await?;
            rec.errored += 1;
        } else {
            db.exec(
                "UPDATE builds SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                &[&id],
            )
            .await?;
            db.wake_workers().await?;
            rec.requeued += 1;
        }
    }
    Ok(rec)
}

/// See [`Store::cancel_build`].
pub(crate) async fn cancel_build<D: Sql>(
    db: &D,
    build_id: i64,
    reason: &str,
) -> Result<bool, StoreError> {
    lock_build(db, build_id).await?;
    end_build(db, build_id, BuildState::Canceled, reason).await
}

/// See [`Store::restart_build`].
pub(crate) async fn restart_build<D: Sql>(
    db: &D,
    build_id: i64,
    auto_cancel: bool,
) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
    let Some(old) = get_build(db, build_id).await? else {
        return Ok(None);
    };
    Ok(Some(insert_build(db, &old.spec, auto_cancel).await?))
}

/// See [`Store::outbox_take`]. A commit's reports go out in order: none of a commit's rows is
/// taken while another process holds one of them, and takers run one after the other (on
/// PostgreSQL), so each sees what the one before took.
pub(crate) async fn outbox_take<D: Sql>(
    db: &D,
    holder: &str,
    limit: usize,
    hold_ms: i64,
) -> Result<Vec<OutboxItem>, StoreError> {
    db.serialize("outbox").await?;
    let now = now_ms();
    let sql = format!(
        "UPDATE outbox SET claimed_until = ?3, claimed_by = ?4
         WHERE id IN (SELECT o.id FROM outbox o
             WHERE o.done = false AND o.next_at <= ?1 AND coalesce(o.claimed_until, 0) <= ?1
               AND NOT EXISTS (SELECT 1 FROM outbox h WHERE h.repo = o.repo AND h.sha = o.sha
                               AND h.done = false AND h.claimed_until > ?1)
             ORDER BY o.id LIMIT ?2{})
         RETURNING id, build_id, repo, sha, state, description, attempts, kind, payload",
        D::DIALECT.lock(" FOR UPDATE SKIP LOCKED")
    );
    let args: [&dyn super::Arg; 4] = [&now, &(limit as i64), &(now + hold_ms), &holder];
    let mut items = db
        .rows(&sql, &args)
        .await?
        .iter()
        .map(|r| {
            Ok(OutboxItem {
                id: r.get(0)?,
                build_id: r.get(1)?,
                repo: r.get(2)?,
                sha: r.get(3)?,
                state: r.get(4)?,
                description: r.get(5)?,
                attempts: r.get(6)?,
                kind: OutboxKind::parse(&r.get::<String>(7)?).unwrap_or(OutboxKind::Status),
                payload: r.get(8)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// See [`Store::outbox_done`].
pub(crate) async fn outbox_done<D: Sql>(db: &D, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET done = true, claimed_until = NULL WHERE id {}",
        D::DIALECT.in_ids("?1")
    );
    db.exec(&sql, &[&super::id_list(ids)?]).await?;
    Ok(())
}

/// See [`Store::outbox_superseded`]: a newer status of the same commit says it all; a newer sync
/// of the same build brings every check run up to date anyway.
pub(crate) async fn outbox_superseded<D: Sql>(db: &D, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT o.id FROM outbox o WHERE o.id {}
           AND ((o.kind = 'status' AND EXISTS (SELECT 1 FROM outbox n WHERE n.repo = o.repo
                  AND n.sha = o.sha AND n.id > o.id AND n.kind = 'status'))
             OR (o.kind = 'checks' AND EXISTS (SELECT 1 FROM outbox n WHERE n.build_id = o.build_id
                  AND n.id > o.id AND n.kind = 'checks')))
         ORDER BY o.id",
        D::DIALECT.in_ids("?1")
    );
    let rows = db.rows(&sql, &[&super::id_list(ids)?]).await?;
    rows.iter().map(|r| r.get(0)).collect()
}
