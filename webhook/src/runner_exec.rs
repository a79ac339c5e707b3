//! The real [`Executor`]: each job goes to `slipway-runner` (one container, one script) on Docker.

use crate::executor::{Executor, JobEvent, JobOutcome, JobRun};
use async_trait::async_trait;
use slipway_runner::{BuildEvent, BuildInfo, JobResult, Runner, RunnerOptions};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs jobs with [`slipway_runner::Runner`].
pub struct RunnerExecutor {
    runner: Arc<Runner>,
}

impl RunnerExecutor {
    /// Connects to the local Docker engine. Jobs are untrusted (no engine socket, no secrets):
    /// the service builds pull requests from anyone who can open one.
    pub async fn docker() -> Result<RunnerExecutor, String> {
        let docker = slipway_runner::docker::DockerExecutor::connect()
            .await
            .map_err(|e| e.to_string())?;
        let options = RunnerOptions {
            parallel: 1,
            trusted: false,
            secrets: None,
            ..RunnerOptions::default()
        };
        Ok(RunnerExecutor::new(Runner::new(Arc::new(docker), options)))
    }

    /// Wraps a configured runner (tests pass other options).
    pub fn new(runner: Runner) -> RunnerExecutor {
        RunnerExecutor {
            runner: Arc::new(runner),
        }
    }
}

/// Forwards the runner's events as the worker's, folding command exit codes into phase ends.
async fn forward(mut rx: mpsc::Receiver<BuildEvent>, out: mpsc::Sender<JobEvent>) {
    let mut phase_exit = 0;
    while let Some(ev) = rx.recv().await {
        let mapped = match ev.event {
            slipway_runner::JobEvent::Log(bytes) => JobEvent::Output(bytes),
            slipway_runner::JobEvent::PhaseStarted(p) => {
                phase_exit = 0;
                JobEvent::PhaseStart(p.as_str().to_string())
            }
            slipway_runner::JobEvent::CommandFinished { exit_code, .. } => {
                if exit_code != 0 {
                    phase_exit = exit_code;
                }
                continue;
            }
            slipway_runner::JobEvent::PhaseFinished { phase, duration } => JobEvent::PhaseEnd {
                name: phase.as_str().to_string(),
                exit_code: phase_exit,
                ms: duration.as_millis() as u64,
            },
            _ => continue,
        };
        let _ = out.send(mapped).await;
    }
}

#[async_trait]
impl Executor for RunnerExecutor {
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let Some(pjob) = job
            .plan
            .stages
            .first()
            .and_then(|s| s.jobs.first())
            .cloned()
        else {
            return JobOutcome::Errored("the job's plan is empty".into());
        };
        let build_dir = slipway_runner::runner::build_dir(
            &self.runner.options().build_root,
            &job.plan.context.repo,
        );
        let dir = job.workspace.clone();
        let packed =
            tokio::task::spawn_blocking(move || slipway_runner::workspace::pack(&dir, &build_dir))
                .await;
        let workspace = match packed {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => return JobOutcome::Errored(e.to_string()),
            Err(e) => return JobOutcome::Errored(format!("packing the workspace crashed: {e}")),
        };
        let info = BuildInfo {
            id: format!("b{}-j{}", job.build_id, job.job_id),
            number: job.build_id as u64,
        };
        let (tx, rx) = mpsc::channel(256);
        let forwarder = tokio::spawn(forward(rx, events));
        // The runner's job future is not `Send` (its log filter is not `Sync`), so it is driven
        // on a blocking-pool thread of the same runtime instead of being spawned.
        let (runner, handle) = (self.runner.clone(), tokio::runtime::Handle::current());
        let plan = job.plan;
        let driven = tokio::task::spawn_blocking(move || {
            handle.block_on(runner.run_job(&plan, &pjob, &info, Some(&workspace), tx, cancel))
        })
        .await;
        let _ = forwarder.await;
        let outcome = match driven {
            Ok(o) => o,
            Err(e) => return JobOutcome::Errored(format!("the runner crashed: {e}")),
        };
        let reason = outcome.reason.clone();
        match outcome.result {
            JobResult::Passed => JobOutcome::Passed,
            JobResult::Failed => {
                JobOutcome::Failed(reason.unwrap_or_else(|| "a script command failed".into()))
            }
            JobResult::Errored => {
                JobOutcome::Errored(reason.unwrap_or_else(|| "the job errored".into()))
            }
            JobResult::Canceled => JobOutcome::Canceled,
        }
    }

    async fn sweep(&self) -> Result<usize, String> {
        let report = self.runner.sweep().await.map_err(|e| e.to_string())?;
        Ok(report.containers.len() + report.networks.len() + report.volumes.len())
    }
}
