//! `slipway worker`: claims and runs jobs from the PostgreSQL store the servers share, with no
//! HTTP listener. Run as many as the machines allow; each keeps its mirrors and workspaces in its
//! own data directory.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `slipway worker`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The shared store: `postgres://user:password@host:port/database`, the one the servers use
    /// (default: the config's `store`). Its value is never shown.
    #[arg(long, env = "SLIPWAY_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// How many jobs run at once here (default: the config's `workers`).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Where mirrors and workspaces live (default: `SLIPWAY_DATA_DIR`, else the same directory
    /// every slipway command uses).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The TOML configuration file, as for `slipway serve` (see docs/configuration.md).
    #[arg(long, env = "SLIPWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines as JSON instead of text.
    #[arg(long)]
    pub json_logs: bool,
}

/// Runs workers until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::serve::init_logs(args.json_logs);
    let mut config = super::serve::load_config(args.config.as_deref(), args.store)?;
    if let Some(n) = args.workers {
        config.workers = n;
    }
    let data_dir = super::serve::data_dir(args.data_dir)?;
    let deploy = super::serve::deploy_credentials(&config)?;
    super::serve::runtime(config.workers)?.block_on(async move {
        let jobs = super::serve::job_runner(&config, &data_dir, deploy).await?;
        let process =
            slipway_webhook::worker_process::start_worker(config, data_dir.clone(), Arc::new(jobs))
                .await
                .with_context(|| format!("starting with data dir {}", data_dir.display()))?;
        eprintln!("slipway worker: claiming work");
        super::serve::stop_signal().await?;
        process.shutdown().await;
        Ok(())
    })
}
