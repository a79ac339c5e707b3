//! Runs a Slipway plan's jobs in containers with Travis's semantics.
//!
//! Each job is compiled into one shell script ([`script`]) run in one container through the
//! [`Executor`] seam ([`executor`]; Docker in [`docker`], and a scriptable fake in `fake` with
//! the `testing` feature, which only tests enable). The script writes phase and command markers
//! into its output, which [`markers`] parses back out, so the runner reports per-command exit
//! codes and durations without one exec per command.
//! Every log byte passes one filter stage ([`log`]) where secrets are masked.
//!
//! The entry point is [`Runner`]: `Runner::new(executor, options)`, then
//! [`Runner::run_build`] (stages, parallel jobs, `allow_failures`, `fast_finish`) or
//! [`Runner::run_job`], each with a `CancellationToken` and a channel of [`BuildEvent`]s.

pub mod addons;
pub mod artifacts;
pub mod build_workspaces;
pub mod cache;
pub mod deploy;
pub mod disk;
pub mod docker;
mod drive;
pub mod env;
pub mod executor;
#[cfg(feature = "testing")]
pub mod fake;
pub mod hosting;
pub mod image_map;
pub mod images;
mod job;
pub mod kubernetes;
pub mod log;
pub mod markers;
pub mod netguard;
pub mod outcome;
pub mod prepare;
pub mod runner;
pub mod scope;
pub mod script;
pub mod secret_source;
pub mod services;
mod stages;
pub mod sudo;
pub mod workspace;

pub use env::BuildInfo;
pub use executor::{ExecError, Executor, JobSpec, ResourceLimits, ServiceSpec};
pub use runner::{
    BuildEvent, BuildOutcome, BuildResult, CommandOutcome, DeployHook, DeployLog, DeployReport,
    DeployRequest, JobEvent, JobFiles, JobOutcome, JobResult, PhaseOutcome, PreparedJob, Runner,
    RunnerOptions, SecretSource,
};
pub use scope::{CacheScope, Owner, Trust};
pub use tokio_util::sync::CancellationToken;
