//! The runner's side of archived caches: finding the one a job restores, reading it out of the
//! store when its script asks (the runner's marker handling sends it into the job), and saving
//! the job's cache when its script is done with it.
//!
//! The job script asks with markers and waits on its standard input (as for deploys): the
//! runner reads and writes the store with its own credentials, so the job container never sees
//! them. Restoring answers with the tar's length and the tar, which the script unpacks into
//! `/slipway` (entries under `cache/`); saving downloads `/slipway/cache` through the executor
//! (the engine's archive download, an exec of `tar` on Kubernetes). Every failure is one log
//! line and an empty answer: a cache never changes a job's result.

use slipway_pipelines::plan::{Job, Plan};

use super::{Archives, CacheBackend, CacheError, archive, human_bytes};
use crate::job::JobRun;
use crate::prepare::PreparedJob;
use crate::runner::Runner;
use crate::scope::{CacheScope, Owner};

impl Runner {
    /// The first owner in the job's [`CacheScope`] lookup order whose cache exists: its own, else
    /// its fallbacks in order. A store that cannot be asked is said in the log and restores
    /// nothing.
    pub(crate) async fn cache_to_restore(
        &self,
        plan: &Plan,
        job: &Job,
        run: &mut JobRun<'_>,
    ) -> Option<Owner> {
        if !self.options.cache || super::directories(job).is_empty() {
            return None;
        }
        let key = super::job_key(job);
        let scope = CacheScope::for_build(&plan.context, &self.options.default_branch);
        let repo = &plan.context.repo;
        for owner in std::iter::once(scope.own).chain(scope.fallbacks) {
            let found = match &self.options.cache_backend {
                CacheBackend::Volumes => {
                    let volume = super::volume_name(repo, &owner, &key);
                    self.executor.volume_exists(&volume).await.unwrap_or(false)
                }
                CacheBackend::Archives(a) => match a.store.size(&a.key(repo, &owner, &key)).await {
                    Ok(size) => size.is_some(),
                    Err(e) => {
                        run.error(&format!("cache: {e}; nothing is restored")).await;
                        return None;
                    }
                },
            };
            if found {
                return Some(owner);
            }
        }
        None
    }

    /// The cache the script asked to restore: the tar, or nothing when there is none or it
    /// could not be read (said in the log).
    pub(crate) async fn cache_tar(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
    ) -> Vec<u8> {
        let (CacheBackend::Archives(a), Some(owner)) =
            (&self.options.cache_backend, &prepared.cache_restore)
        else {
            return Vec::new();
        };
        match self.fetch(a, plan, job, owner).await {
            Ok(tar) => {
                run.notice(&format!(
                    "cache: downloaded the cache of {owner} ({})",
                    human_bytes(tar.len() as u64)
                ))
                .await;
                tar
            }
            Err(e) => {
                run.error(&format!("cache: the cache of {owner} is not restored: {e}"))
                    .await;
                Vec::new()
            }
        }
    }

    /// Reads the cache of `owner`, which must be one the build may read, out of the store.
    async fn fetch(
        &self,
        a: &Archives,
        plan: &Plan,
        job: &Job,
        owner: &Owner,
    ) -> Result<Vec<u8>, CacheError> {
        let scope = CacheScope::for_build(&plan.context, &self.options.default_branch);
        if *owner != scope.own && !scope.fallbacks.contains(owner) {
            return Err(CacheError::Settings(format!(
                "{owner} is not in this build's scope"
            )));
        }
        let key = a.key(&plan.context.repo, owner, &super::job_key(job));
        let gz = a.store.get(&key, a.max_bytes).await?;
        let max = a.max_bytes;
        tokio::task::spawn_blocking(move || archive::unpack(&gz, max))
            .await
            .map_err(|e| CacheError::Corrupt(format!("unpacking stopped: {e}")))?
    }

    /// Saves the job's gathered cache into the build's own, the only one it may write; the
    /// reply to the script (0 saved, 1 not).
    pub(crate) async fn save_cache(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
    ) -> i32 {
        let CacheBackend::Archives(a) = &self.options.cache_backend else {
            return 1;
        };
        let own = CacheScope::for_build(&plan.context, &self.options.default_branch).own;
        let saving = async {
            let tar = self
                .executor
                .download(&prepared.spec.job_id, archive::CACHE_ROOT)
                .await
                .map_err(|e| CacheError::Store {
                    action: "reading the cache out of the job".into(),
                    reason: e.to_string(),
                })?;
            let max = a.max_bytes;
            let gz = tokio::task::spawn_blocking(move || archive::pack(&tar, max))
                .await
                .map_err(|e| CacheError::Corrupt(format!("packing stopped: {e}")))??;
            let size = gz.len() as u64;
            let key = a.key(&plan.context.repo, &own, &super::job_key(job));
            a.store.put(&key, gz).await?;
            Ok::<u64, CacheError>(size)
        };
        match saving.await {
            Ok(size) => {
                run.notice(&format!(
                    "cache: uploaded the cache of {own} ({} compressed)",
                    human_bytes(size)
                ))
                .await;
                0
            }
            Err(e) => {
                run.error(&format!(
                    "cache: the cache of {own} is not saved (ignored): {e}"
                ))
                .await;
                1
            }
        }
    }
}
