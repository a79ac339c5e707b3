//! Decides, per `notifications:` entry, whether it is sent for this event: `enabled:`, `if:`,
//! Travis's pull request rules (no email or IRC for pull requests; Slack unless
//! `on_pull_requests: false`), and the fork rule: a pull request from a fork gets no secrets, so
//! every target that needs one is left out, and an entry left with none is not sent at all.

use crate::config::{Attrs, NotifySpec, notify_specs};
use crate::expand::{self, CondOutcome};
use crate::notify::{Channel, Notification};
use crate::plan::{Context, Decision, EventType};

/// The build's notifications for `ctx`, each with its decision.
pub(super) fn plan_notifications(root: &Attrs, ctx: &Context) -> Vec<Notification> {
    notify_specs(root.get("notifications"))
        .into_iter()
        .map(|spec| decide(spec, root, ctx))
        .collect()
}

fn decide(spec: NotifySpec, root: &Attrs, ctx: &Context) -> Notification {
    let mut n = spec.notification;
    let name = n.channel.name();
    let mut reasons = Vec::new();
    let out = |reason: String| Decision {
        included: false,
        reason,
    };
    let decision = 'decide: {
        if !spec.enabled {
            break 'decide out(format!("{name} is switched off (enabled: false)"));
        }
        let cond = spec.condition.as_deref();
        match expand::evaluate(cond, root, ctx) {
            CondOutcome::Accepted => {
                if let Some(c) = cond {
                    reasons.push(format!("if: {} is true", squash(c)));
                }
            }
            CondOutcome::Rejected => {
                break 'decide out(format!("if: {} is false", squash(cond.unwrap_or(""))));
            }
            CondOutcome::Invalid(e) => {
                break 'decide out(format!(
                    "if: {} is invalid ({e})",
                    squash(cond.unwrap_or(""))
                ));
            }
        }
        if ctx.event == EventType::PullRequest {
            match &n.channel {
                Channel::Email { .. } | Channel::Irc { .. } => {
                    break 'decide out(format!("{name} is not sent for pull request builds"));
                }
                Channel::Slack {
                    on_pull_requests: false,
                    ..
                } => break 'decide out("slack on_pull_requests: false".to_owned()),
                _ => {}
            }
        }
        if ctx.fork {
            let settings = n.channel.secure_settings();
            if !settings.is_empty() {
                break 'decide out(format!(
                    "a pull request from a fork gets no secrets, and {name} {} secure",
                    settings.join(", ")
                ));
            }
            let secure = n.channel.targets().iter().filter(|t| t.is_secure()).count();
            if secure > 0 && secure == n.channel.targets().len() {
                break 'decide out(format!(
                    "a pull request from a fork gets no secrets, and every {name} target is secure"
                ));
            }
            if secure > 0 {
                n.channel.targets_mut().retain(|t| !t.is_secure());
                reasons.push(format!(
                    "{secure} secure target(s) left out: a pull request from a fork gets no secrets"
                ));
            }
        }
        let default_recipients = matches!(n.channel, Channel::Email { .. });
        if n.channel.targets().is_empty() && !default_recipients {
            break 'decide out(format!("{name} names no target"));
        }
        reasons.push(format!(
            "on success {}, failure {}{}",
            n.on.success.as_str(),
            n.on.failure.as_str(),
            if matches!(n.channel, Channel::Webhooks { .. }) {
                format!(
                    ", start {}, cancel {}, error {}",
                    n.on.start.as_str(),
                    n.on.cancel.as_str(),
                    n.on.error.as_str()
                )
            } else {
                String::new()
            }
        ));
        Decision {
            included: true,
            reason: reasons.join("; "),
        }
    };
    n.decision = decision;
    n
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Text;
    use serde_json::json;

    fn plan(notifications: serde_json::Value, ctx: &Context) -> Vec<Notification> {
        let mut root = Attrs::new();
        root.insert("notifications".into(), notifications);
        plan_notifications(&root, ctx)
    }

    fn push() -> Context {
        Context {
            branch: "main".into(),
            repo: "acme/app".into(),
            ..Context::default()
        }
    }

    fn fork_pr() -> Context {
        Context {
            event: EventType::PullRequest,
            pull_request: Some(7),
            fork: true,
            head_repo: Some("mallory/app".into()),
            ..push()
        }
    }

    #[test]
    fn a_fork_pull_request_keeps_only_targets_that_need_no_secret() {
        let n = plan(
            json!({"webhooks": {"urls": ["https://plain.test/hook", {"secure": "abc"}]},
                   "slack": {"rooms": {"secure": "xyz"}}}),
            &fork_pr(),
        );
        let hook = n.iter().find(|n| n.channel.name() == "webhooks").unwrap();
        assert!(hook.decision.included, "{:?}", hook.decision);
        assert_eq!(
            hook.channel.targets(),
            [Text::Plain("https://plain.test/hook".into())]
        );
        let slack = n.iter().find(|n| n.channel.name() == "slack").unwrap();
        assert!(!slack.decision.included);
        assert!(
            slack.decision.reason.contains("fork"),
            "{:?}",
            slack.decision
        );
        // The same file on a push sends both.
        let n = plan(
            json!({"webhooks": {"urls": ["https://plain.test/hook", {"secure": "abc"}]}}),
            &push(),
        );
        assert_eq!(n[0].channel.targets().len(), 2);
    }

    #[test]
    fn irc_with_a_secure_password_is_not_sent_for_a_fork() {
        let n = plan(
            json!({"irc": {"channels": ["irc.test#c"], "password": {"secure": "p"}}}),
            &Context {
                event: EventType::Push,
                ..fork_pr()
            },
        );
        assert!(!n[0].decision.included);
        assert!(n[0].decision.reason.contains("password"));
    }

    #[test]
    fn pull_requests_get_no_email_or_irc_and_slack_unless_switched_off() {
        let same_repo_pr = Context {
            fork: false,
            ..fork_pr()
        };
        let n = plan(
            json!({"email": true, "irc": "irc.test#c",
                   "slack": [{"rooms": "a:b"}, {"rooms": "c:d", "on_pull_requests": false}],
                   "webhooks": "https://h.test"}),
            &same_repo_pr,
        );
        let included: Vec<_> = n.iter().map(|n| n.decision.included).collect();
        assert_eq!(included, [false, true, false, true, false]);
    }

    #[test]
    fn if_and_enabled_decide() {
        let n = plan(
            json!({"email": false, "webhooks": {"urls": "https://h.test", "if": "branch = release"}}),
            &push(),
        );
        assert!(!n[0].decision.included);
        assert!(!n[1].decision.included);
        assert_eq!(n[1].decision.reason, "if: branch = release is false");
        let n = plan(
            json!({"webhooks": {"urls": "https://h.test", "if": "branch = main"}}),
            &push(),
        );
        assert!(n[0].decision.included);
        assert!(
            n[0].decision
                .reason
                .starts_with("if: branch = main is true")
        );
    }
}
