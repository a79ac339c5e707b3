//! The [`Store`](crate::store::Store), [`AccessStore`](crate::store::AccessStore) and
//! [`ChecksStore`](crate::store::ChecksStore) methods, written once for both databases.
//!
//! Each database brings two macros, `$write!(store, |db| { … })` running the block in one
//! committed transaction and `$read!(store, |db| { … })` running it on a reader, with `db` a
//! `&impl Sql`; [`impl_stores!`] calls the shared code in them. SQLite runs the block on another
//! thread, so it only uses values it owns: arguments borrowed by a method are copied first.

/// Implements the store traits for `$store` with its `$write` and `$read` macros; `$extra` are
/// the [`Store`](crate::store::Store) methods the database answers its own way (recording a
/// delivery among them: both commit concurrent deliveries together, each in its own way).
macro_rules! impl_stores {
    ($store:ty, $write:ident, $read:ident, { $($extra:item)* }) => {
        // Status reports and notifications are retried alike, each in its outbox.
        impl_stores!(@impl $store, $write, $read, { $($extra)* },
            [outbox_retry "outbox", notify_retry "notify_outbox"]);
    };
    (@impl $store:ty, $write:ident, $read:ident, { $($extra:item)* },
        [$($retry:ident $table:literal),*]) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($extra)*

            async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Task>, StoreError> {
                let owner = owner.to_string();
                $write!(self, |db| { queue::claim(db, &owner, lease_ms).await })
            }

            async fn renew_job(&self, lease: JobLease, lease_ms: i64) -> Result<bool, StoreError> {
                $write!(self, |db| { queue::renew_job(db, lease, lease_ms).await })
            }

            async fn renew_build(
                &self,
                build_id: i64,
                owner: &str,
                lease_ms: i64,
            ) -> Result<bool, StoreError> {
                let owner = owner.to_string();
                $write!(self, |db| { queue::renew_build(db, build_id, &owner, lease_ms).await })
            }

            async fn finish_prepare(
                &self,
                build_id: i64,
                owner: &str,
                result: Prepared,
            ) -> Result<(), StoreError> {
                let owner = owner.to_string();
                $write!(self, |db| { queue::finish_prepare(db, build_id, &owner, result).await })
            }

            async fn append_log(
                &self,
                lease: JobLease,
                chunks: Vec<LogChunk>,
            ) -> Result<(), StoreError> {
                $write!(self, |db| { queue::append_log(db, lease, &chunks).await })
            }

            async fn deploy_started(
                &self,
                lease: JobLease,
                index: i64,
                provider: &str,
            ) -> Result<(), StoreError> {
                let provider = provider.to_string();
                $write!(self, |db| { queue::deploy_started(db, lease, index, &provider).await })
            }

            async fn deploy_finished(
                &self,
                lease: JobLease,
                index: i64,
                succeeded: bool,
            ) -> Result<(), StoreError> {
                $write!(self, |db| { queue::deploy_finished(db, lease, index, succeeded).await })
            }

            async fn next_seq(&self, job_id: i64) -> Result<i64, StoreError> {
                $read!(self, |db| { queue::next_seq(db, job_id).await })
            }

            async fn finish_job(
                &self,
                lease: JobLease,
                state: JobState,
                reason: Option<String>,
            ) -> Result<Option<BuildState>, StoreError> {
                $write!(self, |db| {
                    queue::finish_job(db, lease, state, reason.as_deref()).await
                })
            }

            async fn recover(&self, all: bool, max_attempts: i64) -> Result<Recovery, StoreError> {
                let cutoff = if all { i64::MAX } else { now_ms() };
                $write!(self, |db| {
                    if all {
                        notify::release_holds(db).await?;
                    }
                    queue::recover(db, cutoff, max_attempts).await
                })
            }

            async fn cancel_build(&self, build_id: i64, reason: &str) -> Result<bool, StoreError> {
                let reason = reason.to_string();
                $write!(self, |db| { queue::cancel_build(db, build_id, &reason).await })
            }

            async fn restart_build(
                &self,
                build_id: i64,
                auto_cancel: bool,
            ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
                $write!(self, |db| { queue::restart_build(db, build_id, auto_cancel).await })
            }

            async fn outbox_take(
                &self,
                holder: &str,
                limit: usize,
                hold_ms: i64,
            ) -> Result<Vec<OutboxItem>, StoreError> {
                let holder = holder.to_string();
                $write!(self, |db| { queue::outbox_take(db, &holder, limit, hold_ms).await })
            }

            async fn outbox_hold(&self, holder: &str, hold_ms: i64) -> Result<(), StoreError> {
                let holder = holder.to_string();
                $write!(self, |db| { notify::extend_holds(db, &holder, hold_ms).await })
            }

            async fn outbox_done(&self, ids: &[i64]) -> Result<(), StoreError> {
                let ids = ids.to_vec();
                $write!(self, |db| { queue::outbox_done(db, &ids).await })
            }

            $(
                async fn $retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError> {
                    let error = error.to_string();
                    $write!(self, |db| { notify::retry(db, $table, id, next_at, &error).await })
                }
            )*

            async fn outbox_superseded(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
                let ids = ids.to_vec();
                $read!(self, |db| { queue::outbox_superseded(db, &ids).await })
            }

            async fn notify_take(
                &self,
                holder: &str,
                limit: usize,
                hold_ms: i64,
            ) -> Result<Vec<NotifyItem>, StoreError> {
                let holder = holder.to_string();
                $write!(self, |db| { notify::take(db, &holder, limit, hold_ms).await })
            }

            async fn notify_finished(&self, id: i64, error: Option<&str>) -> Result<(), StoreError> {
                let error = error.map(str::to_string);
                $write!(self, |db| { notify::finished(db, id, error.as_deref()).await })
            }


            async fn notifications(&self, build_id: i64) -> Result<Vec<NotifyRecord>, StoreError> {
                $read!(self, |db| { notify::records(db, build_id).await })
            }

            async fn repos(&self) -> Result<Vec<Build>, StoreError> {
                $read!(self, |db| { reads::repos(db).await })
            }

            async fn builds(&self, filter: BuildFilter, limit: i64) -> Result<Vec<Build>, StoreError> {
                $read!(self, |db| { reads::builds(db, &filter, limit).await })
            }

            async fn build(&self, id: i64) -> Result<Option<(Build, Vec<Job>)>, StoreError> {
                $read!(self, |db| { reads::build(db, id).await })
            }

            async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
                $read!(self, |db| { reads::job(db, id).await })
            }

            async fn log(
                &self,
                job_id: i64,
                after_seq: i64,
                limit: i64,
            ) -> Result<Vec<LogChunk>, StoreError> {
                $read!(self, |db| { reads::log(db, job_id, after_seq, limit).await })
            }

            async fn branch_state(
                &self,
                repo: &str,
                branch: &str,
            ) -> Result<Option<BuildState>, StoreError> {
                let (repo, branch) = (repo.to_string(), branch.to_string());
                $read!(self, |db| { reads::branch_state(db, &repo, &branch).await })
            }

            async fn counts(&self) -> Result<Counts, StoreError> {
                $read!(self, |db| { reads::counts(db).await })
            }

            async fn prune(
                &self,
                older_than: Option<Millis>,
                keep_per_repo: Option<i64>,
            ) -> Result<Pruned, StoreError> {
                let mut total = Pruned::default();
                loop {
                    let batch = $write!(self, |db| {
                        reads::prune_batch(db, older_than, keep_per_repo).await
                    })?;
                    let done = (batch.builds.len() as i64) < reads::PRUNE_BATCH;
                    total.add(batch);
                    if done {
                        break;
                    }
                }
                if let Some(t) = older_than {
                    total.deliveries = $write!(self, |db| { reads::prune_deliveries(db, t).await })?;
                }
                Ok(total)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::AccessStore for $store {
            async fn repo_access(&self, name: &str) -> Result<Option<RepoAccess>, StoreError> {
                let name = name.to_string();
                $read!(self, |db| { access::repo_access(db, &name).await })
            }

            async fn repos_access(&self) -> Result<Vec<RepoAccess>, StoreError> {
                $read!(self, |db| { access::repos_access(db).await })
            }

            async fn builds_of(
                &self,
                repos: Vec<String>,
                filter: BuildFilter,
                limit: i64,
            ) -> Result<Vec<Build>, StoreError> {
                $read!(self, |db| { access::builds_of(db, &repos, &filter, limit).await })
            }

            async fn create_session(&self, id_hash: [u8; 32], s: Session) -> Result<(), StoreError> {
                $write!(self, |db| { access::create_session(db, &id_hash, &s).await })
            }

            async fn session(&self, id_hash: [u8; 32]) -> Result<Option<Session>, StoreError> {
                $read!(self, |db| { access::session(db, &id_hash).await })
            }

            async fn delete_session(&self, id_hash: [u8; 32]) -> Result<(), StoreError> {
                $write!(self, |db| { access::delete_session(db, &id_hash).await })
            }

            async fn cached_permission(
                &self,
                login: &str,
                repo: &str,
                since: Millis,
            ) -> Result<Option<Permission>, StoreError> {
                let (login, repo) = (login.to_string(), repo.to_string());
                $read!(self, |db| { access::cached_permission(db, &login, &repo, since).await })
            }

            async fn cache_permission(
                &self,
                login: &str,
                repo: &str,
                permission: Permission,
            ) -> Result<(), StoreError> {
                let (login, repo) = (login.to_string(), repo.to_string());
                $write!(self, |db| {
                    access::cache_permission(db, &login, &repo, permission).await
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ChecksStore for $store {
            async fn check_run(&self, job_id: i64) -> Result<Option<CheckRun>, StoreError> {
                $read!(self, |db| { checks::check_run(db, job_id).await })
            }

            async fn save_check_run(&self, run: CheckRun) -> Result<(), StoreError> {
                $write!(self, |db| { checks::save_check_run(db, &run).await })
            }

            async fn log_digest(
                &self,
                job_id: i64,
                tail_bytes: usize,
            ) -> Result<LogDigest, StoreError> {
                $read!(self, |db| { checks::log_digest(db, job_id, tail_bytes).await })
            }
        }
    };
}
pub(crate) use impl_stores;
