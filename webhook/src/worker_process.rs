//! `slipway worker`: a process that only claims and runs work from a shared store, with no HTTP
//! listener, no reporter and no retention (the servers do those). Any number of them and of
//! `slipway serve` processes share one PostgreSQL database; each keeps its own git mirrors and
//! workspaces in its own data directory.

use crate::auth::GitHubAuth;
use crate::config::Config;
use crate::git::Mirrors;
use crate::job_runner::JobRunner;
use crate::metrics::Metrics;
use crate::server::ServeError;
use crate::store::{STORE_SETTING, StoreError, open_store};
use crate::worker::Engine;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A running worker process's tasks.
pub struct WorkerProcess {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WorkerProcess {
    /// Stops claiming, lets the running work see the cancel, and waits for the tasks. Work
    /// left claimed is re-queued by whoever finds its lease expired.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts `config.workers` workers and the lease reaper on the shared store `config.store`
/// names; the embedded SQLite store is refused (it is one server's own).
pub async fn start_worker(
    config: Config,
    data_dir: PathBuf,
    jobs: Arc<dyn JobRunner>,
) -> Result<WorkerProcess, ServeError> {
    crate::server::check_config(&config)?;
    let Some(url) = config.store.url()? else {
        return Err(StoreError::Setting(format!(
            "slipway worker needs a shared store: set {STORE_SETTING} to \
             postgres://user:password@host:port/database (the one the servers use)"
        ))
        .into());
    };
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::Io {
        path: data_dir.display().to_string(),
        source,
    })?;
    let store = open_store(Some(&url), &data_dir).await?;
    let workspaces = crate::server::recover(&config, &data_dir, &store, jobs.as_ref()).await?;
    tracing::info!(store = %url, workers = config.workers, "worker started");
    let config = Arc::new(config);
    let auth = Arc::new(GitHubAuth::new(config.clone())?);
    let mirrors = Arc::new(
        Mirrors::with_upkeep(data_dir.join("mirrors"), config.mirrors.upkeep())
            .with_policy(config.git.policy()),
    );
    let engine = Arc::new(Engine::new(
        store,
        jobs,
        mirrors,
        config.clone(),
        auth,
        Arc::new(Metrics::default()),
        workspaces,
    ));
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for n in 0..config.workers.max(1) {
        tasks.push(tokio::spawn(engine.clone().worker(n, shutdown.clone())));
    }
    tasks.push(tokio::spawn(engine.reaper(shutdown.clone())));
    Ok(WorkerProcess { shutdown, tasks })
}
