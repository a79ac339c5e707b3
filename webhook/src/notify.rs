//! Notifications for served builds: what preparation records, and the task that sends the
//! notification outbox.
//!
//! Preparing a build records its plan's notifications and the commit's facts with the build
//! ([`NotifySetup`]). When the build starts and when it ends, the store decides in the same
//! transaction which notifications fire (Travis's rule, "change" against the previous build of
//! the same branch and event) and queues one row per target; [`Notifier`] sends the rows with
//! retries and backoff, like status reports. A build of a fork's pull request never had a
//! secure target planned, and its rows are sent without any way to decrypt.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use slipway_notifications::{BuildFacts, Decrypt, NoSecrets, Sender, compose};
use slipway_pipelines::plan::{Notification, Plan};
use slipway_secrets::{RepoSlug, Secret, SecretStore};
use tokio_util::sync::CancellationToken;

use crate::event::NewBuild;
use crate::store::{NotifyItem, Store, StoreError, now_ms};

/// What a build's preparation records for its notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifySetup {
    /// The plan's notifications (only those sent for this event).
    pub notifications: Vec<Notification>,
    /// What does not change while the build runs: repository, commit and its people.
    pub facts: BuildFacts,
    /// False for a fork's pull request: nothing is decrypted for it.
    pub trusted: bool,
}

impl NotifySetup {
    /// The setup of a planned build; `None` when it notifies nothing.
    pub fn new(
        plan: &Plan,
        build_id: i64,
        spec: &NewBuild,
        people: &crate::git::People,
    ) -> Option<NotifySetup> {
        let notifications: Vec<Notification> = plan
            .notifications
            .iter()
            .filter(|n| n.decision.included)
            .cloned()
            .collect();
        if notifications.is_empty() {
            return None;
        }
        let ctx = &spec.context;
        let repo_url = repo_url(&spec.clone_url);
        let facts = BuildFacts {
            id: build_id.to_string(),
            number: build_id.to_string(),
            repo: spec.repo.clone(),
            compare_url: compare_url(repo_url.as_deref(), ctx),
            pull_request_title: pull_request_title(ctx),
            repo_url,
            event: ctx.event,
            branch: ctx.branch.clone(),
            tag: ctx.tag.clone(),
            commit: spec.head_sha.clone(),
            message: ctx.commit_message.clone(),
            author_name: people.author_name.clone(),
            author_email: people.author_email.clone(),
            committer_name: people.committer_name.clone(),
            committer_email: people.committer_email.clone(),
            committed_at: people
                .committed_at
                .and_then(|s| u64::try_from(s).ok())
                .map(crate::auth::format_timestamp),
            pull_request: ctx.pull_request,
            ..BuildFacts::default()
        };
        Some(NotifySetup {
            notifications,
            facts,
            trusted: !ctx.fork,
        })
    }
}

/// The repository's web address from its clone URL (`https://host/owner/name.git`).
fn repo_url(clone_url: &str) -> Option<String> {
    let url = clone_url.strip_suffix(".git").unwrap_or(clone_url);
    url.starts_with("https://").then(|| url.to_owned())
}

/// Where the build's changes can be seen, as Travis's `compare_url`: what the delivery named (a
/// push's compare view, a pull request's page), else a pull request's page under the repository.
fn compare_url(repo_url: Option<&str>, ctx: &slipway_pipelines::plan::Context) -> Option<String> {
    if let Some(url) = &ctx.compare_url {
        return Some(url.clone());
    }
    Some(format!("{}/pull/{}", repo_url?, ctx.pull_request?))
}

/// A pull request's title: the first line of the message a pull request build is planned with
/// (its title, then its body).
fn pull_request_title(ctx: &slipway_pipelines::plan::Context) -> Option<String> {
    ctx.pull_request?;
    ctx.commit_message
        .lines()
        .next()
        .map(str::to_owned)
        .filter(|t| !t.is_empty())
}

/// Decrypts one repository's secure values with its key from the server's key store.
struct RepoSecrets {
    store: SecretStore,
    repo: String,
}

impl Decrypt for RepoSecrets {
    fn decrypt(&self, encrypted: &str) -> Result<Secret<String>, String> {
        let slug = RepoSlug::parse(&self.repo).map_err(|e| e.to_string())?;
        self.store
            .keyring(&slug)
            .map_err(|e| e.to_string())?
            .decrypt_value(encrypted)
            .map_err(|e| e.to_string())
    }
}

/// How many messages are in flight at once.
const CONCURRENCY: usize = 8;

/// Sends the notification outbox.
pub struct Notifier {
    store: Arc<dyn Store>,
    sender: Arc<dyn Sender>,
    secrets: Option<SecretStore>,
    public_url: String,
    max_attempts: u32,
    /// Who takes the rows this notifier sends.
    holder: String,
}

impl Notifier {
    /// A notifier linking builds under `public_url`, decrypting with `secrets` (the data dir's
    /// key store) for trusted builds only.
    pub fn new(
        store: Arc<dyn Store>,
        sender: Arc<dyn Sender>,
        secrets: Option<SecretStore>,
        public_url: String,
        max_attempts: u32,
    ) -> Notifier {
        Notifier {
            store,
            sender,
            secrets,
            public_url,
            max_attempts: max_attempts.max(1),
            holder: crate::outbox::holder("notifications"),
        }
    }

    /// Sends due messages until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let idle = Duration::from_millis(300);
        crate::outbox::drain(
            "notification outbox",
            (self.store.as_ref(), &self.holder),
            || self.send_due(),
            None,
            idle,
            &shutdown,
        )
        .await;
    }

    /// Sends one batch of due messages; returns how many were handled.
    pub async fn send_due(&self) -> Result<usize, StoreError> {
        let due = self
            .store
            .notify_take(&self.holder, 32, crate::outbox::HOLD_MS)
            .await?;
        let handled = due.len();
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(due)
            .map(|item| self.send_one(item))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(handled)
    }

    async fn send_one(&self, item: NotifyItem) -> Result<(), StoreError> {
        let (Ok(mut facts), Ok(notification)) = (
            serde_json::from_str::<BuildFacts>(&item.facts),
            serde_json::from_str::<Notification>(&item.notification),
        ) else {
            return self
                .store
                .notify_finished(item.id, Some("the stored notification cannot be read"))
                .await;
        };
        facts.url = Some(format!(
            "{}/builds/{}",
            self.public_url.trim_end_matches('/'),
            item.build_id
        ));
        let secrets: Box<dyn Decrypt> = match (&self.secrets, item.trusted) {
            (Some(store), true) => Box::new(RepoSecrets {
                store: store.clone(),
                repo: item.repo.clone(),
            }),
            _ => Box::new(NoSecrets),
        };
        let mut error = None;
        for message in compose(&notification, &facts) {
            if let Err(e) = self.sender.send(&message, secrets.as_ref()).await {
                error = Some(e);
                break;
            }
        }
        match error {
            None => {
                tracing::info!(
                    build = item.build_id,
                    channel = notification.channel.name(),
                    "notification sent"
                );
                self.store.notify_finished(item.id, None).await
            }
            Some(e) if !e.retryable() || item.attempts + 1 >= i64::from(self.max_attempts) => {
                tracing::warn!(build = item.build_id, channel = notification.channel.name(), error = %e, "notification given up");
                self.store
                    .notify_finished(item.id, Some(&e.to_string()))
                    .await
            }
            Some(e) => {
                let backoff = (1000u64 << item.attempts.clamp(0, 12)).min(600_000);
                tracing::warn!(build = item.build_id, channel = notification.channel.name(), attempts = item.attempts + 1, error = %e, "notification failed; retrying in {backoff} ms");
                self.store
                    .notify_retry(item.id, now_ms() + backoff as i64, &e.to_string())
                    .await
            }
        }
    }
}

/// The server's webhook signing key, made on first start and kept in the data dir
/// (`notify-signing.pk8`, mode 0600); its public half is written beside it as
/// `notify-signing.pub.pem` for receivers.
pub fn signing_key(
    data_dir: &std::path::Path,
) -> std::io::Result<slipway_notifications::SigningKey> {
    use std::io::{Error, ErrorKind};
    let path = data_dir.join("notify-signing.pk8");
    let key = match std::fs::read(&path) {
        Ok(bytes) => slipway_notifications::SigningKey::from_pkcs8(&bytes)
            .map_err(|e| Error::new(ErrorKind::InvalidData, format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let (key, pkcs8) =
                slipway_notifications::SigningKey::generate().map_err(Error::other)?;
            write_private(&path, &pkcs8)?;
            key
        }
        Err(e) => return Err(e),
    };
    std::fs::write(
        data_dir.join("notify-signing.pub.pem"),
        key.public_key_pem(),
    )?;
    Ok(key)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_pipelines::plan::{Context, EventType};

    #[test]
    fn a_pull_requests_title_and_page_are_in_its_facts_and_a_pushs_are_not() {
        let pr = Context {
            event: EventType::PullRequest,
            pull_request: Some(7),
            commit_message: "Fix the parser\n\nIt read one byte too many.".into(),
            ..Context::default()
        };
        assert_eq!(pull_request_title(&pr).as_deref(), Some("Fix the parser"));
        assert_eq!(
            compare_url(Some("https://github.com/acme/app"), &pr).as_deref(),
            Some("https://github.com/acme/app/pull/7")
        );
        assert_eq!(compare_url(None, &pr), None);
        let push = Context {
            commit_message: "Fix the parser".into(),
            ..Context::default()
        };
        assert_eq!(pull_request_title(&push), None);
        assert_eq!(
            compare_url(Some("https://github.com/acme/app"), &push),
            None
        );
    }
}
