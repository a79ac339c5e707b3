//! The one seam notifications go out through: [`Sender`], and [`Deliverer`], its real
//! implementation (SMTP, Slack and webhooks over HTTP, IRC over TCP).
//!
//! Secure values are decrypted here, just before sending, through [`Decrypt`]; nothing a
//! message decrypts is logged or returned in an error.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_http::{Http, Tls};
use slipway_pipelines::plan::Text;
use slipway_secrets::Secret;

use crate::message::Message;
use crate::webhook::{SigningKey, form_body};

/// Decrypts a repository's `secure:` values for one message.
pub trait Decrypt: Send + Sync {
    /// The plaintext of one encrypted value.
    fn decrypt(&self, encrypted: &str) -> Result<Secret<String>, String>;
}

/// Refuses every secure value: what a build that may not decrypt gets.
pub struct NoSecrets;

impl Decrypt for NoSecrets {
    fn decrypt(&self, _: &str) -> Result<Secret<String>, String> {
        Err("no secrets are available to this build".into())
    }
}

/// Why a message was not sent. Texts never hold decrypted values.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The target or the message cannot be sent as written: retrying does not help.
    #[error("{0}")]
    Invalid(String),
    /// Sending failed (connection, timeout, the other side said no): worth retrying.
    #[error("{0}")]
    Failed(String),
}

impl SendError {
    /// True when a later try may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, SendError::Failed(_))
    }
}

/// Sends one message. Tests substitute their own; [`Deliverer`] is the real one.
#[async_trait]
pub trait Sender: Send + Sync {
    /// Sends `message`, decrypting its secure values through `secrets`.
    async fn send(&self, message: &Message, secrets: &dyn Decrypt) -> Result<(), SendError>;
}

/// How the server reaches an SMTP relay (`[notifications.smtp]`).
#[derive(Debug, Clone)]
pub struct Smtp {
    /// The relay's host.
    pub host: String,
    pub port: u16,
    /// `none` (plain, for a relay on this machine), `starttls` or `tls`.
    pub tls: SmtpTls,
    /// A user name to authenticate with, if the relay wants one.
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    /// The sender address (`From:`).
    pub from: String,
    /// The name sent in `EHLO` (default `localhost`).
    pub hello: Option<String>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on this machine or a trusted network.
    None,
    /// Plain, then upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Whether a host and one of its addresses may be reached; `Some(why)` refuses. The server
/// hands in its address policy so a pipeline file cannot aim a webhook or an IRC message at the
/// server's own loopback services, its private network or a metadata service.
pub type Reach = Arc<dyn Fn(&str, IpAddr) -> Option<String> + Send + Sync>;

/// What [`Deliverer`] needs besides the messages.
#[derive(Clone)]
pub struct Settings {
    /// The SMTP relay; without one, email is not sent (and says so).
    pub smtp: Option<Smtp>,
    /// Where Slack posts go: `{account}` and `{token}` are replaced by the room's parts. No
    /// service address is built in: without one, Slack messages fail saying what to set.
    pub slack_url: Option<String>,
    /// The nick for IRC (a message's `nick:` wins).
    pub irc_nick: String,
    /// The key webhook payloads are signed with.
    pub signing: Option<Arc<SigningKey>>,
    /// The address policy for webhook URLs and IRC servers.
    pub reach: Reach,
    /// How long one message may take.
    pub timeout: Duration,
}

/// Sends messages for real.
pub struct Deliverer {
    settings: Settings,
    http: Http,
}

impl Deliverer {
    /// A deliverer with the system's trusted roots for HTTPS.
    pub fn new(settings: Settings) -> Result<Deliverer, String> {
        Ok(Deliverer {
            settings,
            http: Http::new(Tls::default()).map_err(|e| e.to_string())?,
        })
    }
}

#[async_trait]
impl Sender for Deliverer {
    async fn send(&self, message: &Message, secrets: &dyn Decrypt) -> Result<(), SendError> {
        let work = async {
            match message {
                Message::Email { .. } => crate::email::send(&self.settings, message, secrets).await,
                Message::Slack { room, text, color } => {
                    self.slack(&reveal(room, secrets)?, text, color).await
                }
                Message::Webhook { url, payload, repo } => {
                    self.webhook(&reveal(url, secrets)?, payload, repo).await
                }
                Message::Irc { .. } => crate::irc::send(&self.settings, message, secrets).await,
            }
        };
        tokio::time::timeout(self.settings.timeout, work)
            .await
            .map_err(|_| {
                SendError::Failed(format!(
                    "{} not sent within {} s",
                    message.channel(),
                    self.settings.timeout.as_secs()
                ))
            })?
    }
}

/// A message's value in plain text: decrypted when secure.
pub(crate) fn reveal(text: &Text, secrets: &dyn Decrypt) -> Result<Secret<String>, SendError> {
    match text {
        Text::Plain(s) => Ok(Secret::new(s.clone())),
        Text::Secure(enc) => secrets
            .decrypt(enc)
            .map_err(|e| SendError::Invalid(format!("a secure value cannot be decrypted: {e}"))),
    }
}

/// Checks `host` against the address policy, resolving it; returns the first address allowed.
pub(crate) async fn checked_address(
    settings: &Settings,
    host: &str,
    port: u16,
) -> Result<std::net::SocketAddr, SendError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SendError::Failed(format!("cannot resolve {host}: {e}")))?
        .collect();
    let first = addrs
        .first()
        .ok_or_else(|| SendError::Failed(format!("{host} has no address")))?;
    // Every address must be allowed: a name that also points inside is refused whole.
    for a in &addrs {
        if let Some(why) = (settings.reach)(host, a.ip()) {
            return Err(SendError::Invalid(format!(
                "{host} is {why}; add it to [notifications] allow to send there"
            )));
        }
    }
    Ok(*first)
}

impl Deliverer {
    async fn slack(&self, room: &Secret<String>, text: &str, color: &str) -> Result<(), SendError> {
        let room = room.expose();
        let (account, rest) = room
            .split_once(':')
            .ok_or_else(|| SendError::Invalid("a Slack room is `account:token#channel`".into()))?;
        let (token, channel) = rest
            .split_once('#')
            .map_or((rest, None), |(t, c)| (t, Some(c)));
        let word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !word(account) || !word(token) {
            return Err(SendError::Invalid(
                "a Slack room's account and token hold only letters, digits, `-` and `_`".into(),
            ));
        }
        let url = self
            .settings
            .slack_url
            .as_deref()
            .ok_or_else(|| {
                SendError::Invalid(
                    "no Slack endpoint is configured (slack_url under [notifications])".into(),
                )
            })?
            .replace("{account}", account)
            .replace("{token}", token);
        let mut body = serde_json::json!({
            "attachments": [{"fallback": text, "text": text, "color": color, "mrkdwn_in": ["text"]}],
        });
        if let Some(c) = channel {
            body["channel"] = serde_json::Value::String(format!("#{c}"));
        }
        let answer = self
            .http
            .send(
                "POST",
                &url,
                &[
                    ("content-type", "application/json"),
                    ("user-agent", USER_AGENT),
                ],
                Some(body.to_string().into_bytes()),
            )
            .await
            .map_err(|e| SendError::Failed(format!("slack: {}", scrub(&e.to_string(), token))))?;
        answered("slack", answer.status)
    }

    async fn webhook(
        &self,
        url: &Secret<String>,
        payload: &str,
        repo: &str,
    ) -> Result<(), SendError> {
        let url = url.expose();
        let (host, port, _) = url_host(url).ok_or_else(|| {
            SendError::Invalid("a webhook URL is http:// or https:// with a host".into())
        })?;
        checked_address(&self.settings, &host, port).await?;
        let mut headers = vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("user-agent", USER_AGENT.to_owned()),
            ("travis-repo-slug", repo.to_owned()),
        ];
        if let Some(key) = &self.settings.signing {
            headers.push(("signature", key.sign(payload)));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = self
            .http
            .send("POST", url, &headers, Some(form_body(payload).into_bytes()))
            .await
            .map_err(|e| SendError::Failed(format!("webhook: {}", scrub(&e.to_string(), url))))?;
        answered("webhook", answer.status)
    }
}

/// The `User-Agent` of Slack and webhook requests.
const USER_AGENT: &str = "Slipway CI Notifications";

fn answered(what: &str, status: u16) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        // A client error will not go away by itself, except rate limits and timeouts.
        400..=499 if status != 408 && status != 429 => Err(SendError::Invalid(format!(
            "{what}: answered HTTP {status}"
        ))),
        _ => Err(SendError::Failed(format!("{what}: answered HTTP {status}"))),
    }
}

/// An error text with a secret taken out (a URL or token may appear in connection errors).
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    text.replace(secret, slipway_secrets::MASK)
}

/// A URL's host, port and whether it is HTTPS.
fn url_host(url: &str) -> Option<(String, u16, bool)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h.to_owned(), after.strip_prefix(':').map(str::to_owned))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if https => 443,
        None => 80,
    };
    (!host.is_empty()).then_some((host, port, https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://a.test/x"),
            Some(("a.test".into(), 443, true))
        );
        assert_eq!(
            url_host("http://u:p@127.0.0.1:8080?x=1"),
            Some(("127.0.0.1".into(), 8080, false))
        );
        assert_eq!(url_host("http://[::1]:9/"), Some(("::1".into(), 9, false)));
        assert_eq!(url_host("ftp://a.test"), None);
        assert_eq!(url_host("http:///x"), None);
    }

    #[test]
    fn errors_never_carry_the_secret() {
        assert_eq!(
            scrub("connect to https://h.test/?token=s3cr3t failed", "s3cr3t"),
            "connect to https://h.test/?token=[secure] failed"
        );
    }
}
