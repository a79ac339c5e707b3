//! Runs a plan: stages in order, the jobs of a stage in parallel, each job in one container.
//!
//! [`Runner::run_build`] schedules jobs (parallelism, failed stages cancelling later ones,
//! `allow_failures`, `fast_finish`), [`Runner::run_job`] runs one job through the [`Executor`]
//! and turns its output into [`JobEvent`]s: log bytes (masked and capped), phase and command
//! markers, and the final [`JobOutcome`]. Events go to a bounded channel, so a slow consumer
//! slows the job's log reading instead of growing memory.
//!
//! This module is the [`Runner`] façade and its options; the parts live by concern:
//! [`crate::outcome`] (results and events), [`crate::prepare`] (job preparation), `stages.rs`
//! (the stage scheduler), `drive.rs` (one job from start to end), `job.rs` (the job state
//! machine), [`crate::deploy`] (the deploy seam) and [`crate::secret_source`] (the secret seam).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::addons::NamedAptSource;
use crate::executor::{ExecError, Executor, ResourceLimits, ServiceSpec, owner_label};
use slipway_pipelines::placement::Hosting;

pub use crate::deploy::{DeployHook, DeployLog, DeployReport, DeployRequest, JobFiles};
pub use crate::outcome::{
    BuildEvent, BuildOutcome, BuildResult, CommandOutcome, DeployOutcome, JobEvent, JobOutcome,
    JobResult, PhaseOutcome,
};
pub use crate::prepare::{PrepareError, PreparedJob};
pub use crate::secret_source::{RunVar, SecretSource, StoreSecrets};

/// How the runner behaves; the defaults are documented in `docs/runner.md`.
#[derive(Clone)]
pub struct RunnerOptions {
    /// Jobs of one stage run at once (`--jobs`).
    pub parallel: usize,
    /// A job is stopped after this long (default 50 min).
    pub job_timeout: Duration,
    /// A job is stopped after this long without output (default 10 min).
    pub no_output_timeout: Duration,
    /// Container limits.
    pub limits: ResourceLimits,
    /// How often the disk limit's watchdog looks at a job's container, where the engine does not
    /// enforce the limit itself (default 10 s).
    pub disk_check_interval: Duration,
    /// A job's log is cut at this many bytes (default 4 MiB, like Travis).
    pub log_cap: u64,
    /// Trusted builds may use `services: docker` (the engine socket).
    pub trusted: bool,
    /// Replaces service table entries by name (tests point `redis` at a local image).
    pub service_overrides: HashMap<String, ServiceSpec>,
    /// Whether caches are used.
    pub cache: bool,
    /// Where caches are kept: this machine's volumes, or archives in a shared store
    /// (`[cache]`, see [`crate::cache`]).
    pub cache_backend: crate::cache::CacheBackend,
    /// The repository's default branch: the last read-only fallback of every build's caches
    /// (see [`CacheScope`]).
    pub default_branch: String,
    /// Where repositories are checked out inside jobs (`/home/travis/build`).
    pub build_root: String,
    /// Decrypts secrets; `None` runs without them (`TRAVIS_SECURE_ENV_VARS=false`).
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Variables given for this run only (`slipway run --env`, `--secret`); see [`RunVar`].
    pub run_vars: Vec<RunVar>,
    /// Performs non-`script` deploys; `None` errors such a deploy.
    pub deploy_hook: Option<Arc<dyn DeployHook>>,
    /// `addons.apt.sources` names the operator maps to a source line and key (`[apt_sources]`).
    pub apt_sources: HashMap<String, NamedAptSource>,
    /// Which images jobs and services really pull (`--image`, `[images]`); empty maps nothing.
    pub images: crate::image_map::ImageMap,
    /// What this machine offers jobs (`os:` images, architectures); jobs it cannot place are
    /// not run here.
    pub hosting: Hosting,
    /// Uploads `addons.artifacts`; `None` logs that they cannot be uploaded here.
    pub artifacts_hook: Option<Arc<dyn crate::artifacts::ArtifactsHook>>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            parallel: 2,
            job_timeout: Duration::from_secs(50 * 60),
            no_output_timeout: Duration::from_secs(10 * 60),
            limits: ResourceLimits::default(),
            disk_check_interval: Duration::from_secs(10),
            log_cap: 4 << 20,
            trusted: false,
            service_overrides: HashMap::new(),
            cache: true,
            cache_backend: crate::cache::CacheBackend::Volumes,
            default_branch: "master".into(),
            build_root: "/home/travis/build".into(),
            secrets: None,
            run_vars: Vec::new(),
            deploy_hook: None,
            apt_sources: HashMap::new(),
            images: Default::default(),
            hosting: crate::hosting::detect(Default::default()),
            artifacts_hook: None,
        }
    }
}

impl std::fmt::Debug for RunnerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerOptions")
            .field("parallel", &self.parallel)
            .field("job_timeout", &self.job_timeout)
            .field("no_output_timeout", &self.no_output_timeout)
            .field("limits", &self.limits)
            .field("log_cap", &self.log_cap)
            .field("trusted", &self.trusted)
            .field("cache", &self.cache)
            .field("cache_backend", &self.cache_backend)
            .finish_non_exhaustive()
    }
}

/// Runs plans through an [`Executor`].
pub struct Runner {
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) options: RunnerOptions,
    pub(crate) owner: String,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

pub(crate) const NOTICE: &str = "\x1b[33;1m";
pub(crate) const ERROR: &str = "\x1b[31;1m";
pub(crate) const RESET: &str = "\x1b[0m";

pub(crate) fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// The build dir for a repository slug.
pub fn build_dir(root: &str, repo: &str) -> String {
    let slug = if repo.is_empty() {
        "local/project"
    } else {
        repo
    };
    format!("{}/{}", root.trim_end_matches('/'), slug)
}

impl Runner {
    /// A runner using `executor` with `options`.
    pub fn new(executor: Arc<dyn Executor>, options: RunnerOptions) -> Self {
        Runner {
            executor,
            options,
            owner: owner_label(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    /// Removes what killed runners left behind; call once at start-up.
    pub async fn sweep(&self) -> Result<crate::executor::SweepReport, ExecError> {
        self.executor.sweep().await
    }
}
