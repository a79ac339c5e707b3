//! `[notifications]`: how the server sends what pipelines' `notifications:` ask for — the SMTP
//! relay, where Slack posts go, the IRC nick, the addresses webhooks and IRC may reach, and how
//! long the outbox keeps retrying.

use serde::Deserialize;
use slipway_notifications::SmtpTls;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// The SMTP relay email goes through; without it, email notifications fail with that reason.
    pub smtp: Option<SmtpSettings>,
    /// Where Slack posts go; `{account}` and `{token}` come from the room. Without it Slack
    /// messages fail with that reason: no service address is built in.
    pub slack_url: Option<String>,
    /// The nick IRC messages come from (a pipeline's `nick:` wins).
    pub irc_nick: String,
    /// Addresses (`127.0.0.1`), networks and host names webhooks and IRC may reach although
    /// loopback, private, link-local and the server's own addresses are refused by default.
    pub allow: Vec<crate::git::Allowed>,
    /// Longest one message may take, in seconds.
    pub timeout_seconds: u64,
    /// Tries of one message before it is given up (with its last error kept).
    pub max_attempts: u32,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            smtp: None,
            slack_url: None,
            irc_nick: "slipway-ci".to_owned(),
            allow: Vec::new(),
            timeout_seconds: 30,
            max_attempts: 8,
        }
    }
}

/// `[notifications.smtp]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The relay's host.
    pub host: String,
    /// Its port (default 587).
    #[serde(default = "default_port")]
    pub port: u16,
    /// `starttls` (default), `tls` or `none` (a relay on this machine only).
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    /// A user name, if the relay wants one.
    pub username: Option<String>,
    /// Its password (`SLIPWAY_SMTP_PASSWORD` wins when set).
    pub password: Option<String>,
    /// The sender address.
    pub from: String,
    /// The name sent in `EHLO`.
    pub hello: Option<String>,
}

fn default_port() -> u16 {
    587
}

fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[secure]"))
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpSettings {
    /// The relay as the sender takes it, the password from `SLIPWAY_SMTP_PASSWORD` when set.
    pub fn smtp(&self) -> slipway_notifications::Smtp {
        let password = std::env::var("SLIPWAY_SMTP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| self.password.clone());
        slipway_notifications::Smtp {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            username: self.username.clone(),
            password: password.map(slipway_secrets::Secret::new),
            from: self.from.clone(),
            hello: self.hello.clone(),
        }
    }
}
