//! What a run reports: the results of jobs and builds, and the events a running job sends.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use slipway_pipelines::plan::{Job, PhaseName};

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
    /// The outcome of `job` ended with `result` and nothing run or recorded: a job canceled
    /// before it started, or one whose runner could not start it.
    pub fn ended(job: &Job, result: JobResult, reason: Option<String>) -> Self {
        JobOutcome {
            number: job.number,
            name: job.name.clone(),
            stage: job.stage.clone(),
            allow_failure: job.allow_failure,
            result,
            reason,
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
        phase: PhaseName,
        /// Index within the phase.
        index: usize,
        command: String,
    },
    /// A command ended.
    CommandFinished {
        phase: PhaseName,
        /// Index within the phase.
        index: usize,
        exit_code: i32,
        /// Run time.
        duration: Duration,
    },
    /// A deploy began (its provider's request or its `script` is about to run): a queue that
    /// may run the job again records it, so that a deploy whose outcome is unknown is never
    /// repeated silently.
    DeployStarted {
        /// The deploy's index in the job's deploys.
        index: usize,
        /// Its provider.
        provider: String,
    },
    /// A deploy ended.
    DeployFinished {
        /// The deploy's index.
        index: usize,
        /// 0 when it succeeded.
        exit_code: i32,
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
