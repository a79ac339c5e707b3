//! Start-up: open the store, recover what a killed process left, sweep its containers, start the
//! workers, the lease reaper and the status reporter, and serve HTTP.

use crate::auth::{AuthError, GitHubAuth};
use crate::config::Config;
use crate::git::Mirrors;
use crate::github::Reporter;
use crate::job_runner::JobRunner;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, open_store};
use crate::web::{App, listen, metrics_router, router};
use crate::worker::Engine;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory or a file in it could not be used.
    #[error("{path}: {source}")]
    Io {
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The store could not be opened or recovered.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The GitHub credentials are misconfigured (e.g. an unreadable App key).
    #[error(transparent)]
    GitHub(#[from] AuthError),
    /// The webhook secret is too short to keep others from signing deliveries.
    #[error(
        "the webhook secret ({whence}) is {len} bytes; at least {min} are needed so that nobody can \
         guess it and sign deliveries. Make one with `openssl rand -hex 32`, set it as webhook_secret \
         in the config file (or SLIPWAY_WEBHOOK_SECRET) and in the Secret field of the repository's \
         webhook on GitHub; or remove webhook_secret to have one generated in the data directory",
        min = crate::config::MIN_SECRET_BYTES
    )]
    WeakSecret {
        /// Where it came from.
        whence: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] crate::web::listen::TlsError),
    /// The notification sender could not be set up.
    #[error("notifications: {0}")]
    Notifications(String),
    /// Only one of `tls_cert` and `tls_key` is set.
    #[error("tls_cert and tls_key go together: set both (PEM files) or neither")]
    TlsHalf,
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A running server.
pub struct Server {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The store, for callers that embed the server.
    pub store: Arc<dyn Store>,
    shutdown: CancellationToken,
    http: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, lets running handlers finish, and stops the workers (their jobs stay
    /// claimed, so the next start re-queues them).
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.http.await;
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Serves until the process is stopped.
    pub async fn wait(self) {
        let _ = self.http.await;
    }
}

/// Refuses a configuration that would be unsafe to serve: a configured webhook secret that is
/// too short, half a TLS setup. Checked before anything else starts.
pub fn check_config(config: &Config) -> Result<(), ServeError> {
    if let Some(s) = &config.webhook_secret
        && s.len() < crate::config::MIN_SECRET_BYTES
    {
        return Err(ServeError::WeakSecret {
            whence: "webhook_secret".into(),
            len: s.len(),
        });
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(ServeError::TlsHalf);
    }
    config.store.url()?;
    Ok(())
}

/// The webhook secret: the configured one, else one generated on first start and kept in
/// `data_dir/webhook-secret` (so a fresh install works with no setup; paste it into GitHub).
fn webhook_secret(config: &Config, data_dir: &Path) -> Result<Vec<u8>, ServeError> {
    let strong = |s: &str, whence: String| {
        if s.len() < crate::config::MIN_SECRET_BYTES {
            return Err(ServeError::WeakSecret {
                whence,
                len: s.len(),
            });
        }
        Ok(s.as_bytes().to_vec())
    };
    if let Some(s) = &config.webhook_secret {
        return strong(s, "webhook_secret".into());
    }
    let path = data_dir.join("webhook-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return strong(s.trim(), path.display().to_string());
    }
    let mut raw = [0u8; 24];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(io(Path::new("/dev/urandom")))?;
    let secret = hex::encode(raw);
    write_private(&path, &secret).map_err(io(&path))?;
    tracing::warn!(path = %path.display(), "no webhook secret configured; generated one (use it in GitHub's webhook settings)");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The real notification sender: `[notifications]` settings, the data dir's signing key, and
/// the address policy webhooks and IRC are held to.
fn notification_sender(
    config: &Config,
    data_dir: &Path,
) -> Result<slipway_notifications::Deliverer, ServeError> {
    let n = &config.notifications;
    let signing =
        crate::notify::signing_key(data_dir).map_err(io(&data_dir.join("notify-signing.pk8")))?;
    let policy = crate::git::FetchPolicy {
        allow: n.allow.clone(),
        ..Default::default()
    };
    slipway_notifications::Deliverer::new(slipway_notifications::Settings {
        smtp: n.smtp.as_ref().map(|s| s.smtp()),
        slack_url: n.slack_url.clone(),
        irc_nick: n.irc_nick.clone(),
        signing: Some(Arc::new(signing)),
        reach: Arc::new(move |host, ip| policy.refusal(host, ip).map(str::to_owned)),
        timeout: Duration::from_secs(n.timeout_seconds.max(1)),
    })
    .map_err(ServeError::Notifications)
}

/// Starts everything; `listen` overrides the config's address.
pub async fn start(
    config: Config,
    data_dir: PathBuf,
    jobs: Arc<dyn JobRunner>,
) -> Result<Server, ServeError> {
    check_config(&config)?;
    std::fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
    let secret = webhook_secret(&config, &data_dir)?;
    let store = open_store(config.store.url()?.as_ref(), &data_dir).await?;
    let workspaces = recover(&config, &data_dir, &store, jobs.as_ref()).await?;
    let sockets = Sockets::bind(&config).await?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{}://{}", sockets.scheme(), sockets.addr));

    let config = Arc::new(config);
    let auth = Arc::new(GitHubAuth::new(config.clone())?);
    let metrics = Arc::new(Metrics::default());
    let mirrors = Arc::new(
        Mirrors::with_upkeep(data_dir.join("mirrors"), config.mirrors.upkeep())
            .with_policy(config.git.policy()),
    );
    let engine = Arc::new(Engine::new(
        store.clone(),
        jobs,
        mirrors.clone(),
        config.clone(),
        auth.clone(),
        metrics.clone(),
        workspaces,
    ));
    let shutdown = CancellationToken::new();
    let mut tasks = background(&engine, mirrors, &shutdown);
    let reporter = Reporter::new(
        store.clone(),
        config.clone(),
        public_url.clone(),
        auth,
        metrics.clone(),
    );
    tasks.push(tokio::spawn(
        reporter.run(engine.outbox.clone(), shutdown.clone()),
    ));
    let notifier = crate::notify::Notifier::new(
        store.clone(),
        Arc::new(notification_sender(&config, &data_dir)?),
        Some(slipway_secrets::SecretStore::new(&data_dir)),
        public_url.clone(),
        config.notifications.max_attempts,
    );
    tasks.push(tokio::spawn(notifier.run(shutdown.clone())));

    let app = Arc::new(App {
        store: store.clone(),
        engine,
        config: config.clone(),
        secret,
        metrics,
        public_url,
        cache: Default::default(),
        limits: crate::web::limits::Limits::new(config.http.clone()),
    });
    let addr = sockets.addr;
    let http = sockets.serve(app, &config, &shutdown, &mut tasks)?;
    Ok(Server {
        addr,
        store,
        shutdown,
        http,
        tasks,
    })
}

/// Removes what a killed process left and re-queues its work; returns the emptied directory
/// job workspaces are checked out in.
pub(crate) async fn recover(
    config: &Config,
    data_dir: &Path,
    store: &Arc<dyn Store>,
    jobs: &dyn JobRunner,
) -> Result<PathBuf, ServeError> {
    // Order matters: remove what a killed process left running before its jobs are re-queued,
    // so a job never runs twice at once.
    match jobs.sweep().await {
        Ok(n) => tracing::info!(removed = n, "swept leftovers of earlier runs"),
        Err(e) => tracing::error!(error = %e, "sweeping leftovers failed"),
    }
    // A store of its own: whatever was claimed was claimed by this machine's killed process. A
    // shared one: only expired leases, since other machines hold theirs.
    let recovered = store
        .recover(!store.shared(), i64::from(config.max_attempts))
        .await?;
    tracing::info!(
        requeued = recovered.requeued,
        errored = recovered.errored,
        "recovered interrupted work"
    );
    let workspaces = data_dir.join("workspaces");
    let _ = std::fs::remove_dir_all(&workspaces);
    std::fs::create_dir_all(&workspaces).map_err(io(&workspaces))?;
    Ok(workspaces)
}

/// The workers, the lease reaper and retention, running until `shutdown`.
fn background(
    engine: &Arc<Engine>,
    mirrors: Arc<Mirrors>,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for n in 0..engine.config.workers {
        tasks.push(tokio::spawn(engine.clone().worker(n, shutdown.clone())));
    }
    tasks.push(tokio::spawn(engine.clone().reaper(shutdown.clone())));
    tasks.push(tokio::spawn(crate::retention::run(
        engine.store.clone(),
        mirrors,
        engine.config.retention.clone(),
        shutdown.clone(),
    )));
    tasks
}

/// The bound listeners: the main one (with TLS when configured) and the optional metrics one.
struct Sockets {
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    addr: SocketAddr,
}

impl Sockets {
    async fn bind(config: &Config) -> Result<Sockets, ServeError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(listen::tls_acceptor(cert, key)?),
            (None, None) => None,
            _ => return Err(ServeError::TlsHalf),
        };
        let bind = |addr: String| async move {
            tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        let listener = bind(config.listen.clone()).await?;
        let metrics = match &config.metrics_listen {
            Some(a) => Some(bind(a.clone()).await?),
            None => None,
        };
        let addr = listener
            .local_addr()
            .map_err(io(Path::new(&config.listen)))?;
        Ok(Sockets {
            listener,
            metrics,
            tls,
            addr,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves the app (and the metrics, on their own listener, without TLS) until `shutdown`.
    fn serve(
        self,
        app: Arc<App>,
        config: &Config,
        shutdown: &CancellationToken,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<tokio::task::JoinHandle<()>, ServeError> {
        let scheme = self.scheme();
        let settings = listen::Settings {
            header_timeout: Duration::from_secs(config.http.header_timeout_seconds.max(1)),
            max_connections: config.http.max_connections,
            tls: self.tls,
        };
        if let Some(l) = self.metrics {
            let metrics_addr = l.local_addr().map_err(io(Path::new("metrics_listen")))?;
            tracing::info!(%metrics_addr, "metrics listening");
            let plain = listen::Settings {
                tls: None,
                ..settings
            };
            tasks.push(tokio::spawn(listen::serve(
                l,
                metrics_router(app.clone()),
                plain,
                shutdown.clone(),
            )));
        }
        let http = tokio::spawn(listen::serve(
            self.listener,
            router(app),
            settings,
            shutdown.clone(),
        ));
        let addr = self.addr;
        tracing::info!(%addr, scheme, "listening");
        Ok(http)
    }
}
