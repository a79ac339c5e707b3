//! Messages: what one notification sends to one target, composed from a plan's notification and
//! a build's facts. A message keeps `secure:` values encrypted ([`Text::Secure`]), so it may be
//! stored in an outbox and printed; only the sender decrypts them, just before sending.

use serde::{Deserialize, Serialize};
use slipway_pipelines::plan::{Channel, EventType, Notification, Outcome, Text};

use crate::facts::BuildFacts;
use crate::template::{self, interpolate};
use crate::webhook::payload;

/// One message to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// One email to every recipient.
    Email {
        /// The addresses (secure ones are decrypted, then split on commas).
        recipients: Vec<Text>,
        /// Travis's subject line.
        subject: String,
        /// The plain-text body.
        body: String,
    },
    /// One Slack post.
    Slack {
        /// `account:token#channel`.
        room: Text,
        /// The message text (template lines joined by newlines).
        text: String,
        /// `good`, `danger` or `warning`, as Travis colours it.
        color: String,
    },
    /// One webhook POST.
    Webhook {
        /// Where to.
        url: Text,
        /// Travis's JSON payload, sent form-encoded as `payload=…`.
        payload: String,
        /// `owner/name`, sent as `Travis-Repo-Slug`.
        repo: String,
    },
    /// Lines to one IRC channel.
    Irc {
        /// `[irc://|ircs://]host[:port]#channel[,key]`.
        channel: Text,
        lines: Vec<String>,
        /// NOTICE instead of PRIVMSG.
        notice: bool,
        /// Join before (and part after) messaging.
        join: bool,
        /// The nick to use instead of the server's.
        nick: Option<Text>,
        /// The server password.
        password: Option<Text>,
        /// Identify with NickServ.
        nickserv_password: Option<Text>,
        channel_key: Option<Text>,
    },
}

impl Message {
    /// The channel name (`email`, `slack`, `webhooks`, `irc`).
    pub fn channel(&self) -> &'static str {
        match self {
            Message::Email { .. } => "email",
            Message::Slack { .. } => "slack",
            Message::Webhook { .. } => "webhooks",
            Message::Irc { .. } => "irc",
        }
    }

    /// One line saying what would be sent where, secure values shown as `[secure]`.
    pub fn describe(&self) -> String {
        match self {
            Message::Email {
                recipients,
                subject,
                ..
            } => {
                let to: Vec<&str> = recipients.iter().map(Text::shown).collect();
                format!("email to {}: {subject}", to.join(", "))
            }
            Message::Slack { room, text, .. } => {
                format!("slack to {}: {}", room_shown(room), first_line(text))
            }
            Message::Webhook { url, payload, .. } => format!(
                "webhook POST {} (payload= {} bytes of JSON, signed)",
                url.shown(),
                payload.len()
            ),
            Message::Irc {
                channel,
                lines,
                notice,
                ..
            } => format!(
                "irc {} to {}: {}",
                if *notice { "NOTICE" } else { "PRIVMSG" },
                channel.shown(),
                lines.first().map(String::as_str).unwrap_or("")
            ),
        }
    }
}

/// A plain room without its token (`account:[secure]#channel`); the token is a secret even
/// when the file wrote it in plain text.
fn room_shown(room: &Text) -> String {
    match room {
        Text::Secure(_) => "[secure]".to_owned(),
        Text::Plain(s) => {
            let (account, rest) = s.split_once(':').unwrap_or((s, ""));
            let channel = rest.split_once('#').map(|(_, c)| format!("#{c}"));
            format!("{account}:[secure]{}", channel.unwrap_or_default())
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The messages a notification sends for a build, one per target (one email for all
/// recipients). Whether it is sent at all is [`Notification::fires`]'s decision, not this.
pub fn compose(n: &Notification, facts: &BuildFacts) -> Vec<Message> {
    let lines = |default: &[&str]| -> Vec<String> {
        if n.template.is_empty() {
            default.iter().map(|t| interpolate(t, facts)).collect()
        } else {
            n.template.iter().map(|t| interpolate(t, facts)).collect()
        }
    };
    match &n.channel {
        Channel::Email { recipients } => {
            let recipients = if recipients.is_empty() {
                facts
                    .default_recipients()
                    .into_iter()
                    .map(Text::Plain)
                    .collect()
            } else {
                recipients.clone()
            };
            if recipients.is_empty() {
                return Vec::new();
            }
            vec![Message::Email {
                recipients,
                subject: subject(facts),
                body: email_body(facts),
            }]
        }
        Channel::Slack { rooms, .. } => {
            let default = if facts.event == EventType::PullRequest {
                template::SLACK_PULL_REQUEST
            } else {
                template::SLACK_BRANCH
            };
            let text = lines(&[default]).join("\n");
            let color = match facts.state {
                Some(Outcome::Passed) => "good",
                Some(Outcome::Failed) => "danger",
                _ => "warning",
            };
            rooms
                .iter()
                .map(|room| Message::Slack {
                    room: room.clone(),
                    text: text.clone(),
                    color: color.to_owned(),
                })
                .collect()
        }
        Channel::Webhooks { urls } => {
            let body = payload(facts).to_string();
            urls.iter()
                .map(|url| Message::Webhook {
                    url: url.clone(),
                    payload: body.clone(),
                    repo: facts.repo.clone(),
                })
                .collect()
        }
        Channel::Irc {
            channels,
            channel_key,
            password,
            nickserv_password,
            nick,
            use_notice,
            skip_join,
        } => {
            let lines = lines(template::IRC);
            channels
                .iter()
                .map(|channel| Message::Irc {
                    channel: channel.clone(),
                    lines: lines.clone(),
                    notice: *use_notice,
                    join: !skip_join,
                    nick: nick.clone(),
                    password: password.clone(),
                    nickserv_password: nickserv_password.clone(),
                    channel_key: channel_key.clone(),
                })
                .collect()
        }
    }
}

/// Travis's subject: `Fixed: owner/name#12 (main - 0123456)`, `[CRON] ` first for cron builds.
fn subject(f: &BuildFacts) -> String {
    format!(
        "{}{}: {}#{} ({} - {})",
        if f.event == EventType::Cron {
            "[CRON] "
        } else {
            ""
        },
        f.result_word(),
        f.repo,
        f.number,
        f.branch,
        f.short_commit()
    )
}

fn email_body(f: &BuildFacts) -> String {
    let mut s = format!(
        "{}\n\n{} #{} on {} ({})\n",
        f.result_sentence(),
        f.repo,
        f.number,
        f.branch,
        f.state_name()
    );
    if let Some(url) = &f.url {
        s.push_str(&format!("Build: {url}\n"));
    }
    s.push_str(&format!(
        "Commit: {} by {} <{}>\n",
        f.commit, f.author_name, f.author_email
    ));
    if let Some(url) = &f.compare_url {
        s.push_str(&format!("Changes: {url}\n"));
    }
    s.push_str(&format!("Duration: {}\n\n", f.duration_text()));
    s.push_str(&format!("{}\n", f.message.trim_end()));
    if !f.jobs.is_empty() {
        s.push_str("\nJobs:\n");
        for j in &f.jobs {
            s.push_str(&format!(
                "  {} {}{}\n",
                j.number,
                j.state,
                if j.allow_failure {
                    " (allowed to fail)"
                } else {
                    ""
                }
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_pipelines::plan::{Decision, Triggers};

    fn facts() -> BuildFacts {
        BuildFacts {
            id: "3".into(),
            number: "3".into(),
            repo: "acme/app".into(),
            branch: "main".into(),
            commit: "0123456789abcdef".into(),
            author_name: "Dev".into(),
            author_email: "dev@example.org".into(),
            committer_email: "ops@example.org".into(),
            state: Some(Outcome::Passed),
            previous: Some(Outcome::Failed),
            ..BuildFacts::default()
        }
    }

    fn notification(channel: Channel) -> Notification {
        Notification {
            on: Triggers::defaults(channel.name()),
            channel,
            template: vec![],
            decision: Decision {
                included: true,
                reason: String::new(),
            },
        }
    }

    #[test]
    fn email_goes_to_author_and_committer_by_default() {
        let m = compose(
            &notification(Channel::Email { recipients: vec![] }),
            &facts(),
        );
        let [
            Message::Email {
                recipients,
                subject,
                ..
            },
        ] = &m[..]
        else {
            panic!("{m:?}")
        };
        assert_eq!(
            recipients,
            &[
                Text::Plain("dev@example.org".into()),
                Text::Plain("ops@example.org".into())
            ]
        );
        assert_eq!(subject, "Fixed: acme/app#3 (main - 0123456)");
    }

    #[test]
    fn descriptions_never_show_secrets() {
        let m = compose(
            &notification(Channel::Slack {
                rooms: vec![
                    Text::Plain("acme:t0ken#builds".into()),
                    Text::Secure("ZW5j".into()),
                ],
                on_pull_requests: true,
            }),
            &facts(),
        );
        let shown: Vec<String> = m.iter().map(Message::describe).collect();
        assert!(
            shown[0].starts_with("slack to acme:[secure]#builds: Build"),
            "{shown:?}"
        );
        assert!(shown[1].starts_with("slack to [secure]: "), "{shown:?}");
        assert!(!shown.concat().contains("t0ken") && !shown.concat().contains("ZW5j"));
    }
}
