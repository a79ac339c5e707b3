//! The notification rows a build's new state queues, shared by every store: which
//! notifications fire, split one target a row, with the build's facts. The stores only read the
//! build's row and its jobs and insert what this returns, in the transaction of the change.

use super::{BuildState, Job, Millis, StoreError};
use crate::notify::NotifySetup;
use slipway_notifications::JobFacts;
use slipway_pipelines::plan::{Channel, Notification, Outcome};

/// The outcome notifications report for a build state; `None` for states that notify nothing.
pub(crate) fn outcome_of(state: BuildState, reason: &str) -> Option<Outcome> {
    Some(match state {
        BuildState::Running => Outcome::Started,
        BuildState::Passed => Outcome::Passed,
        BuildState::Failed => Outcome::Failed,
        BuildState::Errored => Outcome::Errored,
        BuildState::Canceled if reason.starts_with("superseded") => Outcome::Superseded,
        BuildState::Canceled => Outcome::Canceled,
        BuildState::Queued | BuildState::Preparing | BuildState::Skipped => return None,
    })
}

/// The rows to insert into the notification outbox.
pub(crate) struct Rows {
    /// False for a fork's pull request.
    pub trusted: bool,
    /// The build's facts (JSON), the same for every row.
    pub facts: String,
    /// One notification (JSON) per row.
    pub notifications: Vec<String>,
}

impl Rows {
    /// The rows a build with the stored `setup` (JSON) queues for `outcome`, given the outcome
    /// of the build before it, its (started, finished) times and its jobs.
    pub(crate) fn compose(
        setup: &str,
        outcome: Outcome,
        previous: Option<Outcome>,
        (started, finished): (Option<Millis>, Option<Millis>),
        jobs: Vec<Job>,
    ) -> Result<Rows, StoreError> {
        let invalid = |e: serde_json::Error| StoreError::Invalid(e.to_string());
        let setup: NotifySetup = serde_json::from_str(setup).map_err(invalid)?;
        let mut facts = setup.facts;
        facts.state = Some(outcome);
        facts.previous = previous;
        facts.started_at = stamp(started);
        facts.finished_at = stamp(finished.filter(|_| outcome != Outcome::Started));
        facts.duration = match (started, finished) {
            (Some(s), Some(f)) if f >= s && outcome != Outcome::Started => {
                Some(((f - s) / 1000) as u64)
            }
            _ => None,
        };
        facts.jobs = jobs
            .into_iter()
            .map(|j| JobFacts {
                id: j.id.to_string(),
                number: format!("{}.{}", facts.number, j.number),
                state: j.state.as_str().to_owned(),
                allow_failure: j.allow_failure,
                config: j.matrix,
                started_at: stamp(j.started_at),
                finished_at: stamp(j.finished_at),
            })
            .collect();
        let mut notifications = Vec::new();
        for n in setup
            .notifications
            .iter()
            .filter(|n| n.fires(outcome, previous))
        {
            for one in per_target(n) {
                notifications.push(serde_json::to_string(&one).map_err(invalid)?);
            }
        }
        Ok(Rows {
            trusted: setup.trusted,
            facts: serde_json::to_string(&facts).map_err(invalid)?,
            notifications,
        })
    }
}

fn stamp(ms: Option<Millis>) -> Option<String> {
    ms.and_then(|m| u64::try_from(m / 1000).ok())
        .map(crate::auth::format_timestamp)
}

/// A notification split so each row is one target (a failed URL is retried alone); an email
/// goes to all its recipients at once.
fn per_target(n: &Notification) -> Vec<Notification> {
    if matches!(n.channel, Channel::Email { .. }) || n.channel.targets().len() < 2 {
        return vec![n.clone()];
    }
    n.channel
        .targets()
        .iter()
        .map(|t| {
            let mut one = n.clone();
            *one.channel.targets_mut() = vec![t.clone()];
            one
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_pipelines::plan::{Decision, Text, Triggers};

    #[test]
    fn targets_are_split_except_email() {
        let n = Notification {
            channel: Channel::Webhooks {
                urls: vec![
                    Text::Plain("https://a.test".into()),
                    Text::Secure("x".into()),
                ],
            },
            on: Triggers::defaults("webhooks"),
            template: vec![],
            decision: Decision {
                included: true,
                reason: String::new(),
            },
        };
        let split = per_target(&n);
        assert_eq!(split.len(), 2);
        assert_eq!(split[1].channel.targets(), [Text::Secure("x".into())]);
        let email = Notification {
            channel: Channel::Email {
                recipients: vec![Text::Plain("a@x.org".into()), Text::Plain("b@x.org".into())],
            },
            ..n
        };
        assert_eq!(per_target(&email).len(), 1);
    }

    #[test]
    fn canceled_by_a_newer_push_is_superseded() {
        assert_eq!(
            outcome_of(BuildState::Canceled, "superseded by build #4"),
            Some(Outcome::Superseded)
        );
        assert_eq!(
            outcome_of(BuildState::Canceled, "canceled by a user"),
            Some(Outcome::Canceled)
        );
        assert_eq!(outcome_of(BuildState::Skipped, ""), None);
    }
}
