//! Runs a plan: stages in order, the jobs of a stage in parallel, each job in one container.
//!
//! [`Runner::run_build`] schedules jobs (parallelism, failed stages cancelling later ones,
//! `allow_failures`, `fast_finish`), [`Runner::run_job`] runs one job through the [`Executor`]
//! and turns its output into [`JobEvent`]s: log bytes (masked and capped), phase and command
//! markers, and the final [`JobOutcome`]. Events go to a bounded channel, so a slow consumer
//! slows the job's log reading instead of growing memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use slipway_pipelines::plan::{Context, Deploy, EnvValue, EventType, Job, PhaseName, Plan};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::addons::NamedAptSource;
use crate::cache;
use crate::env::{self, BuildInfo, EnvInputs};
use crate::executor::{
    ExecError, Executor, FileSpec, JobSpec, ResourceLimits, ServiceSpec, VolumeMount, owner_label,
};
use crate::log::{LogCap, LogFilter};
use crate::markers::{MarkerParser, Piece};
use crate::scope::{CacheScope, Owner, Trust};
use crate::script::{self, CompiledScript, DeployKind, DeployStep, ScriptEnv, ScriptInputs};
use crate::services;
use crate::workspace::Workspace;
use slipway_pipelines::placement::{self, Hosting, Placement};

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResult {
    /// Every `script` command passed and nothing errored.
    Passed,
    /// A `script` command failed.
    Failed,
    /// A setup phase, a deploy, the infrastructure or a limit stopped the job.
    Errored,
    /// Canceled before or while running.
    Canceled,
    /// Not run on this machine (an `os:` or `arch:` it has no executor for); neither fails nor
    /// passes the build.
    NotRun,
}

impl JobResult {
    /// True when the job does not hold the build back: it passed, or it was not run here.
    pub fn counts_as_passed(self) -> bool {
        matches!(self, JobResult::Passed | JobResult::NotRun)
    }

    /// Lower-case name for tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Passed => "passed",
            JobResult::Failed => "failed",
            JobResult::Errored => "errored",
            JobResult::Canceled => "canceled",
            JobResult::NotRun => "not_run",
        }
    }
}

/// One command's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandOutcome {
    /// The command as written.
    pub command: String,
    /// Its exit code; `None` when the job stopped while it ran.
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub duration: Duration,
}

/// One phase's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseOutcome {
    /// Which phase.
    pub phase: PhaseName,
    /// Its commands, in order, as far as they ran; `before_deploy` and `after_deploy` run once
    /// per deploy, so their commands repeat.
    pub commands: Vec<CommandOutcome>,
    /// How long the phase ran, all its runs together.
    pub duration: Duration,
}

/// One deploy's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployOutcome {
    /// Provider name.
    pub provider: String,
    /// Exit code (0 = deployed).
    pub exit_code: Option<i32>,
    /// How long it took.
    pub duration: Duration,
}

/// The result of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobOutcome {
    /// The plan's job number.
    pub number: usize,
    /// The job's name, if any.
    pub name: Option<String>,
    /// The job's stage.
    pub stage: String,
    /// Whether failure is allowed.
    pub allow_failure: bool,
    /// How it ended.
    pub result: JobResult,
    /// Why, when it did not pass (e.g. "the job exceeded its time limit of 50m").
    pub reason: Option<String>,
    /// Phases that ran, in order.
    pub phases: Vec<PhaseOutcome>,
    /// Deploys that ran.
    pub deploys: Vec<DeployOutcome>,
    /// Total time, setup and teardown included.
    pub duration: Duration,
    /// The container's exit code, when it ran to the end.
    pub exit_code: Option<i64>,
    /// True when the log reached the size cap.
    pub log_truncated: bool,
}

impl JobOutcome {
    fn not_run(job: &Job, result: JobResult, reason: &str) -> Self {
        JobOutcome {
            number: job.number,
            name: job.name.clone(),
            stage: job.stage.clone(),
            allow_failure: job.allow_failure,
            result,
            reason: Some(reason.into()),
            phases: Vec::new(),
            deploys: Vec::new(),
            duration: Duration::ZERO,
            exit_code: None,
            log_truncated: false,
        }
    }

    /// The phase record of `phase`, if it ran.
    pub fn phase(&self, phase: PhaseName) -> Option<&PhaseOutcome> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildResult {
    /// Every required job passed.
    Passed,
    /// A required job failed.
    Failed,
    /// A required job errored.
    Errored,
    /// The build was canceled.
    Canceled,
}

impl BuildResult {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Passed => "passed",
            BuildResult::Failed => "failed",
            BuildResult::Errored => "errored",
            BuildResult::Canceled => "canceled",
        }
    }
}

/// The result of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildOutcome {
    /// Overall result.
    pub result: BuildResult,
    /// Every planned job's outcome, in plan order.
    pub jobs: Vec<JobOutcome>,
    /// Wall time.
    pub duration: Duration,
}

/// Something that happened in a job, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// Log bytes (masked), in order; chunk boundaries carry no meaning.
    Log(Bytes),
    /// A phase began.
    PhaseStarted(PhaseName),
    /// A phase ended.
    PhaseFinished {
        /// Which.
        phase: PhaseName,
        /// How long it ran.
        duration: Duration,
    },
    /// A command began.
    CommandStarted {
        /// Its phase.
        phase: PhaseName,
        /// Index within the phase.
        index: usize,
        /// The command.
        command: String,
    },
    /// A command ended.
    CommandFinished {
        /// Its phase.
        phase: PhaseName,
        /// Index within the phase.
        index: usize,
        /// Exit code.
        exit_code: i32,
        /// Run time.
        duration: Duration,
    },
    /// The job ended; always the job's last event.
    Finished(JobOutcome),
}

/// A job event tagged with the job it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildEvent {
    /// The plan's job number.
    pub job: usize,
    /// What happened.
    pub event: JobEvent,
}

/// Decrypts a repository's `secure:` values and `.age` files for trusted jobs.
pub trait SecretSource: Send + Sync {
    /// The `NAME=value` a `secure:` env entry holds, split.
    fn decrypt_env(&self, repo: &str, ciphertext: &str) -> Result<(String, String), String>;
    /// The plaintext of an encrypted file's contents.
    fn decrypt_file(&self, repo: &str, contents: &[u8]) -> Result<Vec<u8>, String>;
    /// The repository's settings variables (exported before the file's `env:`).
    fn settings(&self, _repo: &str) -> Result<Vec<(String, String)>, String> {
        Ok(Vec::new())
    }
}

/// [`SecretSource`] over the per-repository key store of `slipway-secrets`.
#[derive(Debug)]
pub struct StoreSecrets(pub slipway_secrets::SecretStore);

impl StoreSecrets {
    fn keyring(&self, repo: &str) -> Result<slipway_secrets::Keyring, String> {
        let slug = slipway_secrets::RepoSlug::parse(repo).map_err(|e| e.to_string())?;
        self.0.keyring(&slug).map_err(|e| e.to_string())
    }
}

impl SecretSource for StoreSecrets {
    fn decrypt_env(&self, repo: &str, ciphertext: &str) -> Result<(String, String), String> {
        let (name, value) = self
            .keyring(repo)?
            .decrypt_env(ciphertext)
            .map_err(|e| e.to_string())?;
        Ok((name, value.into_exposed()))
    }

    fn decrypt_file(&self, repo: &str, contents: &[u8]) -> Result<Vec<u8>, String> {
        self.keyring(repo)?
            .decrypt_bytes(contents, std::path::Path::new("encrypted file"))
            .map(|s| s.into_exposed())
            .map_err(|e| e.to_string())
    }

    fn settings(&self, repo: &str) -> Result<Vec<(String, String)>, String> {
        let slug = slipway_secrets::RepoSlug::parse(repo).map_err(|e| e.to_string())?;
        Ok(self
            .0
            .vars(&slug)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, v)| (k, v.into_exposed()))
            .collect())
    }
}

/// Reads files from a running job, for deploy providers.
#[async_trait]
pub trait JobFiles: Send + Sync {
    /// A tar of `path` (absolute, or relative to the build dir).
    async fn tar(&self, path: &str) -> Result<Vec<u8>, ExecError>;
}

/// Where a deploy provider writes progress while it works; each line reaches the job's log (through
/// the masker) as it is written, not when the deploy ends.
pub trait DeployLog: Send + Sync {
    /// Writes one line (no trailing newline).
    fn line(&self, line: &str);
}

/// Everything a deploy provider gets.
pub struct DeployRequest<'a> {
    /// The job deploying.
    pub job: &'a Job,
    /// The deploy entry (options still encrypted where `secure:`).
    pub deploy: &'a Deploy,
    /// The event.
    pub context: &'a Context,
    /// The build dir inside the job.
    pub build_dir: &'a str,
    /// The job's files.
    pub files: &'a dyn JobFiles,
    /// The job's environment as its shell had it right before the deploy (empty when it could
    /// not be read).
    pub env: Vec<(String, String)>,
    /// Values the log masks (secret settings and `secure:` variables): env values among them
    /// must never be shown.
    pub secret_values: &'a [String],
    /// Decrypts the repository's `secure:` values; `None` when the job gets no secrets (fork pull
    /// requests, runners without keys), so `secure:` options cannot be read.
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Image references the build pushed: the job's `SLIPWAY_PUSHED_IMAGES` (space-separated).
    pub pushed_images: Vec<String>,
    /// The job's log, for progress as it happens.
    pub log: &'a dyn DeployLog,
}

/// What a deploy provider reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployReport {
    /// True when the deploy settled successfully.
    pub success: bool,
    /// Lines for the job's log, written after those sent to [`DeployRequest::log`].
    pub log: Vec<String>,
}

/// Performs deploys of providers other than `script`; called by the runner at the deploy step,
/// while the job's container waits.
#[async_trait]
pub trait DeployHook: Send + Sync {
    /// Deploys, and says how it went.
    async fn deploy(&self, request: DeployRequest<'_>) -> DeployReport;
}

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
    /// The repository's default branch: the last read-only fallback of every build's caches
    /// (see [`CacheScope`]).
    pub default_branch: String,
    /// Where repositories are checked out inside jobs (`/home/travis/build`).
    pub build_root: String,
    /// Decrypts secrets; `None` runs without them (`TRAVIS_SECURE_ENV_VARS=false`).
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Performs non-`script` deploys; `None` errors such a deploy.
    pub deploy_hook: Option<Arc<dyn DeployHook>>,
    /// `addons.apt.sources` names the operator maps to a source line and key (`[apt_sources]`).
    pub apt_sources: HashMap<String, NamedAptSource>,
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
            default_branch: "master".into(),
            build_root: "/home/travis/build".into(),
            secrets: None,
            deploy_hook: None,
            apt_sources: HashMap::new(),
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
            .finish_non_exhaustive()
    }
}

/// A job prepared for an executor: the container spec and the compiled script.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    /// What the executor creates.
    pub spec: JobSpec,
    /// The compiled script (`spec.files` holds its text with secrets).
    pub script: CompiledScript,
    /// The script as shown to people: secrets as `[secure]`.
    pub display_script: String,
    /// Values the log masks.
    pub secrets: Vec<String>,
    /// Notices for the start of the log.
    pub notices: Vec<String>,
}

/// Why a job could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PrepareError(pub String);

/// Runs plans through an [`Executor`].
pub struct Runner {
    executor: Arc<dyn Executor>,
    options: RunnerOptions,
    owner: String,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

const NOTICE: &str = "\x1b[33;1m";
const ERROR: &str = "\x1b[31;1m";
const RESET: &str = "\x1b[0m";

fn fmt_duration(d: Duration) -> String {
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

    /// Builds the executor spec and script of a job, without touching the engine.
    /// `cache_restore` is the owner whose cache the job restores (its own, or a read-only
    /// fallback of its [`CacheScope`]); `None` when none has a cache yet.
    pub fn prepare(
        &self,
        plan: &Plan,
        job: &Job,
        build: &BuildInfo,
        workspace: Option<&Workspace>,
        cache_restore: Option<Owner>,
    ) -> Result<PreparedJob, PrepareError> {
        let ctx = &plan.context;
        let build_dir = build_dir(&self.options.build_root, &ctx.repo);
        let mut notices = Vec::new();
        let (image, platform) = match placement::place(job, &self.options.hosting) {
            Placement::Here { image, platform } => {
                if let Some(image) = &image {
                    notices.push(format!(
                        "os: {} runs in the image {image}, as the operator configured",
                        job.matrix
                            .get("os")
                            .and_then(|v| v.as_str())
                            .unwrap_or("linux")
                    ));
                }
                if let Some(platform) = &platform {
                    notices.push(format!("The job runs as {platform} through emulation"));
                }
                (image.unwrap_or_else(|| job.image.name.clone()), platform)
            }
            Placement::NotHere(why) => return Err(PrepareError(format!("not run here: {why}"))),
        };
        // `git: clone: false`: nothing of the repository goes in, as on Travis.
        let workspace = workspace.filter(|_| job.git.clone);
        if !job.git.clone {
            notices.push(format!(
                "Skipping the clone (git: clone: false): the job starts in an empty {build_dir}"
            ));
        }
        let can_decrypt = self.options.secrets.is_some() && !ctx.fork;
        // Why secrets are withheld, for the log: the fork rule, or no key here.
        let withheld_because = if ctx.fork {
            "this is a pull request from a fork, and secrets go only to trusted builds".to_string()
        } else {
            format!("no key for {} is present here", ctx.repo)
        };
        let mut secrets = Vec::new();
        let mut script_env = Vec::new();
        let mut secure_skipped = Vec::new();
        if let (Some(src), false) = (&self.options.secrets, can_decrypt) {
            // Names only: a fork's log says which settings variables it does not get.
            let names: Vec<String> = src
                .settings(&ctx.repo)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            if !names.is_empty() {
                notices.push(format!(
                    "Settings variables are not exported because {withheld_because}: {}",
                    names.join(", ")
                ));
            }
        }
        if let (Some(src), true) = (&self.options.secrets, can_decrypt) {
            let settings = src.settings(&ctx.repo).map_err(|e| {
                PrepareError(format!("reading the repository's settings variables: {e}"))
            })?;
            for (name, value) in settings {
                secrets.push(value.clone());
                script_env.push(ScriptEnv::Secret { name, value });
            }
        }
        for var in &job.env {
            match &var.value {
                EnvValue::Plain(v) => script_env.push(ScriptEnv::Shell {
                    name: var.name.clone(),
                    value: v.clone(),
                }),
                EnvValue::Secure(cipher) => match (&self.options.secrets, can_decrypt) {
                    (Some(src), true) => {
                        let (_, value) = src.decrypt_env(&ctx.repo, cipher).map_err(|e| {
                            PrepareError(format!(
                                "decrypting the secure value of {}: {e}",
                                var.name
                            ))
                        })?;
                        secrets.push(value.clone());
                        script_env.push(ScriptEnv::Secret {
                            name: var.name.clone(),
                            value,
                        });
                    }
                    _ => secure_skipped.push(var.name.clone()),
                },
                EnvValue::SecureAssignment(cipher) => match (&self.options.secrets, can_decrypt) {
                    (Some(src), true) => {
                        let (name, value) = src.decrypt_env(&ctx.repo, cipher).map_err(|e| {
                            PrepareError(format!("decrypting a secure env entry: {e}"))
                        })?;
                        secrets.push(value.clone());
                        script_env.push(ScriptEnv::Secret { name, value });
                    }
                    _ => secure_skipped.push("(a secure env entry)".into()),
                },
            }
        }
        if !secure_skipped.is_empty() {
            notices.push(format!(
                "Secure variables are unset because {withheld_because}: {}",
                secure_skipped.join(", ")
            ));
        }
        let secure_env_vars = can_decrypt;
        let inputs = EnvInputs {
            context: ctx,
            job,
            build,
            build_dir: &build_dir,
            secure_env_vars,
        };
        let mut env = env::job_environment(&inputs);
        // Git refuses repositories owned by another user; the workspace is ours to trust.
        env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
        env.push(("GIT_CONFIG_KEY_0".into(), "safe.directory".into()));
        env.push(("GIT_CONFIG_VALUE_0".into(), "*".into()));

        // Services.
        let mut service_specs = Vec::new();
        let mut docker_socket = false;
        for name in &crate::addons::services(job) {
            if name == "docker" {
                if !self.options.trusted || ctx.fork {
                    return Err(PrepareError(
                        "services: docker gives the job the Docker engine, which only trusted builds get; this build is not trusted".into(),
                    ));
                }
                docker_socket = true;
                notices.push(
                    "services: docker: this job can use the host's Docker engine (trusted build); containers it starts are not cleaned up by Slipway".into(),
                );
                continue;
            }
            let spec = self
                .options
                .service_overrides
                .get(name)
                .cloned()
                .or_else(|| {
                    let mut spec = services::default_spec(name)?;
                    if let Some(image) =
                        crate::addons::service_image(&job.addons, name, &spec.image)
                    {
                        spec.image = image;
                    }
                    Some(spec)
                })
                .ok_or_else(|| {
                    PrepareError(format!(
                        "unknown service {name}; known: docker, {}",
                        services::SERVICES
                            .iter()
                            .map(|s| s.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            notices.push(format!(
                "Service {} ({}) is reachable on localhost and as {}",
                spec.name,
                spec.image,
                std::iter::once(&spec.name)
                    .chain(&spec.aliases)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            service_specs.push(spec);
        }

        if Trust::of(ctx) == Trust::Untrusted {
            notices.push(
                "This build is not trusted (a pull request from a fork): its containers run on a network of their own, shared with no other build".into(),
            );
        }

        // Cache.
        let cache_dirs = if self.options.cache {
            cache::directories(job)
        } else {
            Vec::new()
        };
        let mut volumes = Vec::new();
        if !cache_dirs.is_empty() {
            let key = cache::job_key(job);
            let scope = CacheScope::for_build(ctx, &self.options.default_branch);
            let cache_restore_is_own = cache_restore.as_ref() == Some(&scope.own);
            let mut labels = vec![("dev.slipway.cache.repo".into(), ctx.repo.clone())];
            labels.extend(scope.own.labels());
            labels.push(("dev.slipway.cache.key".into(), key.clone()));
            volumes.push(VolumeMount {
                volume: cache::volume_name(&ctx.repo, &scope.own, &key),
                target: script::CACHE_MOUNT.into(),
                read_only: false,
                labels,
            });
            // Only a fallback of the build's own scope is ever mounted, and only read-only.
            let own = &scope.own;
            let fallback = cache_restore.filter(|o| scope.fallbacks.contains(o));
            notices.push(match (&fallback, cache_restore_is_own) {
                (Some(from), _) => format!(
                    "Cache: restoring the cache of {from} (read-only for this build); saving into the cache of {own}"
                ),
                (None, true) => format!("Cache: restoring and saving the cache of {own}"),
                (None, false) => format!(
                    "Cache: nothing is cached yet for {own} nor what it may start from; saving into the cache of {own}"
                ),
            });
            if let Some(from) = fallback {
                volumes.push(VolumeMount {
                    volume: cache::volume_name(&ctx.repo, &from, &key),
                    target: script::CACHE_FALLBACK_MOUNT.into(),
                    read_only: true,
                    labels: Vec::new(),
                });
            }
        }

        // Workspaces of this build, beside the caches and in the build's own cache scope.
        let scope = CacheScope::for_build(ctx, &self.options.default_branch);
        volumes.extend(crate::build_workspaces::mounts(job, &scope, build.number));
        for name in &job.workspaces.uses {
            notices.push(format!("Using workspace {name} of this build"));
        }

        // Every deploy is a step, in file order: the ones that do not run for this event say why
        // where they would have run.
        let mut deploys = Vec::new();
        if ctx.event == EventType::PullRequest && !job.deploys.is_empty() {
            notices.push(format!(
                "Deploys do not run for pull requests{}: {}",
                if ctx.fork {
                    " (this one is from a fork)"
                } else {
                    ""
                },
                job.deploys
                    .iter()
                    .map(|d| d.provider.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (index, d) in job.deploys.iter().enumerate() {
            let kind = if ctx.event == EventType::PullRequest {
                DeployKind::Skipped("deploys never run on pull request builds".into())
            } else if !d.decision.included {
                DeployKind::Skipped(d.decision.reason.clone())
            } else if d.provider == "script" {
                let cmd = d
                    .options
                    .get("script")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        PrepareError("deploy provider script needs a `script:` command".into())
                    })?;
                DeployKind::Script(cmd.to_string())
            } else {
                DeployKind::Hook
            };
            // A provider or a script that prints a decrypted deploy option shows `[secure]`:
            // the options' secure values join the masker before anything runs.
            if let (Some(src), true, DeployKind::Script(_) | DeployKind::Hook) =
                (&self.options.secrets, can_decrypt, &kind)
            {
                let mut ciphertexts = Vec::new();
                for value in d.options.values() {
                    secure_values(value, &mut ciphertexts);
                }
                // One that does not decrypt fails its deploy later, naming the option.
                secrets.extend(
                    ciphertexts
                        .into_iter()
                        .filter_map(|c| src.decrypt_env(&ctx.repo, c).ok())
                        .map(|(_, value)| value),
                );
            }
            deploys.push(DeployStep {
                index,
                provider: d.provider.clone(),
                kind,
                allow_failure: d.allow_failure,
                conditions: d.condition.clone(),
                cleanup: !d.skip_cleanup,
            });
        }

        let nonce = {
            let mut b = [0u8; 12];
            getrandom::fill(&mut b).map_err(|e| PrepareError(format!("random nonce: {e}")))?;
            hex::encode(b)
        };
        let artifacts = job.addons.artifacts.as_ref().map(|options| {
            let decrypt = |cipher: &str| match (&self.options.secrets, can_decrypt) {
                (Some(src), true) => src.decrypt_env(&ctx.repo, cipher).ok().map(|(_, v)| v),
                _ => None,
            };
            let env = crate::artifacts::script_env(options, &decrypt);
            for var in &env {
                if let ScriptEnv::Secret { value, .. } = var {
                    secrets.push(value.clone());
                }
            }
            let branch = options
                .get("branch")
                .and_then(|b| b.as_str())
                .map(str::to_owned);
            script::ArtifactsStep { env, branch }
        });
        let addon_steps = crate::addons::steps(job, &self.options.apt_sources);
        notices.extend(addon_steps.notices);
        let sinputs = ScriptInputs {
            job,
            nonce: &nonce,
            env: script_env,
            cache_dirs,
            deploys,
            notices: Vec::new(),
            addons: addon_steps.script,
            workspace_restore: crate::build_workspaces::restore_script(job),
            workspace_save: crate::build_workspaces::save_script(job),
            artifacts,
        };
        let compiled = script::compile(&sinputs, true);
        let display_script = script::compile(&sinputs, false).text;

        let mut files = vec![
            FileSpec {
                path: script::SCRIPT_PATH.into(),
                contents: compiled.text.clone().into_bytes(),
                mode: 0o755,
            },
            crate::sudo::shim_file(),
        ];
        if !job.secret_files.is_empty() {
            match (&self.options.secrets, can_decrypt, workspace) {
                (Some(src), true, Some(ws)) => {
                    for f in &job.secret_files {
                        let data = std::fs::read(ws.root.join(f)).map_err(|e| {
                            PrepareError(format!("reading encrypted file {f}: {e}"))
                        })?;
                        let plain = src
                            .decrypt_file(&ctx.repo, &data)
                            .map_err(|e| PrepareError(format!("decrypting {f}: {e}")))?;
                        let target = f.strip_suffix(".age").unwrap_or(f);
                        // A job that prints the file shows `[secure]`, line by line.
                        if let Ok(text) = std::str::from_utf8(&plain) {
                            secrets.push(text.to_string());
                        }
                        files.push(FileSpec {
                            path: format!("{build_dir}/{target}"),
                            contents: plain,
                            mode: 0o600,
                        });
                    }
                }
                (_, true, None) => notices.push(format!(
                    "Encrypted files are not decrypted because the job has no workspace to read them from: {}",
                    job.secret_files.join(", ")
                )),
                _ => notices.push(format!(
                    "Encrypted files are not decrypted because {withheld_because}: {}",
                    job.secret_files.join(", ")
                )),
            }
        }

        let spec = JobSpec {
            job_id: format!("{}-{}", build.id, job.number),
            build_id: build.id.clone(),
            owner: self.owner.clone(),
            image,
            env,
            working_dir: build_dir,
            cmd: script::container_command(),
            files,
            workspace_tar: workspace.map(|w| w.tar.to_path_buf()),
            services: service_specs,
            volumes,
            docker_socket,
            own_network: Trust::of(ctx) == Trust::Untrusted,
            limits: self.options.limits,
            open_stdin: compiled.needs_stdin,
            platform,
        };
        Ok(PreparedJob {
            spec,
            script: compiled,
            display_script,
            secrets,
            notices,
        })
    }

    /// Runs every stage of `plan`; see the module docs. Events of all jobs go to `events`.
    pub async fn run_build(
        &self,
        plan: &Plan,
        build: &BuildInfo,
        workspace: Option<&Workspace>,
        events: mpsc::Sender<BuildEvent>,
        cancel: CancellationToken,
    ) -> BuildOutcome {
        let started = Instant::now();
        let mut outcomes: Vec<JobOutcome> = Vec::new();
        let mut stop_reason: Option<String> = None;
        let semaphore = Arc::new(Semaphore::new(self.options.parallel.max(1)));
        for stage in &plan.stages {
            if let Some(reason) = &stop_reason {
                for job in &stage.jobs {
                    let o = JobOutcome::not_run(job, JobResult::Canceled, reason);
                    let _ = events
                        .send(BuildEvent {
                            job: job.number,
                            event: JobEvent::Finished(o.clone()),
                        })
                        .await;
                    outcomes.push(o);
                }
                continue;
            }
            let stage_token = cancel.child_token();
            let allowed_token = stage_token.child_token();
            let mut running = FuturesUnordered::new();
            for job in &stage.jobs {
                let token = if job.allow_failure {
                    allowed_token.child_token()
                } else {
                    stage_token.child_token()
                };
                let sem = semaphore.clone();
                let events = events.clone();
                running.push(async move {
                    let permit = tokio::select! {
                        p = sem.acquire_owned() => p.ok(),
                        _ = token.cancelled() => None,
                    };
                    let outcome = if permit.is_none() || token.is_cancelled() {
                        let o = JobOutcome::not_run(
                            job,
                            JobResult::Canceled,
                            "canceled before it started",
                        );
                        let _ = events
                            .send(BuildEvent {
                                job: job.number,
                                event: JobEvent::Finished(o.clone()),
                            })
                            .await;
                        o
                    } else {
                        self.run_job(plan, job, build, workspace, events, token)
                            .await
                    };
                    drop(permit);
                    outcome
                });
            }
            let required_total = stage.jobs.iter().filter(|j| !j.allow_failure).count();
            let mut required_done = 0;
            let mut stage_outcomes = Vec::new();
            while let Some(o) = running.next().await {
                if !o.allow_failure {
                    required_done += 1;
                    if !o.result.counts_as_passed() && plan.fast_finish {
                        // fast_finish: the build's result is known; stop the rest.
                        stage_token.cancel();
                    }
                }
                if plan.fast_finish && required_done == required_total {
                    allowed_token.cancel();
                }
                stage_outcomes.push(o);
            }
            stage_outcomes.sort_by_key(|o| o.number);
            if cancel.is_cancelled() {
                stop_reason = Some("the build was canceled".into());
            } else if let Some(bad) = stage_outcomes
                .iter()
                .find(|o| !o.allow_failure && !o.result.counts_as_passed())
            {
                stop_reason = Some(format!(
                    "stage {} did not pass (job {} {})",
                    stage.name,
                    bad.number,
                    bad.result.as_str()
                ));
            }
            outcomes.extend(stage_outcomes);
        }
        let required = || outcomes.iter().filter(|o| !o.allow_failure);
        let result = if cancel.is_cancelled() {
            BuildResult::Canceled
        } else if required().any(|o| o.result == JobResult::Errored) {
            BuildResult::Errored
        } else if required().any(|o| !o.result.counts_as_passed()) {
            BuildResult::Failed
        } else {
            BuildResult::Passed
        };
        BuildOutcome {
            result,
            jobs: outcomes,
            duration: started.elapsed(),
        }
    }

    /// Runs one job to its end and tears it down, whatever happens; see the module docs.
    pub async fn run_job(
        &self,
        plan: &Plan,
        job: &Job,
        build: &BuildInfo,
        workspace: Option<&Workspace>,
        events: mpsc::Sender<BuildEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let started = Instant::now();
        let mut run = JobRun::new(job, events, &self.options);
        run.notice(&format!(
            "Slipway job {}.{}{} in stage {}, image {}",
            build.number,
            job.number,
            job.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            job.stage,
            job.image.name
        ))
        .await;
        if let Placement::NotHere(why) = placement::place(job, &self.options.hosting) {
            run.notice(&format!("This job is not run here: {why}."))
                .await;
            return run
                .finish(
                    JobResult::NotRun,
                    Some(format!("not run here: {why}")),
                    started,
                    None,
                )
                .await;
        }

        // A workspace this build never created: say so before making anything.
        let scope = CacheScope::for_build(&plan.context, &self.options.default_branch);
        for name in &job.workspaces.uses {
            let volume = crate::build_workspaces::volume_name(&scope, build.number, name);
            if !self.executor.volume_exists(&volume).await.unwrap_or(true) {
                let why = crate::build_workspaces::missing(name);
                run.error(&why).await;
                return run
                    .finish(JobResult::Errored, Some(why), started, None)
                    .await;
            }
        }

        let restore = self.cache_to_restore(plan, job).await;
        let prepared = match self.prepare(plan, job, build, workspace, restore) {
            Ok(p) => p,
            Err(e) => {
                run.error(&e.0).await;
                return run
                    .finish(JobResult::Errored, Some(e.0), started, None)
                    .await;
            }
        };
        // The one filter stage every log byte passes: the secrets masker.
        let (masker, warnings) = slipway_secrets::Masker::new(
            prepared
                .secrets
                .iter()
                .cloned()
                .map(slipway_secrets::Secret::new),
        );
        run.set_filter(Box::new(masker));
        for w in warnings {
            run.notice(&w.to_string()).await;
        }
        for n in &prepared.notices {
            run.notice(n).await;
        }
        let job_id = prepared.spec.job_id.clone();
        let outcome = self.drive(plan, job, &prepared, &mut run, cancel).await;
        if let Err(e) = self.executor.teardown(&job_id).await {
            run.error(&format!("cleaning up the job's containers failed: {e}"))
                .await;
        }
        let (result, reason, exit) = outcome;
        run.finish(result, reason, started, exit).await
    }

    /// The first owner in the job's [`CacheScope`] lookup order whose cache exists: its own, else
    /// its fallbacks in order.
    async fn cache_to_restore(&self, plan: &Plan, job: &Job) -> Option<Owner> {
        if !self.options.cache || cache::directories(job).is_empty() {
            return None;
        }
        let key = cache::job_key(job);
        let scope = CacheScope::for_build(&plan.context, &self.options.default_branch);
        for owner in std::iter::once(scope.own).chain(scope.fallbacks) {
            let volume = cache::volume_name(&plan.context.repo, &owner, &key);
            if self.executor.volume_exists(&volume).await.unwrap_or(false) {
                return Some(owner);
            }
        }
        None
    }

    async fn drive(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
        cancel: CancellationToken,
    ) -> (JobResult, Option<String>, Option<i64>) {
        let spec = &prepared.spec;
        // Setup, cancellable.
        let setup = async {
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            let progress = move |line: &str| {
                let _ = tx.send(line.to_string());
            };
            let work = async {
                let mut images = vec![spec.image.clone()];
                images.extend(spec.services.iter().map(|s| s.image.clone()));
                if !spec.services.is_empty() {
                    // The namespace holder runs the job image too.
                }
                for image in images {
                    self.executor.ensure_image(&image, &progress).await?;
                }
                self.executor.setup(spec, &progress).await
            };
            tokio::pin!(work);
            loop {
                tokio::select! {
                    r = &mut work => {
                        while let Ok(line) = rx.try_recv() { run.notice(&line).await; }
                        return r;
                    }
                    Some(line) = rx.recv() => run.notice(&line).await,
                }
            }
        };
        let setup_result = tokio::select! {
            r = setup => Some(r),
            _ = cancel.cancelled() => None,
        };
        match setup_result {
            None => {
                run.error("The job was canceled.").await;
                return (JobResult::Canceled, Some("canceled".into()), None);
            }
            Some(Err(e)) => {
                run.error(&e.to_string()).await;
                return (JobResult::Errored, Some(e.to_string()), None);
            }
            Some(Ok(())) => {}
        }

        let streams = match self.executor.start(spec).await {
            Ok(s) => s,
            Err(e) => {
                run.error(&e.to_string()).await;
                return (JobResult::Errored, Some(e.to_string()), None);
            }
        };
        let mut output = streams.output;
        let mut input = streams.input;
        let nonce = prepared
            .script
            .text
            .lines()
            .find_map(|l| l.strip_prefix("slipway_nonce="))
            .unwrap_or_default()
            .to_string();
        let mut parser = MarkerParser::new(&nonce);
        let deadline = tokio::time::Instant::now() + self.options.job_timeout;
        let mut last_output = tokio::time::Instant::now();
        let mut stopped: Option<(JobResult, String)> = None;
        let mut pieces = Vec::new();
        let disk = crate::disk::watchdog(
            self.executor.as_ref(),
            &spec.job_id,
            spec.limits.disk_bytes,
            self.options.disk_check_interval,
        );
        tokio::pin!(disk);
        loop {
            let silence_deadline = last_output + self.options.no_output_timeout;
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(bytes)) => {
                        last_output = tokio::time::Instant::now();
                        parser.push(bytes, &mut pieces);
                        for piece in pieces.drain(..) {
                            match piece {
                                Piece::Log(b) => run.log(b).await,
                                Piece::Marker(m) => {
                                    let reply = if let Some(i) = m.strip_prefix("deploy-request ") {
                                        Some(self.deploy(plan, job, prepared, run, i).await)
                                    } else if m == "artifacts-request" {
                                        Some(self.upload_artifacts(plan, prepared, run).await)
                                    } else {
                                        None
                                    };
                                    if let Some(code) = reply {
                                        if let Some(w) = input.as_mut() {
                                            let _ = w.write_all(format!("{code}\n").as_bytes()).await;
                                            let _ = w.flush().await;
                                        }
                                    } else {
                                        run.marker(&m, &prepared.script).await;
                                    }
                                }
                            }
                        }
                    }
                    Some(Err(e)) => {
                        run.error(&e.to_string()).await;
                        stopped = Some((JobResult::Errored, e.to_string()));
                        break;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let why = format!("The job exceeded its time limit of {} and was stopped.", fmt_duration(self.options.job_timeout));
                    stopped = Some((JobResult::Errored, why));
                    break;
                }
                _ = tokio::time::sleep_until(silence_deadline) => {
                    let why = format!("No output has been received in the last {}; the job was stopped (use travis_wait for long silent commands).", fmt_duration(self.options.no_output_timeout));
                    stopped = Some((JobResult::Errored, why));
                    break;
                }
                _ = cancel.cancelled() => {
                    stopped = Some((JobResult::Canceled, "The job was canceled.".into()));
                    break;
                }
                why = &mut disk => {
                    stopped = Some((JobResult::Errored, why));
                    break;
                }
            }
        }
        parser.finish(&mut pieces);
        for piece in pieces.drain(..) {
            if let Piece::Log(b) = piece {
                run.log(b).await;
            }
        }
        drop(input);
        if let Some((result, why)) = stopped {
            if let Err(e) = self.executor.kill(&spec.job_id).await {
                run.error(&format!("stopping the job container failed: {e}"))
                    .await;
            }
            run.close_open_command();
            run.error(&why).await;
            return (result, Some(why), None);
        }
        let exit = match self.executor.wait(&spec.job_id).await {
            Ok(code) => code,
            Err(e) => {
                run.error(&e.to_string()).await;
                return (JobResult::Errored, Some(e.to_string()), None);
            }
        };
        // A command that ends the shell itself (`exit 3`) leaves its command open.
        let open = run.command_started.map(|(p, _, _)| p);
        if let Some(c) = open.and_then(|p| run.phase_mut(p).commands.last_mut()) {
            c.exit_code = Some(exit as i32);
        }
        run.close_open_command();
        match (run.reported.take(), open) {
            (Some(result), _) => {
                let reason = match result {
                    JobResult::Passed => None,
                    JobResult::Failed => Some("a script command failed".into()),
                    _ => Some(run.error_reason()),
                };
                (result, reason, Some(exit))
            }
            (None, Some(phase)) if exit != 137 => {
                run.error(&format!(
                    "A {} command ended the job's shell with exit code {exit}.",
                    phase.as_str()
                ))
                .await;
                let result = match (phase, exit) {
                    (_, 0) => JobResult::Passed,
                    (PhaseName::Script, _) => JobResult::Failed,
                    _ => JobResult::Errored,
                };
                let reason =
                    (result != JobResult::Passed).then(|| format!("{} failed", phase.as_str()));
                (result, reason, Some(exit))
            }
            (None, _) => {
                let why = if exit == 137 {
                    "The job's shell was killed (exit code 137), most likely by the memory limit."
                        .to_string()
                } else {
                    format!("The job's shell exited with code {exit} before the job finished.")
                };
                run.error(&why).await;
                (JobResult::Errored, Some(why), Some(exit))
            }
        }
    }

    /// Reads the artifact paths out of the job and uploads them; the reply to the job's script.
    /// Whatever happens, the job's result stays as it is.
    async fn upload_artifacts(
        &self,
        plan: &Plan,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
    ) -> i32 {
        let job_id = &prepared.spec.job_id;
        let env = match self
            .executor
            .download(job_id, crate::artifacts::ENV_PATH)
            .await
        {
            Ok(tar) => parse_env_dump(&tar),
            Err(_) => Vec::new(),
        };
        let options = match crate::artifacts::options_from_env(&env) {
            Ok(o) => o,
            Err(why) => {
                run.error(&format!("addons.artifacts: nothing uploaded: {why}"))
                    .await;
                return 1;
            }
        };
        let Some(hook) = &self.options.artifacts_hook else {
            run.error("addons.artifacts: this runner has no uploader; nothing uploaded")
                .await;
            return 1;
        };
        let files = ExecutorFiles {
            executor: self.executor.as_ref(),
            job_id,
            build_dir: &prepared.spec.working_dir,
        };
        let mut found = Vec::new();
        for path in &options.paths {
            match files.tar(path).await {
                Ok(tar) => match crate::artifacts::files_of(path, &tar) {
                    Ok(f) => found.extend(f),
                    Err(e) => run.notice(&format!("addons.artifacts: {path}: {e}")).await,
                },
                Err(_) => {
                    run.notice(&format!("addons.artifacts: {path} does not exist, skipped"))
                        .await
                }
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = ChannelLog(tx);
        let request = crate::artifacts::ArtifactsRequest {
            repo: &plan.context.repo,
            options,
            files: found,
            log: &sink,
        };
        let uploading = hook.upload(request);
        tokio::pin!(uploading);
        let result = loop {
            tokio::select! {
                r = &mut uploading => break r,
                Some(line) = rx.recv() => run.log(Bytes::from(line)).await,
            }
        };
        while let Ok(line) = rx.try_recv() {
            run.log(Bytes::from(line)).await;
        }
        match result {
            Ok(n) => {
                run.notice(&format!("addons.artifacts: uploaded {n} object(s)"))
                    .await;
                0
            }
            Err(e) => {
                run.error(&format!("addons.artifacts: upload failed: {e}"))
                    .await;
                1
            }
        }
    }

    async fn deploy(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
        marker_index: &str,
    ) -> i32 {
        let Some(step) = marker_index
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|i| prepared.script.deploys.get(i))
        else {
            return 1;
        };
        let Some(hook) = &self.options.deploy_hook else {
            run.error(&format!(
                "Deploy provider {} is not available in this runner; nothing was deployed.",
                step.provider
            ))
            .await;
            return 1;
        };
        let files = ExecutorFiles {
            executor: self.executor.as_ref(),
            job_id: &prepared.spec.job_id,
            build_dir: &prepared.spec.working_dir,
        };
        let env = match self
            .executor
            .download(&prepared.spec.job_id, script::DEPLOY_ENV_PATH)
            .await
        {
            Ok(tar) => parse_env_dump(&tar),
            Err(_) => Vec::new(),
        };
        let pushed_images = env
            .iter()
            .find(|(k, _)| k == "SLIPWAY_PUSHED_IMAGES")
            .map(|(_, v)| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let secrets = match (&self.options.secrets, plan.context.fork) {
            (Some(s), false) => Some(s.clone()),
            _ => None,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = ChannelLog(tx);
        let request = DeployRequest {
            job,
            deploy: &job.deploys[step.index],
            context: &plan.context,
            build_dir: &prepared.spec.working_dir,
            files: &files,
            env,
            secret_values: &prepared.secrets,
            secrets,
            pushed_images,
            log: &sink,
        };
        let deploying = hook.deploy(request);
        tokio::pin!(deploying);
        let report = loop {
            tokio::select! {
                report = &mut deploying => break report,
                Some(line) = rx.recv() => run.log(Bytes::from(line)).await,
            }
        };
        // Lines sent in the deploy's last poll are already queued.
        while let Ok(line) = rx.try_recv() {
            run.log(Bytes::from(line)).await;
        }
        for line in &report.log {
            run.log(Bytes::from(format!("{line}\n"))).await;
        }
        if report.success { 0 } else { 1 }
    }
}

/// The `{secure: …}` ciphertexts anywhere in a deploy option (per-branch maps and lists included).
fn secure_values<'v>(value: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (1, Some(serde_json::Value::String(c))) = (map.len(), map.get("secure")) {
                out.push(c);
                return;
            }
            for v in map.values() {
                secure_values(v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                secure_values(v, out);
            }
        }
        _ => {}
    }
}

/// Sends deploy log lines to the job loop, which writes them while the deploy runs.
struct ChannelLog(mpsc::UnboundedSender<String>);

impl DeployLog for ChannelLog {
    fn line(&self, line: &str) {
        let _ = self.0.send(format!("{line}\n"));
    }
}

/// The variables of an `env -0` dump, read from the tar the engine returns.
fn parse_env_dump(tar: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(tar);
    let mut data = Vec::new();
    if let Ok(mut entries) = archive.entries()
        && let Some(Ok(mut entry)) = entries.next()
    {
        let _ = std::io::Read::read_to_end(&mut entry, &mut data);
    }
    data.split(|b| *b == 0)
        .filter_map(|item| {
            let item = String::from_utf8_lossy(item);
            let (k, v) = item.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

struct ExecutorFiles<'a> {
    executor: &'a dyn Executor,
    job_id: &'a str,
    build_dir: &'a str,
}

#[async_trait]
impl JobFiles for ExecutorFiles<'_> {
    async fn tar(&self, path: &str) -> Result<Vec<u8>, ExecError> {
        let full = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.build_dir, path)
        };
        self.executor.download(self.job_id, &full).await
    }
}

/// Per-job state while it runs: the log path and the records built from markers.
struct JobRun<'a> {
    job: &'a Job,
    events: mpsc::Sender<BuildEvent>,
    filter: Option<Box<dyn LogFilter>>,
    cap: LogCap,
    buf: Vec<u8>,
    phases: Vec<PhaseOutcome>,
    phase_started: Option<(PhaseName, Instant)>,
    command_started: Option<(PhaseName, usize, Instant)>,
    deploys: Vec<DeployOutcome>,
    deploy_started: Option<(usize, Instant)>,
    reported: Option<JobResult>,
    in_script: bool,
    errored_phase: Option<PhaseName>,
    script_error: Option<String>,
}

impl<'a> JobRun<'a> {
    fn new(job: &'a Job, events: mpsc::Sender<BuildEvent>, options: &RunnerOptions) -> Self {
        JobRun {
            job,
            events,
            filter: None,
            cap: LogCap::new(options.log_cap),
            buf: Vec::new(),
            phases: Vec::new(),
            phase_started: None,
            command_started: None,
            deploys: Vec::new(),
            deploy_started: None,
            reported: None,
            in_script: false,
            errored_phase: None,
            script_error: None,
        }
    }

    fn set_filter(&mut self, filter: Box<dyn LogFilter>) {
        self.filter = Some(filter);
    }

    async fn send(&self, event: JobEvent) {
        let _ = self
            .events
            .send(BuildEvent {
                job: self.job.number,
                event,
            })
            .await;
    }

    async fn log(&mut self, bytes: Bytes) {
        let out = match self.filter.as_mut() {
            Some(f) => {
                self.buf.clear();
                f.push(&bytes, &mut self.buf);
                if self.buf.is_empty() {
                    return;
                }
                Bytes::copy_from_slice(&self.buf)
            }
            None => bytes,
        };
        if let Some(b) = self.cap.admit(out) {
            self.send(JobEvent::Log(b)).await;
        }
    }

    async fn notice(&mut self, text: &str) {
        self.log(Bytes::from(format!("{NOTICE}{text}{RESET}\n")))
            .await;
    }

    async fn error(&mut self, text: &str) {
        self.log(Bytes::from(format!("\n{ERROR}{text}{RESET}\n")))
            .await;
    }

    fn error_reason(&self) -> String {
        match (&self.script_error, self.errored_phase) {
            (Some(e), _) => e.clone(),
            (None, Some(p)) => format!("{} failed", p.as_str()),
            (None, None) => "a deploy step failed".into(),
        }
    }

    fn phase_mut(&mut self, phase: PhaseName) -> &mut PhaseOutcome {
        if let Some(i) = self.phases.iter().position(|p| p.phase == phase) {
            return &mut self.phases[i];
        }
        self.phases.push(PhaseOutcome {
            phase,
            commands: Vec::new(),
            duration: Duration::ZERO,
        });
        self.phases.last_mut().expect("just pushed")
    }

    /// Records a command that was running when the job stopped.
    fn close_open_command(&mut self) {
        if let Some((phase, _, at)) = self.command_started.take() {
            let d = at.elapsed();
            if let Some(c) = self.phase_mut(phase).commands.last_mut() {
                c.duration = d;
            }
        }
        if let Some((phase, at)) = self.phase_started.take() {
            self.phase_mut(phase).duration += at.elapsed();
        }
    }

    async fn marker(&mut self, marker: &str, script: &CompiledScript) {
        let mut words = marker.split(' ');
        let kind = words.next().unwrap_or_default();
        let arg = |i: usize| marker.split(' ').nth(i).unwrap_or_default().to_string();
        let phase_of = |s: &str| PhaseName::ALL.into_iter().find(|p| p.as_str() == s);
        match kind {
            "shell" => {
                let text = if arg(1) == "bash" {
                    format!("Running commands in bash {}", arg(2))
                } else {
                    "Running commands in POSIX sh (the image has no bash)".to_string()
                };
                self.notice(&text).await;
            }
            "phase-start" => {
                if let Some(p) = phase_of(&arg(1)) {
                    self.phase_started = Some((p, Instant::now()));
                    self.in_script = p == PhaseName::Script;
                    self.phase_mut(p);
                    self.send(JobEvent::PhaseStarted(p)).await;
                }
            }
            "phase-end" => {
                if let Some(p) = phase_of(&arg(1)) {
                    let d = self
                        .phase_started
                        .take()
                        .map(|(_, t)| t.elapsed())
                        .unwrap_or_default();
                    // `before_deploy` and `after_deploy` run once per deploy: their times add up.
                    self.phase_mut(p).duration += d;
                    self.send(JobEvent::PhaseFinished {
                        phase: p,
                        duration: d,
                    })
                    .await;
                }
            }
            "cmd-start" => {
                if let (Some(p), Ok(i)) = (phase_of(&arg(1)), arg(2).parse::<usize>()) {
                    let command = script.commands(p).get(i).cloned().unwrap_or_default();
                    self.command_started = Some((p, i, Instant::now()));
                    self.phase_mut(p).commands.push(CommandOutcome {
                        command: command.clone(),
                        exit_code: None,
                        duration: Duration::ZERO,
                    });
                    self.log(Bytes::from(format!("$ {command}\n"))).await;
                    self.send(JobEvent::CommandStarted {
                        phase: p,
                        index: i,
                        command,
                    })
                    .await;
                }
            }
            "cmd-end" => {
                if let (Some(p), Ok(i), Ok(code)) = (
                    phase_of(&arg(1)),
                    arg(2).parse::<usize>(),
                    arg(3).parse::<i32>(),
                ) {
                    let d = self
                        .command_started
                        .take()
                        .map(|(_, _, t)| t.elapsed())
                        .unwrap_or_default();
                    if let Some(c) = self.phase_mut(p).commands.last_mut() {
                        c.exit_code = Some(code);
                        c.duration = d;
                    }
                    if code != 0 {
                        let command = script.commands(p).get(i).cloned().unwrap_or_default();
                        self.log(Bytes::from(format!(
                            "{ERROR}The command \"{command}\" exited with {code}.{RESET}\n"
                        )))
                        .await;
                        if matches!(
                            p,
                            PhaseName::BeforeInstall
                                | PhaseName::Install
                                | PhaseName::BeforeScript
                                | PhaseName::BeforeDeploy
                        ) {
                            self.errored_phase = Some(p);
                        }
                    }
                    self.send(JobEvent::CommandFinished {
                        phase: p,
                        index: i,
                        exit_code: code,
                        duration: d,
                    })
                    .await;
                }
            }
            "deploy-start" => {
                if let Ok(i) = arg(1).parse::<usize>() {
                    let provider = script
                        .deploys
                        .get(i)
                        .map(|d| d.provider.clone())
                        .unwrap_or_default();
                    self.notice(&format!("Deploying with provider {provider}"))
                        .await;
                    self.deploy_started = Some((i, Instant::now()));
                }
            }
            "deploy-end" => {
                if let (Ok(i), Ok(code)) = (arg(1).parse::<usize>(), arg(2).parse::<i32>()) {
                    let d = self
                        .deploy_started
                        .take()
                        .map(|(_, t)| t.elapsed())
                        .unwrap_or_default();
                    let provider = script
                        .deploys
                        .get(i)
                        .map(|d| d.provider.clone())
                        .unwrap_or_default();
                    if code != 0 {
                        self.log(Bytes::from(format!(
                            "{ERROR}Deploy with provider {provider} failed (exit {code}).{RESET}\n"
                        )))
                        .await;
                    }
                    self.deploys.push(DeployOutcome {
                        provider,
                        exit_code: Some(code),
                        duration: d,
                    });
                }
            }
            "terminate" => {
                let code = arg(1).parse::<i32>().unwrap_or(1);
                self.notice(&format!("travis_terminate {code}: the job stops here"))
                    .await;
                self.reported = Some(if code == 0 {
                    JobResult::Passed
                } else {
                    JobResult::Failed
                });
            }
            "error" => {
                self.script_error = Some(marker["error ".len().min(marker.len())..].to_string());
            }
            "result" => {
                self.reported = match arg(1).as_str() {
                    "passed" => Some(JobResult::Passed),
                    "failed" => Some(JobResult::Failed),
                    _ => Some(JobResult::Errored),
                };
            }
            _ => {}
        }
    }

    async fn finish(
        mut self,
        result: JobResult,
        reason: Option<String>,
        started: Instant,
        exit_code: Option<i64>,
    ) -> JobOutcome {
        let summary = match &reason {
            _ if result == JobResult::NotRun => {
                "Done. The job was not run here; it neither fails nor passes the build.".into()
            }
            Some(r) if result != JobResult::Passed => {
                format!("Done. The job {}: {r}.", result.as_str())
            }
            _ => format!("Done. The job {}.", result.as_str()),
        };
        let colour = if result == JobResult::Passed {
            "\x1b[32;1m"
        } else if result == JobResult::NotRun {
            NOTICE
        } else {
            ERROR
        };
        self.log(Bytes::from(format!(
            "\n{colour}{}{RESET}\n",
            summary.replace(".:", ":").replace("..", ".")
        )))
        .await;
        if let Some(mut f) = self.filter.take() {
            let mut rest = Vec::new();
            f.finish(&mut rest);
            if !rest.is_empty()
                && let Some(b) = self.cap.admit(Bytes::from(rest))
            {
                self.send(JobEvent::Log(b)).await;
            }
        }
        let outcome = JobOutcome {
            number: self.job.number,
            name: self.job.name.clone(),
            stage: self.job.stage.clone(),
            allow_failure: self.job.allow_failure,
            result,
            reason,
            phases: std::mem::take(&mut self.phases),
            deploys: std::mem::take(&mut self.deploys),
            duration: started.elapsed(),
            exit_code,
            log_truncated: self.cap.truncated(),
        };
        self.send(JobEvent::Finished(outcome.clone())).await;
        outcome
    }
}
