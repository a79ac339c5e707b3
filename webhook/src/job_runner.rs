//! The seam between the queue and whatever runs a job: the worker only needs [`JobRunner`].
//!
//! The real implementation ([`crate::runner_exec::ServeRunner`]) hands the job's plan to
//! `slipway-runner`, whose [`slipway_runner::Executor`] runs its containers; tests of the queue
//! use a scripted one (`testing::ScriptedJobRunner`, behind the `testing` feature). Both speak the runner's own types: the job's [`JobEvent`]s as they happen
//! (log bytes, phase and command boundaries) and its [`JobOutcome`] at the end.

use async_trait::async_trait;
use slipway_pipelines::plan::{Job, Plan};
use slipway_runner::{ExecError, JobEvent, JobOutcome};
use std::path::PathBuf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One job the queue hands over, with the ids the store knows it by.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The build's id (for labels and `TRAVIS_BUILD_ID`).
    pub build_id: i64,
    /// The job's id (for labels and `TRAVIS_JOB_ID`).
    pub job_id: i64,
    /// A plan holding exactly this job, in its stage.
    pub plan: Plan,
    /// The plan's one job.
    pub job: Job,
    /// The checked-out merge commit.
    pub workspace: PathBuf,
}

/// Runs the queue's jobs.
#[async_trait]
pub trait JobRunner: Send + Sync + 'static {
    /// Runs one job to its end, sending events as they happen; stops promptly when `cancel`
    /// fires.
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome;

    /// Removes whatever a killed process left behind (containers, networks); returns how many.
    /// A runner that creates nothing outside the process has nothing to sweep.
    async fn sweep(&self) -> Result<usize, ExecError> {
        Ok(0)
    }
}
