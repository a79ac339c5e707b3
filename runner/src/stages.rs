//! The stage scheduler: stages in order, the jobs of a stage in parallel (bounded), a failed
//! stage cancelling the later ones, `allow_failures` and `fast_finish`.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use slipway_pipelines::plan::Plan;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::env::BuildInfo;
use crate::outcome::{BuildEvent, BuildOutcome, BuildResult, JobEvent, JobOutcome, JobResult};
use crate::runner::Runner;
use crate::workspace::Workspace;

impl Runner {
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
                    let o = JobOutcome::ended(job, JobResult::Canceled, Some(reason.clone()));
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
                        let o = JobOutcome::ended(
                            job,
                            JobResult::Canceled,
                            Some("canceled before it started".into()),
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
}
