//! Fencing: a job's claim is named by (job id, attempt), and every write the claim's worker
//! makes for the job carries it. Once the lease moved on — the job was re-queued, claimed again,
//! or errored after its worker was lost — the old worker's writes are refused, so a worker that
//! was only slow (paused, cut off) cannot overwrite what a newer attempt did.

use super::{JobState, StoreError};

/// The fencing token of a job's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLease {
    /// The job.
    pub job_id: i64,
    /// Which claim of it (1 for the first), as [`super::Job::attempts`] says after the claim.
    pub attempt: i64,
}

/// Where a claim stands when its worker writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The claim holds the running job.
    Running,
    /// The job ended while this claim held it (cancelled, or finished already): its log may
    /// still be completed, its state is no longer changed.
    Ended,
}

/// Whether `lease` may write for a job now in `state` after `attempts` claims.
pub(crate) fn hold(lease: JobLease, row: Option<(JobState, i64)>) -> Result<Hold, StoreError> {
    let fenced = StoreError::Fenced {
        job_id: lease.job_id,
        attempt: lease.attempt,
    };
    let Some((state, attempts)) = row else {
        return Err(fenced);
    };
    if attempts != lease.attempt {
        return Err(fenced);
    }
    match state {
        JobState::Running => Ok(Hold::Running),
        // Re-queued, or ended as errored by recovery: the lease moved on.
        JobState::Queued | JobState::Waiting | JobState::Errored => Err(fenced),
        JobState::Passed | JobState::Failed | JobState::Canceled | JobState::NotRun => {
            Ok(Hold::Ended)
        }
    }
}

/// Why a job whose deploy began in an earlier attempt is errored instead of re-queued: running it
/// again would deploy again. `outcome` is the deploy's, `None` when its worker was lost before
/// it was known.
pub(crate) fn deploy_began(attempt: i64, outcome: Option<bool>) -> String {
    let what = match outcome {
        None => "its worker was lost before the deploy's outcome was known",
        Some(true) => "the deploy succeeded, then its worker was lost",
        Some(false) => "the deploy failed, then its worker was lost",
    };
    format!(
        "a deploy began during attempt {attempt} and {what}; the job is not run again, so as not \
         to deploy twice. Restarting the build deploys again (on purpose)"
    )
}
