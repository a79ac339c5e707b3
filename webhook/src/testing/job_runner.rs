//! A job runner for tests of the queue that interprets a job's commands instead of running them.

use crate::job_runner::{JobRun, JobRunner};
use async_trait::async_trait;
use slipway_runner::{JobEvent, JobOutcome, JobResult};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A job runner for tests that only look at the jobs the server hands out: each job is shown to
/// the closure, then passes.
pub struct PassingJobRunner<F>(pub F);

#[async_trait]
impl<F: Fn(&JobRun) + Send + Sync + 'static> JobRunner for PassingJobRunner<F> {
    async fn run(
        &self,
        job: JobRun,
        _events: mpsc::Sender<JobEvent>,
        _cancel: CancellationToken,
    ) -> JobOutcome {
        (self.0)(&job);
        JobOutcome::ended(&job.job, JobResult::Passed, None)
    }
}

/// A scripted job runner for tests of the queue: each command is interpreted, not run.
///
/// `sleep MS` waits (and honours cancellation), `fail` fails the job, `error` errors it, and any
/// other command is echoed as output. A job for an OS other than Linux is not run here, as the
/// runner does without an `[os_images]` entry for it.
#[derive(Debug, Default, Clone)]
pub struct ScriptedJobRunner;

#[async_trait]
impl JobRunner for ScriptedJobRunner {
    async fn run(
        &self,
        run: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let job = &run.job;
        let ended = |result, reason: Option<String>| JobOutcome::ended(job, result, reason);
        let hosting = slipway_pipelines::placement::Hosting {
            host_arch: "amd64".into(),
            ..Default::default()
        };
        if let slipway_pipelines::placement::Placement::NotHere(why) =
            slipway_pipelines::placement::place(job, &hosting)
        {
            return ended(JobResult::NotRun, Some(format!("not run here: {why}")));
        }
        let log = |text: String| JobEvent::Log(text.into());
        for phase in &job.phases {
            let started = Instant::now();
            let _ = events.send(JobEvent::PhaseStarted(phase.name)).await;
            for cmd in &phase.commands {
                let _ = events.send(log(format!("$ {cmd}\n"))).await;
                if let Some(ms) = cmd
                    .strip_prefix("sleep ")
                    .and_then(|m| m.trim().parse().ok())
                {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                        _ = cancel.cancelled() => return ended(JobResult::Canceled, None),
                    }
                } else if cmd == "fail" {
                    let why = format!("{} failed", phase.name.as_str());
                    return ended(JobResult::Failed, Some(why));
                } else if cmd == "error" {
                    let why = format!("{} errored", phase.name.as_str());
                    return ended(JobResult::Errored, Some(why));
                } else {
                    let _ = events.send(log(format!("{cmd}\n"))).await;
                }
            }
            let _ = events
                .send(JobEvent::PhaseFinished {
                    phase: phase.name,
                    duration: started.elapsed(),
                })
                .await;
        }
        ended(JobResult::Passed, None)
    }
}
