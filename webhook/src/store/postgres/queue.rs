//! The queue in PostgreSQL: deliveries, claims under leases, preparing builds, job logs and
//! endings, recovery of expired leases; the [`Store`] implementation (reads are in `reads.rs`).

use super::builds::{
    BUILD_COLS, JOB_COLS, advance, end_build, get_build, insert_build, job_row, lock_build,
    wake_workers,
};
use super::{Db, PgStore, access, checks, in_tx, notify};
use crate::store::*;

/// Where `lease`'s claim stands, holding the job's row until the transaction ends so that
/// recovery cannot move the lease on in between. The lock is exclusive: a renewal and the job's
/// end both go on to update the row, and two shared locks each waiting to be upgraded deadlock.
async fn held(db: &Db<'_, '_>, lease: JobLease) -> Result<Hold, StoreError> {
    let row = db
        .opt(
            "SELECT state, attempts FROM jobs WHERE id = $1 FOR UPDATE",
            &[&lease.job_id],
        )
        .await?;
    let row = row
        .map(|r| Ok::<_, StoreError>((JobState::parse(r.try_get(0)?)?, r.try_get(1)?)))
        .transpose()?;
    hold(lease, row)
}

/// Claims the oldest queued build, if any.
async fn claim_build(
    db: &Db<'_, '_>,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<Task>, StoreError> {
    let now = now_ms();
    let row = db
        .opt(
            &format!(
                "UPDATE builds SET state = 'preparing', lease_owner = $1, lease_until = $2,
                 attempts = attempts + 1, started_at = coalesce(started_at, $3)
                 WHERE id = (SELECT id FROM builds WHERE state = 'queued' ORDER BY id
                             LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING {BUILD_COLS}"
            ),
            &[&owner, &(now + lease_ms), &now],
        )
        .await?;
    row.as_ref()
        .map(|r| Ok(Task::Prepare(Box::new(super::builds::build_row(r)?))))
        .transpose()
}

/// Claims the oldest queued job of the oldest build, if any.
async fn claim_job(
    db: &Db<'_, '_>,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<Task>, StoreError> {
    let now = now_ms();
    let row = db
        .opt(
            &format!(
                "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2,
                 attempts = attempts + 1, started_at = $3, reason = NULL
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY build_id, id
                             LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING {JOB_COLS}, plan"
            ),
            &[&owner, &(now + lease_ms), &now],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let job = job_row(&row)?;
    let plan_json: String = row.try_get(13)?;
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

/// Applies a delivery's action inside its transaction.
async fn apply_delivery(
    db: &Db<'_, '_>,
    id: &str,
    action: DeliveryAction,
) -> Result<Recorded, StoreError> {
    match action {
        DeliveryAction::Nothing => Ok(Recorded::Accepted {
            build: None,
            canceled: vec![],
        }),
        DeliveryAction::Build { build, auto_cancel } => {
            let (build_id, canceled) = insert_build(db, &build, auto_cancel).await?;
            db.exec(
                "UPDATE deliveries SET build_id = $2 WHERE id = $1",
                &[&id, &build_id],
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
            let open = db
                .rows(
                    "SELECT id FROM builds WHERE repo = $1 AND supersede_key = $2
                     AND state IN ('queued', 'preparing', 'running') ORDER BY id",
                    &[&repo, &key],
                )
                .await?;
            let mut canceled = Vec::new();
            for row in open {
                let build: i64 = row.try_get(0)?;
                lock_build(db, build).await?;
                let why = "the pull request was closed";
                if end_build(db, build, BuildState::Canceled, why).await? {
                    canceled.push(build);
                }
            }
            Ok(Recorded::Accepted {
                build: None,
                canceled,
            })
        }
    }
}

/// Queues a prepared build's jobs (the first stage's claimable at once), or skips the build.
async fn queue_jobs(
    db: &Db<'_, '_>,
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    super::builds::enqueue_status(db, build_id, BuildState::Running, "Running").await?;
    notify::record_setup(db, build_id, setup).await?;
    notify::enqueue(db, build_id, BuildState::Running, "").await?;
    wake_workers(db).await
}

/// The next free log sequence number of a job.
async fn next_seq_of(db: &Db<'_, '_>, job_id: i64) -> Result<i64, StoreError> {
    Ok(db
        .one(
            "SELECT coalesce(max(seq), 0) + 1 FROM log_chunks WHERE job_id = $1",
            &[&job_id],
        )
        .await?
        .try_get(0)?)
}

/// Re-queues or errors one job whose lease expired (the caller holds its build's lock).
async fn recover_job(
    db: &Db<'_, '_>,
    id: i64,
    build_id: i64,
    attempts: i64,
    max_attempts: i64,
) -> Result<bool, StoreError> {
    let seq = next_seq_of(db, id).await?;
    let now = now_ms();
    let deployed: Option<(i64, Option<bool>)> = db
        .opt(
            "SELECT attempt, succeeded FROM deploys WHERE job_id = $1
             ORDER BY (succeeded IS NULL) DESC, attempt LIMIT 1",
            &[&id],
        )
        .await?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
    if attempts >= max_attempts || deployed.is_some() {
        let why = match deployed {
            Some((attempt, outcome)) => deploy_began(attempt, outcome),
            None => {
                format!("its worker was lost {attempts} times (server stopped or lease expired)")
            }
        };
        db.exec(
            "UPDATE jobs SET state = 'errored', reason = $2, finished_at = $3, lease_owner = NULL, lease_until = NULL
             WHERE id = $1",
            &[&id, &why, &now],
        )
        .await?;
        db.exec(
            "INSERT INTO log_chunks VALUES ($1, $2, 'note', $3)",
            &[&id, &seq, &format!("errored: {why}")],
        )
        .await?;
        advance(db, build_id).await?;
        return Ok(false);
    }
    db.exec(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = $1",
        &[&id],
    )
    .await?;
    let note = format!(
        "re-queued: its worker was lost (server stopped or lease expired) during attempt {attempts}"
    );
    db.exec(
        "INSERT INTO log_chunks VALUES ($1, $2, 'note', $3)",
        &[&id, &seq, &note],
    )
    .await?;
    wake_workers(db).await?;
    Ok(true)
}

/// Re-queues or errors the jobs and builds whose lease ended before `cutoff`.
async fn recover_expired(
    db: &Db<'_, '_>,
    cutoff: i64,
    max_attempts: i64,
) -> Result<Recovery, StoreError> {
    let mut rec = Recovery::default();
    let jobs = db
        .rows(
            "SELECT id, build_id FROM jobs WHERE state = 'running' AND coalesce(lease_until, 0) < $1",
            &[&cutoff],
        )
        .await?;
    for row in jobs {
        let (id, build_id): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        lock_build(db, build_id).await?;
        // Checked again under the lock: the worker may have renewed or finished meanwhile.
        let still = db
            .opt(
                "SELECT attempts FROM jobs WHERE id = $1 AND state = 'running'
                 AND coalesce(lease_until, 0) < $2",
                &[&id, &cutoff],
            )
            .await?;
        let Some(still) = still else { continue };
        if recover_job(db, id, build_id, still.try_get(0)?, max_attempts).await? {
            rec.requeued += 1;
        } else {
            rec.errored += 1;
        }
    }
    let builds = db
        .rows(
            "SELECT id, attempts FROM builds WHERE state = 'preparing'
             AND coalesce(lease_until, 0) < $1 FOR UPDATE SKIP LOCKED",
            &[&cutoff],
        )
        .await?;
    for row in builds {
        let (id, attempts): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if attempts >= max_attempts {
            let why = "preparation was interrupted too many times";
            end_build(db, id, BuildState::Errored, why).await?;
            rec.errored += 1;
        } else {
            db.exec(
                "UPDATE builds SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = $1",
                &[&id],
            )
            .await?;
            wake_workers(db).await?;
            rec.requeued += 1;
        }
    }
    Ok(rec)
}

#[async_trait]
impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn listen(&self, changes: std::sync::Arc<dyn StoreChanges>) {
        super::listen::spawn(self.config.clone(), changes);
    }

    async fn record_delivery(&self, d: Delivery) -> Result<Recorded, StoreError> {
        in_tx!(self, |db| {
            // Nothing when the id or the body's hash is known: a redelivery, a replay, or the
            // same delivery taken by another server.
            let n = db
                .exec(
                    "INSERT INTO deliveries (id, event, received_at, body_sha256)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&d.id, &d.event, &now_ms(), &d.body_sha256.as_slice()],
                )
                .await?;
            if n == 0 {
                return Ok(Recorded::Duplicate);
            }
            if let Some(vis) = &d.visibility {
                access::record_visibility(&db, vis).await?;
            }
            apply_delivery(&db, &d.id, d.action).await
        })
    }

    async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Task>, StoreError> {
        in_tx!(self, |db| {
            if let Some(task) = claim_build(&db, owner, lease_ms).await? {
                return Ok(Some(task));
            }
            claim_job(&db, owner, lease_ms).await
        })
    }

    async fn renew_job(&self, lease: JobLease, lease_ms: i64) -> Result<bool, StoreError> {
        in_tx!(self, |db| {
            if held(&db, lease).await? == Hold::Ended {
                return Ok(false);
            }
            db.exec(
                "UPDATE jobs SET lease_until = $2 WHERE id = $1",
                &[&lease.job_id, &(now_ms() + lease_ms)],
            )
            .await?;
            Ok(true)
        })
    }

    async fn renew_build(
        &self,
        build_id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |db| {
            let n = db
                .exec(
                    "UPDATE builds SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'preparing'",
                    &[&build_id, &owner, &(now_ms() + lease_ms)],
                )
                .await?;
            Ok(n == 1)
        })
    }

    async fn finish_prepare(
        &self,
        build_id: i64,
        owner: &str,
        result: Prepared,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            let held = db
                .opt(
                    "SELECT 1 FROM builds WHERE id = $1 AND lease_owner = $2 AND state = 'preparing' FOR UPDATE",
                    &[&build_id, &owner],
                )
                .await?;
            if held.is_none() {
                return Ok(());
            }
            match result {
                Prepared::Errored { reason, log } => {
                    db.exec(
                        "UPDATE builds SET log = $2 WHERE id = $1",
                        &[&build_id, &log],
                    )
                    .await?;
                    end_build(&db, build_id, BuildState::Errored, &reason).await?;
                }
                Prepared::Invalid {
                    reason,
                    log,
                    annotations,
                } => {
                    db.exec(
                        "UPDATE builds SET log = $2 WHERE id = $1",
                        &[&build_id, &log],
                    )
                    .await?;
                    if end_build(&db, build_id, BuildState::Errored, &reason).await? {
                        checks::enqueue_lint(&db, build_id, &reason, &annotations).await?;
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
                        "UPDATE builds SET log = $2, merge_sha = $3, lease_owner = NULL, lease_until = NULL,
                         state = 'running' WHERE id = $1",
                        &[&build_id, &log, &merge_sha],
                    )
                    .await?;
                    queue_jobs(&db, build_id, &jobs, skipped_reason, setup.as_deref()).await?;
                }
            }
            Ok(())
        })
    }

    async fn append_log(&self, lease: JobLease, chunks: Vec<LogChunk>) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            held(&db, lease).await?;
            let Some(last) = chunks.last().map(|c| c.seq) else {
                return Ok(());
            };
            // One statement for the batch: a live viewer on another server waits for its commit.
            let seqs: Vec<i64> = chunks.iter().map(|c| c.seq).collect();
            let kinds: Vec<&str> = chunks.iter().map(|c| c.kind.as_str()).collect();
            let data: Vec<&str> = chunks.iter().map(|c| c.data.as_str()).collect();
            db.exec(
                "INSERT INTO log_chunks (job_id, seq, kind, data)
                 SELECT $1, c.seq, c.kind, c.data
                 FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[]) AS c(seq, kind, data)
                 ON CONFLICT (job_id, seq) DO UPDATE SET kind = excluded.kind, data = excluded.data",
                &[&lease.job_id, &seqs, &kinds, &data],
            )
            .await?;
            super::listen::log_stored(&db, lease.job_id, last).await?;
            Ok(())
        })
    }

    async fn deploy_started(
        &self,
        lease: JobLease,
        index: i64,
        provider: &str,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            held(&db, lease).await?;
            db.exec(
                "INSERT INTO deploys (job_id, attempt, idx, provider, started_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (job_id, attempt, idx) DO UPDATE SET started_at = excluded.started_at,
                 finished_at = NULL, succeeded = NULL",
                &[&lease.job_id, &lease.attempt, &index, &provider, &now_ms()],
            )
            .await?;
            Ok(())
        })
    }

    async fn deploy_finished(
        &self,
        lease: JobLease,
        index: i64,
        succeeded: bool,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            held(&db, lease).await?;
            db.exec(
                "UPDATE deploys SET finished_at = $4, succeeded = $5
                 WHERE job_id = $1 AND attempt = $2 AND idx = $3",
                &[&lease.job_id, &lease.attempt, &index, &now_ms(), &succeeded],
            )
            .await?;
            Ok(())
        })
    }

    async fn next_seq(&self, job_id: i64) -> Result<i64, StoreError> {
        super::read!(self, |db| { next_seq_of(&db, job_id).await })
    }

    async fn finish_job(
        &self,
        lease: JobLease,
        state: JobState,
        reason: Option<String>,
    ) -> Result<Option<BuildState>, StoreError> {
        in_tx!(self, |db| {
            let Some(row) = db
                .opt("SELECT build_id FROM jobs WHERE id = $1", &[&lease.job_id])
                .await?
            else {
                return Err(StoreError::Fenced {
                    job_id: lease.job_id,
                    attempt: lease.attempt,
                });
            };
            let build_id: i64 = row.try_get(0)?;
            lock_build(&db, build_id).await?;
            if held(&db, lease).await? == Hold::Ended {
                return Ok(None);
            }
            db.exec(
                "UPDATE jobs SET state = $2, reason = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL
                 WHERE id = $1",
                &[&lease.job_id, &state.as_str(), &reason, &now_ms()],
            )
            .await?;
            checks::enqueue_checks(&db, build_id).await?;
            advance(&db, build_id).await
        })
    }

    async fn recover(&self, all: bool, max_attempts: i64) -> Result<Recovery, StoreError> {
        let cutoff = if all { i64::MAX } else { now_ms() };
        in_tx!(self, |db| {
            recover_expired(&db, cutoff, max_attempts).await
        })
    }

    async fn cancel_build(&self, build_id: i64, reason: &str) -> Result<bool, StoreError> {
        in_tx!(self, |db| {
            lock_build(&db, build_id).await?;
            end_build(&db, build_id, BuildState::Canceled, reason).await
        })
    }

    async fn restart_build(
        &self,
        build_id: i64,
        auto_cancel: bool,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
        in_tx!(self, |db| {
            let Some(old) = get_build(&db, build_id).await? else {
                return Ok(None);
            };
            Ok(Some(insert_build(&db, &old.spec, auto_cancel).await?))
        })
    }

    async fn outbox_due(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.outbox_due_rows(limit).await
    }

    async fn outbox_done(&self, id: i64) -> Result<(), StoreError> {
        self.outbox_done_row(id).await
    }

    async fn outbox_retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError> {
        self.outbox_retry_row(id, next_at, error).await
    }

    async fn outbox_superseded(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        self.outbox_newer(item).await
    }

    async fn notify_due(&self, limit: usize) -> Result<Vec<NotifyItem>, StoreError> {
        self.notify_due_rows(limit).await
    }

    async fn notify_finished(&self, id: i64, error: Option<&str>) -> Result<(), StoreError> {
        self.notify_finish_row(id, error).await
    }

    async fn notify_retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError> {
        self.notify_retry_row(id, next_at, error).await
    }

    async fn notifications(&self, build_id: i64) -> Result<Vec<NotifyRecord>, StoreError> {
        self.notify_rows(build_id).await
    }

    async fn repos(&self) -> Result<Vec<Build>, StoreError> {
        self.repos_rows().await
    }

    async fn builds(&self, filter: BuildFilter, limit: i64) -> Result<Vec<Build>, StoreError> {
        self.builds_rows(filter, limit).await
    }

    async fn build(&self, id: i64) -> Result<Option<(Build, Vec<Job>)>, StoreError> {
        self.build_row_with_jobs(id).await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.job_by_id(id).await
    }

    async fn log(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<LogChunk>, StoreError> {
        self.log_rows(job_id, after_seq, limit).await
    }

    async fn branch_state(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<BuildState>, StoreError> {
        self.branch_state_row(repo, branch).await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.count_rows().await
    }

    async fn prune(
        &self,
        older_than: Option<Millis>,
        keep_per_repo: Option<i64>,
    ) -> Result<Pruned, StoreError> {
        self.prune_all(older_than, keep_per_repo).await
    }

    async fn integrity_check(&self) -> Result<String, StoreError> {
        super::read!(self, |db| {
            db.one("SELECT 1", &[]).await?;
            Ok("ok".to_string())
        })
    }
}
