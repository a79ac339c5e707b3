//! The executor seam: how a job's containers are set up, run, watched and torn down.
//!
//! # Lifecycle
//!
//! For each job the runner calls, in order:
//!
//! 1. [`Executor::ensure_image`] for the job image and every service image: use the local image
//!    when present, else pull it (with progress); fail clearly when neither works. An executor
//!    may instead pull when a create finds the image missing (Docker does, saving a request).
//! 2. [`Executor::setup`]: create the job's network namespace holder, start its services and
//!    wait until they are ready, create the job container and copy the workspace, the script and
//!    any extra files into it. Nothing of the job's own code runs yet.
//! 3. [`Executor::start`]: attach to the job container's output (stdout and stderr as one
//!    stream, no TTY) and start it. The runner reads the stream to its end.
//! 4. [`Executor::wait`]: the container's exit code once it stops.
//! 5. [`Executor::teardown`]: remove every container, network and volume of the job except the
//!    kept cache volumes. Teardown is idempotent and safe after a failed or partial setup: it
//!    finds resources by the job's label, not by what setup managed to record.
//!
//! [`Executor::kill`] may be called at any time after `start` (timeouts, cancellation); the
//! output stream then ends and `wait` returns.
//!
//! # Concurrency
//!
//! An executor is shared (`Arc`) by every job of every build; all methods take `&self` and may
//! be called concurrently for different jobs. Calls for one job come from one task, in the
//! order above. Executors keep no per-job state that teardown depends on.
//!
//! # Labels
//!
//! Everything an executor creates carries `dev.slipway.managed=true`, the job and build ids and
//! the owning process ([`owner_label`]), so [`Executor::sweep`] can remove what a killed process
//! left without touching another live runner's jobs or the cache volumes.

use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use slipway_secrets::Secret;
use tokio::io::AsyncWrite;

/// Label on everything Slipway creates.
pub const LABEL_MANAGED: &str = "dev.slipway.managed";
/// Label holding the job id.
pub const LABEL_JOB: &str = "dev.slipway.job";
/// Label holding the build id.
pub const LABEL_BUILD: &str = "dev.slipway.build";
/// Label holding the owning process (`host:pid:starttime`).
pub const LABEL_OWNER: &str = "dev.slipway.owner";
/// Label holding the resource's role (`job`, `service`, `netns`, `network`, `cache`).
pub const LABEL_ROLE: &str = "dev.slipway.role";
/// Label marking a kept cache volume (never swept).
pub const LABEL_CACHE: &str = "dev.slipway.cache";

/// Which executor runs the jobs (`executor = "…"` in the server's configuration, `--executor`
/// for `slipway run`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Containers on the local Docker engine ([`crate::docker`]).
    #[default]
    Docker,
    /// One pod per job in a cluster ([`crate::kubernetes`]).
    Kubernetes,
}

/// Receives human-readable progress lines (image pulls, service readiness).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The job's output stream: chunks of stdout and stderr merged in order.
pub type OutputStream = Pin<Box<dyn Stream<Item = Result<Bytes, ExecError>> + Send>>;

/// Writes to the job's standard input (deploy hook replies).
pub type InputWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// Resource limits applied to the job container (and each service container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Memory limit in bytes (swap included).
    pub memory_bytes: i64,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: i64,
    /// Maximum number of processes.
    pub pids: i64,
    /// Most bytes the job may write into its container's own filesystem and its build directory
    /// (outside the cache volumes):
    /// enforced by the engine where its storage driver can (`StorageOpt size`), else by the
    /// runner's watchdog ([`Executor::disk_usage`]).
    pub disk_bytes: u64,
}

impl Default for ResourceLimits {
    /// 4 GiB of memory, 2 CPUs, 4096 processes and 20 GiB of disk: a Travis VM's size for one job.
    fn default() -> Self {
        ResourceLimits {
            memory_bytes: 4 << 30,
            nano_cpus: 2_000_000_000,
            pids: 4096,
            disk_bytes: 20 << 30,
        }
    }
}

/// A sidecar service container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The name as written in `services:`; it resolves to 127.0.0.1 inside the job.
    pub name: String,
    pub image: String,
    /// Environment (e.g. `POSTGRES_HOST_AUTH_METHOD=trust`).
    pub env: Vec<(String, String)>,
    /// Command override; `None` keeps the image's.
    pub cmd: Option<Vec<String>>,
    /// Command run inside the service (exec) until it exits 0; `None` means ready on start.
    pub ready: Option<Vec<String>>,
    /// Other host names the service answers to (`postgres` for `postgresql`).
    pub aliases: Vec<String>,
}

/// A named volume mounted into the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// Volume name.
    pub volume: String,
    /// Mount point in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Labels set when the volume is created by the mount.
    pub labels: Vec<(String, String)>,
}

/// Everything an executor needs to run one job; pure data, built by the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Unique job id (`BUILDID-N`); names and labels derive from it.
    pub job_id: String,
    pub build_id: String,
    /// The owner label value ([`owner_label`]).
    pub owner: String,
    /// The job image.
    pub image: String,
    /// Environment set on the container, in order.
    pub env: Vec<(String, String)>,
    /// The working directory (the build dir).
    pub working_dir: String,
    /// The container command.
    pub cmd: Vec<String>,
    /// Files copied into the container before start: the script, decrypted files.
    pub files: Vec<FileSpec>,
    /// A tar of the workspace, paths relative to `/`, copied in before start.
    pub workspace_tar: Option<PathBuf>,
    /// Sidecar services.
    pub services: Vec<ServiceSpec>,
    /// Volumes (caches) mounted into the job container.
    pub volumes: Vec<VolumeMount>,
    /// Give the job the engine's socket (`services: docker`, trusted builds only).
    pub docker_socket: bool,
    /// The pipeline file the job was planned from (`.travis.yml`), named by messages that send
    /// the user back to it.
    pub pipeline_file: String,
    /// Run the job on a network of its own even without services (untrusted builds share no
    /// network with other builds).
    pub own_network: bool,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Keep standard input open for deploy hook replies.
    pub open_stdin: bool,
    /// The engine platform of the job container (`linux/arm64`) when not the host's own
    /// (`arch:` run through emulation).
    pub platform: Option<String>,
}

/// One file copied into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path inside the container.
    pub path: String,
    /// Contents: the script holds the job's secret values, and decrypted files are secrets
    /// themselves, so every file is handed over as a secret until it is written into the
    /// container.
    pub contents: Secret<Vec<u8>>,
    /// Unix permission bits.
    pub mode: u32,
    /// Whether the file holds secret values (decrypted files; the script of a job that has
    /// secrets): an executor that hands files over through the cluster keeps these in a Kubernetes
    /// Secret, never beside the rest.
    pub secret: bool,
}

/// The streams of a started job.
pub struct JobStreams {
    /// Output, ending when the container stops.
    pub output: OutputStream,
    /// Standard input, when the spec asked for it.
    pub input: Option<InputWriter>,
}

impl std::fmt::Debug for JobStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStreams")
            .field("input", &self.input.is_some())
            .finish_non_exhaustive()
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Container names removed.
    pub containers: Vec<String>,
    /// Network names removed.
    pub networks: Vec<String>,
    /// Volume names removed.
    pub volumes: Vec<String>,
}

/// Why an executor call failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No container engine answered.
    #[error(
        "no Docker engine is reachable at {endpoint}: {reason}. Start Docker, or point DOCKER_HOST at a running engine."
    )]
    NoEngine {
        /// Where we looked.
        endpoint: String,
        /// The underlying error.
        reason: String,
    },
    /// The image is not local and could not be pulled.
    #[error("image {image} is not present locally and could not be pulled: {reason}")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// The pull error.
        reason: String,
    },
    /// A service did not become ready in time.
    #[error("service {service} did not become ready within {seconds} s{detail}")]
    ServiceNotReady {
        /// The service name.
        service: String,
        /// The wait.
        seconds: u64,
        /// Last output of the readiness check, if any.
        detail: String,
    },
    /// The engine refused a request.
    #[error("{action}: {reason}")]
    Engine {
        /// What we were doing.
        action: String,
        /// The engine's answer.
        reason: String,
    },
    /// A local file could not be read.
    #[error("{action}: {source}")]
    Io {
        /// What we were doing.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs jobs' containers. See the module docs for the lifecycle and concurrency rules.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Makes `image` available locally, pulling it only when it is missing.
    async fn ensure_image(&self, image: &str, progress: Progress<'_>) -> Result<(), ExecError>;

    /// Whether a volume exists (cache lookups).
    async fn volume_exists(&self, name: &str) -> Result<bool, ExecError>;

    /// Creates the job's resources and starts its services; see the lifecycle.
    async fn setup(&self, spec: &JobSpec, progress: Progress<'_>) -> Result<(), ExecError>;

    /// Attaches to the job container and starts it.
    async fn start(&self, spec: &JobSpec) -> Result<JobStreams, ExecError>;

    /// Waits for the job container to stop and returns its exit code.
    async fn wait(&self, job_id: &str) -> Result<i64, ExecError>;

    /// Stops the job container now (timeouts, cancellation).
    async fn kill(&self, job_id: &str) -> Result<(), ExecError>;

    /// A tar of `path` from the job container (deploy providers read the build's files).
    async fn download(&self, job_id: &str, path: &str) -> Result<Vec<u8>, ExecError>;

    /// Removes everything of the job but kept caches; idempotent.
    async fn teardown(&self, job_id: &str) -> Result<(), ExecError>;

    /// How many bytes the running job has written into its containers' writable layers and its
    /// build directory, for the disk limit's watchdog; `None` when the engine enforces the limit itself (or the
    /// executor has no disk to watch), and the runner then stops asking.
    async fn disk_usage(&self, _job_id: &str) -> Result<Option<u64>, ExecError> {
        Ok(None)
    }

    /// Removes what dead runner processes on this host left behind (never cache volumes).
    async fn sweep(&self) -> Result<SweepReport, ExecError>;
}

/// This process's owner label: `host:pid:starttime`, unique even when pids are reused.
pub fn owner_label() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        process_start_time(std::process::id()).unwrap_or_default()
    )
}

/// Whether the process an owner label names is still running on this host. Labels from other
/// hosts count as alive (their runner is not ours to judge).
pub fn owner_alive(label: &str) -> bool {
    let mut parts = label.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match process_start_time(pid) {
        Some(actual) => actual == start,
        None => false,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn process_start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name (which may contain spaces) in parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19).map(str::to_string)
}

/// Names of a job's resources, derived from its id.
pub mod names {
    pub fn job_container(job_id: &str) -> String {
        format!("slipway-{job_id}-job")
    }
    /// The container holding the network namespace shared by the job and its services.
    pub fn netns_container(job_id: &str) -> String {
        format!("slipway-{job_id}-netns")
    }
    pub fn service_container(job_id: &str, service: &str) -> String {
        format!("slipway-{job_id}-svc-{service}")
    }
    /// The job's network.
    pub fn network(job_id: &str) -> String {
        format!("slipway-{job_id}-net")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_not() {
        assert!(owner_alive(&owner_label()));
        assert!(!owner_alive(&format!("{}:4194304:1", hostname())));
        assert!(!owner_alive("garbage"));
        assert!(owner_alive("some-other-host:1:1"));
    }
}
