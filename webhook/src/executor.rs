//! The seam between the queue and whatever runs a job: the worker only needs this trait.
//!
//! The real implementation hands the job's plan to `slipway-runner` (Docker); tests of the queue
//! use a scripted one. Events are the job's output and its phase boundaries, as they happen.

use async_trait::async_trait;
use slipway_pipelines::plan::Plan;
use std::path::PathBuf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One job to run.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The build's id (for labels and `TRAVIS_BUILD_ID`).
    pub build_id: i64,
    /// The job's id (for labels and `TRAVIS_JOB_ID`).
    pub job_id: i64,
    /// A plan holding exactly this job, in its stage.
    pub plan: Plan,
    /// The checked-out merge commit.
    pub workspace: PathBuf,
}

/// Something that happened while a job ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// Bytes of output, already masked.
    Output(bytes::Bytes),
    /// A lifecycle phase began.
    PhaseStart(String),
    /// A phase ended with its exit code after `ms` milliseconds.
    PhaseEnd {
        /// The phase name.
        name: String,
        /// Its exit code.
        exit_code: i32,
        /// How long it took.
        ms: u64,
    },
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Its script passed.
    Passed,
    /// Its script failed.
    Failed(String),
    /// It could not run as asked.
    Errored(String),
    /// It was cancelled.
    Canceled,
    /// It was not run on this machine, for this reason.
    NotRun(String),
}

/// Runs jobs.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs one job to its end, sending events as they happen; stops promptly when `cancel` fires.
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome;
    /// Removes whatever a killed process left behind (containers, networks); returns how many.
    async fn sweep(&self) -> Result<usize, String>;
}

/// A scripted executor for tests of the queue: each command is interpreted, not run.
///
/// `sleep MS` waits (and honours cancellation), `fail` fails the job, `error` errors it, and any
/// other command is echoed as output. A job for an OS other than Linux is not run here, as the
/// runner does without an `[os_images]` entry for it.
#[derive(Debug, Default, Clone)]
pub struct ScriptedExecutor;

#[async_trait]
impl Executor for ScriptedExecutor {
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let hosting = slipway_pipelines::placement::Hosting {
            host_arch: "amd64".into(),
            ..Default::default()
        };
        for stage in &job.plan.stages {
            for j in &stage.jobs {
                if let slipway_pipelines::placement::Placement::NotHere(why) =
                    slipway_pipelines::placement::place(j, &hosting)
                {
                    return JobOutcome::NotRun(format!("not run here: {why}"));
                }
                for phase in &j.phases {
                    let started = std::time::Instant::now();
                    let _ = events
                        .send(JobEvent::PhaseStart(phase.name.as_str().into()))
                        .await;
                    for cmd in &phase.commands {
                        let _ = events
                            .send(JobEvent::Output(format!("$ {cmd}\n").into()))
                            .await;
                        if let Some(ms) = cmd
                            .strip_prefix("sleep ")
                            .and_then(|m| m.trim().parse().ok())
                        {
                            tokio::select! {
                                _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
                                _ = cancel.cancelled() => return JobOutcome::Canceled,
                            }
                        } else if cmd == "fail" {
                            return JobOutcome::Failed(format!("{} failed", phase.name.as_str()));
                        } else if cmd == "error" {
                            return JobOutcome::Errored(format!("{} errored", phase.name.as_str()));
                        } else {
                            let _ = events
                                .send(JobEvent::Output(format!("{cmd}\n").into()))
                                .await;
                        }
                    }
                    let _ = events
                        .send(JobEvent::PhaseEnd {
                            name: phase.name.as_str().into(),
                            exit_code: 0,
                            ms: started.elapsed().as_millis() as u64,
                        })
                        .await;
                }
            }
        }
        JobOutcome::Passed
    }

    async fn sweep(&self) -> Result<usize, String> {
        Ok(0)
    }
}
