//! The build state machine's rule, shared by every store: given a running build's jobs, what
//! happens next once one of them ended. The stores apply the step in the transaction of the
//! change, so the rule is written once and each store only writes rows.

use super::{BuildState, Job, JobState};

/// What a running build does after a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A job of the earliest unfinished stage is still queued or running.
    Wait,
    /// The stage at this index may start: its waiting jobs become queued.
    Open(i64),
    /// The build ends with this state and reason; when `cancel_after` is set, the waiting jobs
    /// of the stages after it are cancelled first (an earlier stage failed).
    End {
        /// Cancel waiting jobs of stages after this one.
        cancel_after: Option<i64>,
        /// The build's final state.
        state: BuildState,
        /// Why, in words.
        reason: &'static str,
    },
}

/// The reason given to jobs cancelled because an earlier stage failed.
pub(crate) const EARLIER_STAGE_FAILED: &str = "an earlier stage failed";

/// The next step of a running build whose jobs are `jobs` (ordered by stage).
pub(crate) fn next_step(jobs: &[Job]) -> Step {
    let blocking = |j: &Job| {
        !j.allow_failure
            && matches!(
                j.state,
                JobState::Failed | JobState::Errored | JobState::Canceled
            )
    };
    let mut stages: Vec<i64> = jobs.iter().map(|j| j.stage_index).collect();
    stages.dedup();
    let mut cancel_after = None;
    for stage in stages {
        let in_stage: Vec<&Job> = jobs.iter().filter(|j| j.stage_index == stage).collect();
        if in_stage
            .iter()
            .any(|j| matches!(j.state, JobState::Queued | JobState::Running))
        {
            return Step::Wait;
        }
        if in_stage.iter().any(|j| j.state == JobState::Waiting) {
            return Step::Open(stage);
        }
        if in_stage.iter().any(|j| blocking(j)) {
            cancel_after = Some(stage);
            break;
        }
    }
    let state_of = |j: &Job| match cancel_after {
        Some(stage) if j.stage_index > stage && j.state == JobState::Waiting => JobState::Canceled,
        _ => j.state,
    };
    let required = || jobs.iter().filter(|j| !j.allow_failure).map(state_of);
    let (state, reason) = if required().any(|s| s == JobState::Errored) {
        (BuildState::Errored, "a job errored")
    } else if required().any(|s| s == JobState::Failed) {
        (BuildState::Failed, "a job failed")
    } else if required().any(|s| s == JobState::Canceled) {
        (BuildState::Canceled, "a job was canceled")
    } else if jobs.iter().any(|j| j.state == JobState::NotRun) {
        (
            BuildState::Passed,
            "every job run here passed; jobs for an OS or arch this server lacks were not run",
        )
    } else {
        (BuildState::Passed, "all jobs passed")
    };
    Step::End {
        cancel_after,
        state,
        reason,
    }
}

/// The word a build's status report starts with.
pub(crate) fn describe(state: BuildState) -> &'static str {
    match state {
        BuildState::Queued | BuildState::Preparing => "Queued",
        BuildState::Running => "Running",
        BuildState::Passed => "Passed",
        BuildState::Failed => "Failed",
        BuildState::Errored => "Errored",
        BuildState::Canceled => "Canceled",
        BuildState::Skipped => "Skipped",
    }
}
