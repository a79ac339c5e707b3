//! `slipway serve`: the webhook server, queue, workers, status reporter and web UI in one process.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use slipway_providers::{AwsKeys, GitHubTokens, RepoCredentials};
use slipway_runner::executor::ExecutorKind;
use slipway_runner::kubernetes::KubernetesExecutor;
use slipway_secrets::Secret;
use slipway_webhook::Config;
use slipway_webhook::runner_exec::ServeRunner;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `slipway serve`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Address to listen on (default: the config's `listen`, else 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the database, mirrors and workspaces live (default: `SLIPWAY_DATA_DIR`, else the
    /// same directory every slipway command uses).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "SLIPWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// The store: a `postgres://user:password@host:port/database` URL shared with other
    /// servers and workers (default: the config's `store`, else the embedded SQLite database in
    /// the data directory). Its value is never shown.
    #[arg(long, env = "SLIPWAY_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Log lines as JSON instead of text.
    #[arg(long)]
    pub json_logs: bool,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    init_logs(args.json_logs);
    let mut config = load_config(args.config.as_deref(), args.store)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    slipway_webhook::server::check_config(&config)?;
    let data_dir = data_dir(args.data_dir)?;
    let deploy = deploy_credentials(&config)?;
    let config_tls = config.tls_cert.is_some();
    let docker_jobs = config.executor == ExecutorKind::Docker;
    runtime(config.workers)?.block_on(async move {
        let jobs = job_runner(&config, &data_dir, deploy).await?;
        let server = slipway_webhook::start(config, data_dir.clone(), Arc::new(jobs))
            .await
            .with_context(|| format!("starting with data dir {}", data_dir.display()))?;
        let scheme = if config_tls { "https" } else { "http" };
        eprintln!("slipway serve: listening on {scheme}://{}", server.addr);
        // Jobs reach this machine over their bridges; its port on loopback they cannot reach.
        let ports: Vec<u16> = if server.addr.ip().is_loopback() {
            Vec::new()
        } else {
            vec![server.addr.port()]
        };
        if docker_jobs {
            let guard =
                tokio::task::spawn_blocking(move || slipway_runner::netguard::install(&ports))
                    .await?;
            for line in &guard.enforced {
                tracing::info!("job networks: {line}");
            }
            for line in &guard.not_enforced {
                eprintln!("slipway serve: not enforced: {line}");
            }
        }
        stop_signal().await?;
        server.shutdown().await;
        Ok(())
    })
}

/// `--data-dir`, else the directory every slipway command uses.
pub(crate) fn data_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match arg {
        Some(d) => Ok(d),
        None => slipway_secrets::default_data_dir().context("no data directory: pass --data-dir"),
    }
}

/// The runtime of a process running `workers` jobs at once: two threads serve the network and
/// the store, and the blocking pool has room for every job's log and container calls.
pub(crate) fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64 + workers.max(1) * 4)
        .enable_all()
        .build()?)
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}

/// Logs to stderr, filtered by `SLIPWAY_LOG` (default `info`).
pub(crate) fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The configuration file (or the defaults), then the environment, then `--store`.
pub(crate) fn load_config(
    path: Option<&std::path::Path>,
    store: Option<String>,
) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.apply_env();
    if let Some(store) = store {
        config.store = slipway_webhook::store::StoreSetting::new(store);
    }
    Ok(config)
}

/// What runs the jobs a server or worker claims: the configured executor through the runner,
/// with this machine's deploy credentials and the repositories' secrets in `data_dir`.
pub(crate) async fn job_runner(
    config: &Config,
    data_dir: &std::path::Path,
    deploy: HashMap<String, RepoCredentials>,
) -> anyhow::Result<ServeRunner> {
    let executor = connect_executor(config).await?;
    // Trust is per build: the runner gives the repository's secrets (keys in the data dir,
    // from `slipway secrets`) to pushes and same-repository pull requests, never to pull
    // requests from forks. Provider deploys run through the same hook as `slipway run`,
    // but never with the server's own credentials: only each repository's.
    // GitHub Releases may use the server's own GitHub access, for the repository built only.
    let github = slipway_webhook::auth::GitHubAuth::new(Arc::new(config.clone()))?;
    let hook = Arc::new(
        slipway_providers::ProviderHook::server(deploy)
            .with_configured(configured_endpoints(&config.endpoints))
            .with_github(&config.github.api_url, Arc::new(ServerGitHub(github))),
    );
    let cache_backend = config
        .cache
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("caches: {e}"))?;
    if cache_backend.archives().is_some() {
        tracing::info!(
            "caches are archives in bucket {}",
            config.cache.bucket.as_deref().unwrap_or_default()
        );
    } else if config.executor == ExecutorKind::Kubernetes {
        tracing::warn!(
            "caches are not kept between pods: set [cache] backend = \"s3\" (docs/kubernetes.md)"
        );
    }
    let options = slipway_runner::RunnerOptions {
        parallel: 1,
        cache_backend,
        trusted: config.trusted_docker,
        limits: slipway_runner::ResourceLimits {
            disk_bytes: config.limits.disk_gib.saturating_mul(1 << 30),
            ..Default::default()
        },
        deploy_hook: Some(hook.clone()),
        artifacts_hook: Some(hook),
        hosting: slipway_runner::hosting::detect(config.os_images.clone()),
        apt_sources: config.named_apt_sources(),
        images: config.images.map.clone(),
        ..slipway_runner::RunnerOptions::default()
    };
    let jobs = ServeRunner::new(
        executor,
        options,
        Some(slipway_secrets::SecretStore::new(data_dir)),
    )
    .for_data_dir(data_dir);
    Ok(jobs)
}

/// The executor `executor = "…"` names: the local Docker engine (and how it enforces the disk
/// limit) or the `[kubernetes]` cluster.
async fn connect_executor(config: &Config) -> anyhow::Result<Arc<dyn slipway_runner::Executor>> {
    Ok(match config.executor {
        ExecutorKind::Docker => {
            let docker = slipway_runner::docker::DockerExecutor::connect()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach Docker: {e}"))?;
            report_job_limits(&docker, config.limits.disk_gib).await;
            Arc::new(docker)
        }
        ExecutorKind::Kubernetes => {
            let kube = KubernetesExecutor::connect(config.kubernetes.clone())
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach Kubernetes ([kubernetes]): {e}"))?;
            tracing::info!(
                "jobs run as pods in namespace {}",
                config.kubernetes.namespace
            );
            Arc::new(kube)
        }
    })
}

/// The server's GitHub access as deploys see it: the token it would report statuses with for the
/// repository (its `[[repos]] token`, its App's installation token, or `[github] token`).
struct ServerGitHub(slipway_webhook::auth::GitHubAuth);

#[async_trait::async_trait]
impl GitHubTokens for ServerGitHub {
    async fn token(&self, repo: &str) -> Result<Option<Secret<String>>, String> {
        self.0
            .credential(repo)
            .await
            .map(|c| c.map(|c| Secret::new(c.secret().to_owned())))
            .map_err(|e| e.to_string())
    }
}

/// Says at start-up how the per-job disk limit is enforced.
async fn report_job_limits(docker: &slipway_runner::docker::DockerExecutor, disk_gib: u64) {
    let volume = if docker.workspace_volume().await {
        "; build directories on volumes of their own, which the watchdog walks every 10 s"
    } else {
        ""
    };
    if docker.disk_quota().await {
        tracing::info!("job disk limit: {disk_gib} GiB, enforced by the storage driver{volume}");
    } else {
        tracing::info!(
            "job disk limit: {disk_gib} GiB, enforced by a watchdog every 10 s (the engine's storage driver cannot cap a container's disk){volume}"
        );
    }
}

/// The providers' view of `[endpoints]`.
fn configured_endpoints(
    e: &slipway_webhook::config::EndpointSettings,
) -> slipway_providers::Endpoints {
    slipway_providers::Endpoints {
        s3: e.s3.clone(),
        elasticbeanstalk: e.elasticbeanstalk.clone(),
        ecs: e.ecs.clone(),
        gke_container: e.gke_container.clone(),
        kubernetes: e.kubernetes.clone(),
        github_api: None,
        github: e.github.clone(),
        heroku: e.heroku.clone(),
        packagecloud: e.packagecloud.clone(),
        pypi: e.pypi.clone(),
        npm: e.npm.clone(),
        rubygems: e.rubygems.clone(),
    }
}

/// The deploy credentials the configuration gives each repository (`[repos.deploy]`).
pub(crate) fn deploy_credentials(
    config: &Config,
) -> anyhow::Result<HashMap<String, RepoCredentials>> {
    let mut out = HashMap::new();
    for repo in &config.repos {
        let Some(d) = &repo.deploy else { continue };
        let aws = match (&d.aws_access_key_id, &d.aws_secret_access_key) {
            (Some(id), Some(secret)) => Some(AwsKeys {
                access_key_id: id.clone(),
                secret_access_key: Secret::new(secret.clone()),
                session_token: d.aws_session_token.clone().map(Secret::new),
            }),
            (None, None) => None,
            _ => anyhow::bail!(
                "[repos.deploy] of {}: give aws_access_key_id and aws_secret_access_key together",
                repo.name
            ),
        };
        let creds = RepoCredentials {
            aws,
            kubeconfig: d.kubeconfig.clone(),
        };
        out.insert(repo.name.clone(), creds);
    }
    Ok(out)
}
