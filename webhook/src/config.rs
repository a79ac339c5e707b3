//! The server's configuration file (TOML): repositories, tokens and limits.
//!
//! Every field has a default, so `slipway serve` runs with no file at all; secrets may come from
//! the environment instead of the file (`SLIPWAY_WEBHOOK_SECRET`, `SLIPWAY_GITHUB_TOKEN`).

mod endpoints;
mod front_door;
mod images;
mod notifications;

pub use endpoints::EndpointSettings;
pub use front_door::{HttpSettings, RetentionSettings, SessionSettings};
pub use images::ImageSettings;
pub use notifications::{NotificationSettings, SmtpSettings};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The shortest webhook secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`--listen` wins).
    pub listen: String,
    /// The URL users reach the UI at; build links posted to GitHub start with it.
    pub public_url: Option<String>,
    /// The webhook secret shared with GitHub (`SLIPWAY_WEBHOOK_SECRET` wins when set).
    pub webhook_secret: Option<String>,
    /// Largest webhook body accepted, in bytes (GitHub caps payloads at 25 MiB).
    pub max_body_bytes: usize,
    /// Where builds, jobs and logs are kept: a `postgres://` URL shared by several servers and
    /// workers (`SLIPWAY_STORE` and `--store` win); unset, the embedded SQLite database in the
    /// data directory.
    pub store: crate::store::StoreSetting,
    /// How many jobs run at once on this machine.
    pub workers: usize,
    /// A new push to a branch or PR cancels its older queued and running builds.
    pub auto_cancel: bool,
    /// How long a claimed job's lease lasts without renewal, in seconds.
    pub lease_seconds: u64,
    /// How many times a job whose worker died is re-queued before it is marked errored.
    pub max_attempts: u32,
    /// Trusted builds (pushes, pull requests from the same repository) may use
    /// `services: docker`. Off by default: the engine is root on this machine, and the data
    /// directory it could then read holds every served repository's keys.
    pub trusted_docker: bool,
    /// What runs the jobs: `docker` (the local engine, the default) or `kubernetes` (a pod per
    /// job, in the cluster `[kubernetes]` names; see docs/kubernetes.md).
    pub executor: slipway_runner::executor::ExecutorKind,
    /// The Kubernetes executor's settings.
    pub kubernetes: slipway_runner::kubernetes::KubernetesConfig,
    /// Where build caches are kept: this machine's Docker volumes (the default), or archives in
    /// an S3-compatible bucket shared by every server and worker (see docs/scale-out.md).
    pub cache: slipway_runner::cache::CacheSettings,
    /// GitHub API settings.
    pub github: GitHub,
    /// Admin bearer tokens: they read every repository's builds and may cancel and restart any
    /// build (API, CLI, and the token sign-in of the UI).
    pub api_tokens: Vec<String>,
    /// The allow-list: when non-empty, only these repositories are served (others get 404).
    pub repos: Vec<Repo>,
    /// When git mirrors are compacted.
    pub mirrors: MirrorSettings,
    /// How big a build and its jobs may get.
    pub limits: Limits,
    /// A second address serving only `/metrics` (and `/healthz`), unauthenticated; off by
    /// default. On the public address `/metrics` needs an API token.
    pub metrics_listen: Option<String>,
    /// A PEM certificate chain: with `tls_key`, the listener speaks HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Limits of the HTTP listener.
    pub http: HttpSettings,
    /// Sign-in sessions.
    pub sessions: SessionSettings,
    /// Pruning of old builds and deliveries.
    pub retention: RetentionSettings,
    /// What every git fetch may do: time and size limits, addresses allowed.
    pub git: GitSettings,
    /// Images that run jobs of another `os:` (`osx = "registry.local/macos-tools:1"`); jobs of
    /// an OS not listed are not run here.
    pub os_images: std::collections::BTreeMap<String, String>,
    /// `addons.apt.sources` names mapped to a source line and its key (Travis's safelist
    /// named sources; their hosts are the operator's to choose).
    pub apt_sources: std::collections::HashMap<String, AptSource>,
    /// Which images jobs and services really pull: a Docker Hub mirror prefix and per-image rules
    /// (`[images]`, see `config/images.rs`).
    pub images: ImageSettings,
    /// How pipelines' `notifications:` are sent (SMTP relay, Slack, IRC, reachable addresses).
    pub notifications: NotificationSettings,
    /// Where the services deploys talk to live (`[endpoints]`, see `config/endpoints.rs`).
    pub endpoints: EndpointSettings,
}

/// One named APT source of `[apt_sources]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptSource {
    /// The `deb …` line (or `ppa:owner/name`).
    pub sourceline: String,
    /// Where the signing key is fetched from.
    pub key_url: Option<String>,
}

/// How big a build and its jobs may get: anyone who can open a pull request can make the server
/// plan and run what its pipeline file asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The most jobs a build may have (Travis refused builds over 200); counted from the matrix
    /// before any job is built.
    pub max_jobs: u64,
    /// How long planning one pipeline file may take, in seconds, before the build errors.
    pub plan_seconds: u64,
    /// The most a job may write into its container's filesystem, in GiB (caches excepted).
    pub disk_gib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_jobs: slipway_pipelines::DEFAULT_MAX_JOBS,
            plan_seconds: 10,
            disk_gib: 20,
        }
    }
}

/// Limits of every git fetch the server makes (a mirror's, and each submodule's) and the
/// addresses it may fetch from besides public ones. A pull request names its submodules' URLs:
/// without these, a fork could have the server fetch from its loopback services, its private
/// network or a cloud metadata service, or hold a worker forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitSettings {
    /// Longest one fetch may take, in seconds.
    pub fetch_timeout_seconds: u64,
    /// Most one fetch may download, in MiB.
    pub max_fetch_mb: u64,
    /// Addresses (`127.0.0.1`), networks (`10.1.0.0/16`) and host names (`git.internal`)
    /// fetched from although loopback, private, link-local and the server's own addresses are
    /// refused by default.
    pub allow: Vec<crate::git::Allowed>,
}

impl Default for GitSettings {
    fn default() -> Self {
        let d = crate::git::FetchPolicy::default();
        GitSettings {
            fetch_timeout_seconds: d.timeout.as_secs(),
            max_fetch_mb: d.max_bytes / (1024 * 1024),
            allow: d.allow,
        }
    }
}

impl GitSettings {
    /// The policy the mirrors hold every fetch to.
    pub fn policy(&self) -> crate::git::FetchPolicy {
        crate::git::FetchPolicy {
            timeout: std::time::Duration::from_secs(self.fetch_timeout_seconds.max(1)),
            max_bytes: self.max_fetch_mb.max(1).saturating_mul(1024 * 1024),
            allow: self.allow.clone(),
        }
    }
}

/// When a repository's mirror is compacted, checked after each preparation. Every fetch adds a
/// pack and every build a loose ref; both slow fetches, lookups and checkouts as they pile up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorSettings {
    /// Repack (with the git CLI, when installed) past this many packs; 0 never repacks.
    pub max_packs: usize,
    /// Write refs into `packed-refs` past this many loose refs; 0 never packs them.
    pub max_loose_refs: usize,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        let d = crate::git::Upkeep::default();
        MirrorSettings {
            max_packs: d.max_packs,
            max_loose_refs: d.max_loose_refs,
        }
    }
}

impl MirrorSettings {
    /// The upkeep the mirrors are given, with `git` from `PATH`.
    pub fn upkeep(&self) -> crate::git::Upkeep {
        crate::git::Upkeep {
            max_packs: self.max_packs,
            max_loose_refs: self.max_loose_refs,
            ..crate::git::Upkeep::default()
        }
    }
}

/// How Slipway talks to GitHub's API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHub {
    /// API base URL; tests point it at a local stand-in.
    pub api_url: String,
    /// A token with `repo:status` (classic) or "Commit statuses: write" (fine-grained);
    /// `SLIPWAY_GITHUB_TOKEN` wins when set. Also used to fetch private repositories over HTTPS.
    pub token: Option<String>,
    /// A GitHub App to authenticate as instead of a long-lived token: its App ID (a number) or
    /// client ID (`Iv1.…`). Needs `private_key_path`.
    pub app_id: Option<AppId>,
    /// The App's private key (PEM, as GitHub downloads it); it signs the short JWTs that are
    /// exchanged for installation tokens.
    pub private_key_path: Option<PathBuf>,
    /// The App's installation to use for every repository; without it, each repository's
    /// installation is looked up (`GET /repos/{owner}/{repo}/installation`) and remembered.
    pub installation_id: Option<u64>,
    /// The status context shown on the PR.
    pub status_context: String,
    /// Longest wait between two tries of one status report, in seconds.
    pub max_backoff_seconds: u64,
    /// GitHub's web address, where users are sent to sign in (GitHub Enterprise: its host).
    pub web_url: String,
    /// The OAuth App's (or GitHub App's) client ID, for "Sign in with GitHub".
    pub client_id: Option<String>,
    /// Its client secret (`SLIPWAY_GITHUB_CLIENT_SECRET` wins when set).
    pub client_secret: Option<String>,
}

/// A GitHub App's identity as the JWT's `iss` claim carries it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum AppId {
    /// The numeric App ID shown on the App's settings page.
    Number(u64),
    /// The App's client ID, which GitHub accepts in its place.
    ClientId(String),
}

/// One served repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repo {
    /// `owner/name` as GitHub spells it.
    pub name: String,
    /// Fetch from here instead of the payload's `clone_url` (a mirror, or `file://` in tests).
    pub clone_url: Option<String>,
    /// A token for this repository only (fetch and statuses), instead of `github.token`.
    pub token: Option<String>,
    /// Deploy credentials for this repository only (`[repos.deploy]`). Deploys on the server
    /// never use the server's own environment, `~/.aws`, instance metadata or `~/.kube`.
    pub deploy: Option<RepoDeploy>,
}

/// Credentials the server gives one repository's deploys when its pipeline and settings give
/// none.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RepoDeploy {
    /// AWS access key id (Elastic Beanstalk, ECS, S3).
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    /// AWS session token, for temporary keys.
    pub aws_session_token: Option<String>,
    /// A kubeconfig file on the server (`kubernetes` deploys that name none).
    pub kubeconfig: Option<PathBuf>,
}

impl std::fmt::Debug for RepoDeploy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoDeploy")
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field(
                "aws_secret_access_key",
                &self.aws_secret_access_key.as_ref().map(|_| "[secure]"),
            )
            .field(
                "aws_session_token",
                &self.aws_session_token.as_ref().map(|_| "[secure]"),
            )
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            webhook_secret: None,
            max_body_bytes: 25 * 1024 * 1024,
            store: Default::default(),
            workers: 2,
            auto_cancel: true,
            lease_seconds: 30,
            max_attempts: 3,
            trusted_docker: false,
            executor: Default::default(),
            kubernetes: Default::default(),
            cache: Default::default(),
            github: GitHub::default(),
            api_tokens: Vec::new(),
            repos: Vec::new(),
            mirrors: MirrorSettings::default(),
            limits: Limits::default(),
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            http: HttpSettings::default(),
            sessions: SessionSettings::default(),
            retention: RetentionSettings::default(),
            git: GitSettings::default(),
            os_images: Default::default(),
            apt_sources: Default::default(),
            images: Default::default(),
            notifications: NotificationSettings::default(),
            endpoints: EndpointSettings::default(),
        }
    }
}

impl Config {
    /// The runner's view of `[apt_sources]`.
    pub fn named_apt_sources(
        &self,
    ) -> std::collections::HashMap<String, slipway_runner::addons::NamedAptSource> {
        self.apt_sources
            .iter()
            .map(|(name, s)| {
                let source = slipway_runner::addons::NamedAptSource {
                    sourceline: s.sourceline.clone(),
                    key_url: s.key_url.clone(),
                };
                (name.clone(), source)
            })
            .collect()
    }
}

impl Default for GitHub {
    fn default() -> Self {
        GitHub {
            api_url: "https://api.github.com".into(),
            token: None,
            app_id: None,
            private_key_path: None,
            installation_id: None,
            status_context: "slipway".into(),
            max_backoff_seconds: 300,
            web_url: "https://github.com".into(),
            client_id: None,
            client_secret: None,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        source: toml::de::Error,
    },
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies the environment variables that override the file.
    pub fn apply_env(&mut self) {
        if let Ok(s) = std::env::var("SLIPWAY_STORE")
            && !s.is_empty()
        {
            self.store = crate::store::StoreSetting::new(s);
        }
        if let Ok(s) = std::env::var("SLIPWAY_WEBHOOK_SECRET")
            && !s.is_empty()
        {
            self.webhook_secret = Some(s);
        }
        if let Ok(t) = std::env::var("SLIPWAY_GITHUB_TOKEN")
            && !t.is_empty()
        {
            self.github.token = Some(t);
        }
        if let Ok(t) = std::env::var("SLIPWAY_GITHUB_CLIENT_SECRET")
            && !t.is_empty()
        {
            self.github.client_secret = Some(t);
        }
    }

    /// The repository's settings when it is allowed; `None` means "not served" (404).
    /// With an empty allow-list every repository is served with default settings.
    pub fn repo(&self, name: &str) -> Option<Repo> {
        if self.repos.is_empty() {
            return Some(Repo {
                name: name.to_string(),
                clone_url: None,
                token: None,
                deploy: None,
            });
        }
        self.repos
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The token to use for a repository: its own, else the global one.
    pub fn token_for(&self, name: &str) -> Option<String> {
        self.repo(name)
            .and_then(|r| r.token)
            .or_else(|| self.github.token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.workers, 2);
        assert!(c.repo("anyone/anything").is_some());
    }

    #[test]
    fn the_kubernetes_executor_is_chosen_with_its_table_and_a_misspelt_key_is_refused() {
        use slipway_runner::executor::ExecutorKind;
        assert_eq!(Config::parse("").unwrap().executor, ExecutorKind::Docker);
        let c = Config::parse(
            "executor = \"kubernetes\"\n[kubernetes]\nnamespace = \"ci\"\npending_timeout_seconds = 60\n[kubernetes.limits]\nmemory = \"2Gi\"\n",
        )
        .unwrap();
        assert_eq!(c.executor, ExecutorKind::Kubernetes);
        assert_eq!(c.kubernetes.namespace, "ci");
        assert_eq!(c.kubernetes.pending_timeout_seconds, 60);
        assert_eq!(c.kubernetes.limits.memory.as_deref(), Some("2Gi"));
        assert!(!c.kubernetes.automount_service_account_token);
        let err = Config::parse("[kubernetes]\nnamespce = \"ci\"\n").unwrap_err();
        assert!(err.to_string().contains("namespce"), "{err}");
        assert!(Config::parse("executor = \"podman\"\n").is_err());
    }

    #[test]
    fn the_cache_table_chooses_s3_with_its_bucket_and_a_misspelt_key_is_refused() {
        use slipway_runner::cache::BackendKind;
        let c = Config::parse("").unwrap();
        assert_eq!(c.cache.backend, BackendKind::Volumes);
        assert_eq!(c.cache.max_size_mib, 1024);
        let c = Config::parse(
            "[cache]\nbackend = \"s3\"\nbucket = \"ci-caches\"\nprefix = \"slipway/\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:9000\"\nmax_size_mib = 256\n",
        )
        .unwrap();
        assert_eq!(c.cache.backend, BackendKind::S3);
        assert_eq!(c.cache.bucket.as_deref(), Some("ci-caches"));
        assert_eq!(c.cache.prefix, "slipway/");
        assert_eq!(c.cache.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.cache.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.cache.max_size_mib, 256);
        let err = Config::parse("[cache]\nbuckit = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("buckit"), "{err}");
        assert!(Config::parse("[cache]\nbackend = \"gcs\"\n").is_err());
    }

    #[test]
    fn an_allow_list_serves_only_its_repositories() {
        let c = Config::parse(
            r#"
            webhook_secret = "s"
            [[repos]]
            name = "acme/app"
            clone_url = "file:///srv/app.git"
            token = "t1"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.repo("Acme/App").unwrap().clone_url.as_deref(),
            Some("file:///srv/app.git")
        );
        assert!(c.repo("eve/other").is_none());
        assert_eq!(c.token_for("acme/app").as_deref(), Some("t1"));
    }

    #[test]
    fn a_repository_may_have_deploy_credentials_of_its_own() {
        let c = Config::parse(
            "[[repos]]\nname = \"acme/app\"\n[repos.deploy]\naws_access_key_id = \"AKID\"\naws_secret_access_key = \"s3cr3t\"\nkubeconfig = \"/etc/slipway/app.kubeconfig\"\n",
        )
        .unwrap();
        let d = c.repo("acme/app").unwrap().deploy.unwrap();
        assert_eq!(d.aws_access_key_id.as_deref(), Some("AKID"));
        assert!(!format!("{d:?}").contains("s3cr3t"));
        let e = Config::parse("[[repos]]\nname = \"a/b\"\n[repos.deploy]\naws_key = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("aws_key"), "{e}");
    }

    #[test]
    fn a_github_app_is_named_by_its_id_or_its_client_id() {
        let c = Config::parse(
            "[github]\napp_id = 4242\nprivate_key_path = \"/etc/slipway/app.pem\"\ninstallation_id = 7\n",
        )
        .unwrap();
        assert_eq!(c.github.app_id, Some(AppId::Number(4242)));
        assert_eq!(c.github.installation_id, Some(7));
        let c = Config::parse("[github]\napp_id = \"Iv1.abc\"\n").unwrap();
        assert_eq!(c.github.app_id, Some(AppId::ClientId("Iv1.abc".into())));
    }

    #[test]
    fn build_limits_default_to_travis_and_can_be_set() {
        let c = Config::parse("").unwrap();
        assert_eq!((c.limits.max_jobs, c.limits.plan_seconds), (200, 10));
        let c = Config::parse("[limits]\nmax_jobs = 50\nplan_seconds = 2\ndisk_gib = 5\n").unwrap();
        assert_eq!(
            (c.limits.max_jobs, c.limits.plan_seconds, c.limits.disk_gib),
            (50, 2, 5)
        );
        let e = Config::parse("[limits]\nmax_job = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_job"), "{e}");
    }

    #[test]
    fn git_limits_and_the_allow_list_are_read_and_checked() {
        let c = Config::parse(
            "[git]\nfetch_timeout_seconds = 30\nmax_fetch_mb = 5\nallow = [\"127.0.0.1\", \"10.0.0.0/8\", \"git.internal\"]\n",
        )
        .unwrap();
        let p = c.git.policy();
        assert_eq!(p.timeout, std::time::Duration::from_secs(30));
        assert_eq!(p.max_bytes, 5 * 1024 * 1024);
        assert_eq!(p.allow.len(), 3);
        assert!(Config::parse("").unwrap().git.allow.is_empty());
        let e = Config::parse("[git]\nallow = [\"10.0.0.0/99\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("10.0.0.0/99") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let e = Config::parse("wrokers = 3").unwrap_err().to_string();
        assert!(e.contains("wrokers"), "{e}");
    }
}
