//! The job state machine: a running job's log path and the records its markers build.

use std::time::{Duration, Instant};

use bytes::Bytes;
use slipway_pipelines::plan::{Job, PhaseName};
use tokio::sync::mpsc;

use crate::log::{LogCap, LogFilter};
use crate::markers::{Marker, ScriptResult};
use crate::outcome::{
    BuildEvent, CommandOutcome, DeployOutcome, JobEvent, JobOutcome, JobResult, PhaseOutcome,
};
use crate::runner::{ERROR, NOTICE, RESET, RunnerOptions};
use crate::script::CompiledScript;

/// Per-job state while it runs: the log path and the records built from markers.
pub(crate) struct JobRun<'a> {
    job: &'a Job,
    events: mpsc::Sender<BuildEvent>,
    filter: Option<Box<dyn LogFilter>>,
    cap: LogCap,
    buf: Vec<u8>,
    phases: Vec<PhaseOutcome>,
    phase_started: Option<(PhaseName, Instant)>,
    pub(crate) command_started: Option<(PhaseName, usize, Instant)>,
    deploys: Vec<DeployOutcome>,
    deploy_started: Option<(usize, Instant)>,
    pub(crate) reported: Option<JobResult>,
    in_script: bool,
    errored_phase: Option<PhaseName>,
    script_error: Option<String>,
}

impl<'a> JobRun<'a> {
    pub(crate) fn new(
        job: &'a Job,
        events: mpsc::Sender<BuildEvent>,
        options: &RunnerOptions,
    ) -> Self {
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

    pub(crate) fn set_filter(&mut self, filter: Box<dyn LogFilter>) {
        self.filter = Some(filter);
    }

    pub(crate) async fn send(&self, event: JobEvent) {
        let _ = self
            .events
            .send(BuildEvent {
                job: self.job.number,
                event,
            })
            .await;
    }

    pub(crate) async fn log(&mut self, bytes: Bytes) {
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

    pub(crate) async fn notice(&mut self, text: &str) {
        self.log(Bytes::from(format!("{NOTICE}{text}{RESET}\n")))
            .await;
    }

    pub(crate) async fn error(&mut self, text: &str) {
        self.log(Bytes::from(format!("\n{ERROR}{text}{RESET}\n")))
            .await;
    }

    pub(crate) fn error_reason(&self) -> String {
        match (&self.script_error, self.errored_phase) {
            (Some(e), _) => e.clone(),
            (None, Some(p)) => format!("{} failed", p.as_str()),
            (None, None) => "a deploy step failed".into(),
        }
    }

    pub(crate) fn phase_mut(&mut self, phase: PhaseName) -> &mut PhaseOutcome {
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
    pub(crate) fn close_open_command(&mut self) {
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

    /// Takes in one marker of the job's script: progress, a command's or a deploy's end, or the
    /// result the script reports.
    pub(crate) async fn marker(&mut self, marker: Marker, script: &CompiledScript) {
        match marker {
            Marker::Shell(bash) => {
                let text = match bash {
                    Some(version) => format!("Running commands in bash {version}"),
                    None => "Running commands in POSIX sh (the image has no bash)".to_string(),
                };
                self.notice(&text).await;
            }
            Marker::PhaseStart(p) => {
                self.phase_started = Some((p, Instant::now()));
                self.in_script = p == PhaseName::Script;
                self.phase_mut(p);
                self.send(JobEvent::PhaseStarted(p)).await;
            }
            Marker::PhaseEnd(p) => {
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
            Marker::CommandStart { phase, index } => {
                self.command_began(phase, index, script).await;
            }
            Marker::CommandEnd {
                phase,
                index,
                exit_code,
            } => self.command_ended(phase, index, exit_code, script).await,
            Marker::DeployStart(i) => {
                let provider = script
                    .deploys
                    .get(i)
                    .map(|d| d.provider.clone())
                    .unwrap_or_default();
                self.send(JobEvent::DeployStarted {
                    index: i,
                    provider: provider.clone(),
                })
                .await;
                self.notice(&format!("Deploying with provider {provider}"))
                    .await;
                self.deploy_started = Some((i, Instant::now()));
            }
            Marker::DeployEnd { index, exit_code } => {
                self.deploy_ended(index, exit_code, script).await;
            }
            Marker::Terminate(code) => {
                self.notice(&format!("travis_terminate {code}: the job stops here"))
                    .await;
                self.reported = Some(if code == 0 {
                    JobResult::Passed
                } else {
                    JobResult::Failed
                });
            }
            Marker::Error(why) => self.script_error = Some(why),
            Marker::Result(result) => {
                self.reported = Some(match result {
                    ScriptResult::Passed => JobResult::Passed,
                    ScriptResult::Failed => JobResult::Failed,
                    ScriptResult::Errored => JobResult::Errored,
                });
            }
            // The runner answers requests before they reach the job's records.
            Marker::DeployRequest(_)
            | Marker::ArtifactsRequest
            | Marker::CacheRestoreRequest
            | Marker::CacheSaveRequest => {}
        }
    }

    /// Command `i` of phase `p` began: its record opens and its text goes to the log.
    async fn command_began(&mut self, p: PhaseName, i: usize, script: &CompiledScript) {
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

    /// Command `i` of phase `p` exited with `code`; a failure in a phase before `script`
    /// errors the job.
    async fn command_ended(&mut self, p: PhaseName, i: usize, code: i32, script: &CompiledScript) {
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

    /// Deploy step `i` exited with `code`.
    async fn deploy_ended(&mut self, i: usize, code: i32, script: &CompiledScript) {
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
        self.send(JobEvent::DeployFinished {
            index: i,
            exit_code: code,
        })
        .await;
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

    pub(crate) async fn finish(
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
