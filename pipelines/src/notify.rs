//! Build notifications as a plan holds them: the channels Slipway sends to (`email`, `slack`,
//! `webhooks`, `irc`), when each sends, and the rule that decides whether a finished build
//! notifies — Travis's, default for default.
//!
//! The rule is pure: given a build's outcome and the previous build's on the same branch it says
//! yes or no, so `slipway run` and `slipway serve` decide exactly alike. Secret-bearing values
//! stay encrypted ([`Text::Secure`]) until the sender that needs them decrypts them.

use serde::{Deserialize, Serialize};

use crate::plan::Decision;

/// One `notifications:` entry of one channel, resolved for the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Where it goes and how.
    pub channel: Channel,
    /// When it is sent, with Travis's defaults filled in.
    pub on: Triggers,
    /// `template:` lines (Slack and IRC); empty means the channel's default message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template: Vec<String>,
    /// Whether it is sent for this event at all (`enabled:`, `if:`, pull request and fork
    /// rules), and why.
    pub decision: Decision,
}

/// A notification channel and its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Channel {
    /// Email over the server's SMTP relay.
    Email {
        /// Addresses; empty means the commit's author and committer (Travis's default).
        recipients: Vec<Text>,
    },
    /// Slack rooms, each `account:token#channel` (the channel is optional).
    Slack {
        rooms: Vec<Text>,
        /// `on_pull_requests:` (default true): whether pull request builds notify.
        on_pull_requests: bool,
    },
    /// HTTP POSTs of Travis's JSON payload.
    Webhooks { urls: Vec<Text> },
    /// IRC channels, each `host[:port]#channel` (`ircs://` for TLS).
    Irc {
        channels: Vec<Text>,
        /// `channel_key:` for channels that need one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_key: Option<Text>,
        /// `password:`, the server password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Text>,
        /// `nickserv_password:`, sent to NickServ after connecting.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nickserv_password: Option<Text>,
        /// `nick:` (default: the server's nick).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nick: Option<Text>,
        /// `use_notice:`: NOTICE instead of PRIVMSG.
        use_notice: bool,
        /// `skip_join:`: message without joining (channels that allow outside messages).
        skip_join: bool,
    },
}

impl Channel {
    /// IRC `channels` with Travis's defaults for the rest: no keys or passwords, the server's
    /// nick, PRIVMSG after joining.
    pub fn irc(channels: Vec<Text>) -> Self {
        Channel::Irc {
            channels,
            channel_key: None,
            password: None,
            nickserv_password: None,
            nick: None,
            use_notice: false,
            skip_join: false,
        }
    }

    /// The channel's key under `notifications:`.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Email { .. } => "email",
            Channel::Slack { .. } => "slack",
            Channel::Webhooks { .. } => "webhooks",
            Channel::Irc { .. } => "irc",
        }
    }

    /// The channel's targets (addresses, rooms, URLs, IRC channels).
    pub fn targets(&self) -> &[Text] {
        match self {
            Channel::Email { recipients } => recipients,
            Channel::Slack { rooms, .. } => rooms,
            Channel::Webhooks { urls } => urls,
            Channel::Irc { channels, .. } => channels,
        }
    }

    /// The channel's targets, mutable (to drop the ones a build may not decrypt).
    pub fn targets_mut(&mut self) -> &mut Vec<Text> {
        match self {
            Channel::Email { recipients } => recipients,
            Channel::Slack { rooms, .. } => rooms,
            Channel::Webhooks { urls } => urls,
            Channel::Irc { channels, .. } => channels,
        }
    }

    /// Secret-bearing settings other than the targets, by key (IRC passwords and keys).
    pub fn secure_settings(&self) -> Vec<&'static str> {
        let Channel::Irc {
            channel_key,
            password,
            nickserv_password,
            nick,
            ..
        } = self
        else {
            return Vec::new();
        };
        [
            ("channel_key", channel_key),
            ("password", password),
            ("nickserv_password", nickserv_password),
            ("nick", nick),
        ]
        .into_iter()
        .filter(|(_, v)| matches!(v, Some(Text::Secure(_))))
        .map(|(k, _)| k)
        .collect()
    }
}

/// A value as written: plain text, or a `secure:` value still encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Text {
    /// Plain text.
    Plain(String),
    /// Encrypted; only a trusted build's sender decrypts it.
    Secure(String),
}

impl Text {
    /// True for an encrypted value.
    pub fn is_secure(&self) -> bool {
        matches!(self, Text::Secure(_))
    }

    /// The plain text, or `[secure]`: what may be shown anywhere.
    pub fn shown(&self) -> &str {
        match self {
            Text::Plain(s) => s,
            Text::Secure(_) => "[secure]",
        }
    }
}

/// How often a notification is sent for one kind of outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every time.
    Always,
    Never,
    /// When the result differs from the previous build's on the same branch (and for the first).
    Change,
}

impl Frequency {
    /// Reads Travis's spellings: `always`/`true`, `never`/`false`, `change`/`changed`
    /// (case-insensitive, a leading `:` of Ruby symbols ignored).
    pub fn parse(value: &str) -> Option<Frequency> {
        match value
            .trim()
            .trim_start_matches(':')
            .to_ascii_lowercase()
            .as_str()
        {
            "always" | "true" | "yes" | "on" => Some(Frequency::Always),
            "never" | "false" | "no" | "off" => Some(Frequency::Never),
            "change" | "changed" => Some(Frequency::Change),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Always => "always",
            Frequency::Never => "never",
            Frequency::Change => "change",
        }
    }
}

/// When a notification is sent, per outcome (Travis's `on_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triggers {
    /// `on_start` (webhooks only; other channels never send at start).
    pub start: Frequency,
    /// `on_success`.
    pub success: Frequency,
    /// `on_failure`.
    pub failure: Frequency,
    /// `on_cancel` (webhooks; email always; Slack and IRC never, as on Travis).
    pub cancel: Frequency,
    /// `on_error` (webhooks; other channels treat an errored build as failed, as on Travis).
    pub error: Frequency,
}

impl Triggers {
    /// Travis's defaults for a channel (travis-hub's table): email on success only on change,
    /// everything else always; nothing at start; Slack and IRC nothing on cancel.
    pub fn defaults(channel: &str) -> Triggers {
        let a = Frequency::Always;
        let n = Frequency::Never;
        match channel {
            "email" => Triggers {
                start: n,
                success: Frequency::Change,
                failure: a,
                cancel: a,
                error: a,
            },
            "webhooks" => Triggers {
                start: n,
                success: a,
                failure: a,
                cancel: a,
                error: a,
            },
            _ => Triggers {
                start: n,
                success: a,
                failure: a,
                cancel: n,
                error: a,
            },
        }
    }
}

/// A build's outcome as the notification rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The build started.
    Started,
    /// Every required job passed.
    Passed,
    /// A required job failed.
    Failed,
    /// A required job errored (or the build could not run).
    Errored,
    /// Canceled by a user.
    Canceled,
    /// Canceled automatically because a newer push superseded it (email is not sent for these,
    /// as on Travis).
    Superseded,
}

impl Outcome {
    /// The state's name (`passed`, `failed`, …) as payloads and templates show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Errored => "errored",
            Outcome::Canceled | Outcome::Superseded => "canceled",
        }
    }

    /// Reads a state name; `None` for states that are no outcome (`queued`, `skipped`, …).
    pub fn parse(state: &str) -> Option<Outcome> {
        Some(match state {
            "started" | "running" => Outcome::Started,
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed,
            "errored" => Outcome::Errored,
            "canceled" => Outcome::Canceled,
            _ => return None,
        })
    }
}

impl Notification {
    /// Whether this notification is sent for `outcome`, given the previous finished build of the
    /// same branch (`None` for the first), exactly as travis-hub decides:
    /// `change` on success sends unless the previous build passed; `change` on failure, error or
    /// cancel sends when the previous build passed, or there was none.
    pub fn fires(&self, outcome: Outcome, previous: Option<Outcome>) -> bool {
        if !self.decision.included {
            return false;
        }
        let email = matches!(self.channel, Channel::Email { .. });
        let webhooks = matches!(self.channel, Channel::Webhooks { .. });
        let frequency = match outcome {
            Outcome::Started => self.on.start,
            Outcome::Passed => self.on.success,
            Outcome::Failed => self.on.failure,
            Outcome::Errored if webhooks => self.on.error,
            Outcome::Errored => self.on.failure,
            Outcome::Superseded if email => Frequency::Never,
            Outcome::Canceled | Outcome::Superseded => self.on.cancel,
        };
        let previous_passed = previous == Some(Outcome::Passed);
        match (frequency, outcome) {
            (Frequency::Always, _) => true,
            (Frequency::Never, _) | (Frequency::Change, Outcome::Started) => false,
            (Frequency::Change, Outcome::Passed) => !previous_passed,
            (Frequency::Change, _) => previous_passed || previous.is_none(),
        }
    }
}

/// The placeholders Travis fills in notification templates (`%{name}`).
pub const TEMPLATE_VARS: &[&str] = &[
    "repository",
    "repository_slug",
    "repository_name",
    "build_number",
    "build_id",
    "build_url",
    "branch",
    "commit",
    "commit_subject",
    "commit_message",
    "author",
    "pull_request",
    "pull_request_number",
    "pull_request_url",
    "compare_url",
    "result",
    "duration",
    "elapsed_time",
    "message",
];

/// The `%{name}` placeholders of a template line, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find("%{") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(on: Triggers) -> Notification {
        Notification {
            channel: Channel::Webhooks { urls: vec![] },
            on,
            template: vec![],
            decision: Decision {
                included: true,
                reason: String::new(),
            },
        }
    }

    #[test]
    fn change_sends_on_the_first_build_and_when_the_result_flips() {
        let n = webhook(Triggers {
            success: Frequency::Change,
            failure: Frequency::Change,
            ..Triggers::defaults("webhooks")
        });
        use Outcome::*;
        assert!(n.fires(Failed, None));
        assert!(n.fires(Passed, None));
        assert!(n.fires(Passed, Some(Failed)));
        assert!(n.fires(Passed, Some(Errored)));
        assert!(!n.fires(Passed, Some(Passed)));
        assert!(n.fires(Failed, Some(Passed)));
        assert!(!n.fires(Failed, Some(Failed)));
        assert!(!n.fires(Started, None));
    }

    #[test]
    fn defaults_follow_travis_per_channel() {
        let email = Notification {
            channel: Channel::Email { recipients: vec![] },
            ..webhook(Triggers::defaults("email"))
        };
        assert!(!email.fires(Outcome::Passed, Some(Outcome::Passed)));
        assert!(email.fires(Outcome::Passed, Some(Outcome::Failed)));
        assert!(email.fires(Outcome::Failed, Some(Outcome::Failed)));
        assert!(email.fires(Outcome::Canceled, None));
        assert!(!email.fires(Outcome::Superseded, None));
        assert!(!email.fires(Outcome::Started, None));
        let slack = Notification {
            channel: Channel::Slack {
                rooms: vec![],
                on_pull_requests: true,
            },
            ..webhook(Triggers::defaults("slack"))
        };
        assert!(slack.fires(Outcome::Passed, Some(Outcome::Passed)));
        assert!(!slack.fires(Outcome::Canceled, None));
        let hook = webhook(Triggers::defaults("webhooks"));
        assert!(hook.fires(Outcome::Superseded, None));
        assert!(!hook.fires(Outcome::Started, None));
    }

    #[test]
    fn errored_builds_use_on_error_for_webhooks_and_on_failure_elsewhere() {
        let hook = webhook(Triggers {
            failure: Frequency::Never,
            error: Frequency::Always,
            ..Triggers::defaults("webhooks")
        });
        assert!(hook.fires(Outcome::Errored, Some(Outcome::Errored)));
        let irc = Notification {
            channel: Channel::irc(vec![]),
            ..webhook(Triggers {
                failure: Frequency::Never,
                ..Triggers::defaults("irc")
            })
        };
        assert!(!irc.fires(Outcome::Errored, None));
    }

    #[test]
    fn excluded_notifications_never_fire() {
        let mut n = webhook(Triggers::defaults("webhooks"));
        n.decision.included = false;
        assert!(!n.fires(Outcome::Failed, None));
    }

    #[test]
    fn frequencies_read_travis_spellings() {
        assert_eq!(Frequency::parse("changed"), Some(Frequency::Change));
        assert_eq!(Frequency::parse(":change"), Some(Frequency::Change));
        assert_eq!(Frequency::parse("false"), Some(Frequency::Never));
        assert_eq!(Frequency::parse("Always"), Some(Frequency::Always));
        assert_eq!(Frequency::parse("sometimes"), None);
    }

    #[test]
    fn placeholders_are_found_in_order() {
        assert_eq!(
            placeholders("%{repository}#%{build_number} %{nope} %{unclosed"),
            ["repository", "build_number", "nope"]
        );
    }
}
