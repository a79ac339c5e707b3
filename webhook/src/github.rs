//! Reporting to GitHub: commit statuses sent from the persisted outbox, retried with backoff.
//!
//! A status is first written to the outbox in the same transaction as the state change it
//! reports, so it cannot be lost; this task sends it. Reports for one commit go out in order, and
//! a report that a newer one for the same commit supersedes is dropped unsent, so a late retry of
//! "pending" can never overwrite a final state.

mod checks;

use crate::auth::{AuthError, Credential, GitHubAuth};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{OutboxItem, OutboxKind, Store, StoreError, now_ms};
use axum::http::Method;
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why one report was not delivered (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No credential could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The outbox names something that is not a repository.
    #[error("repository is not owner/name")]
    NotARepository,
    /// GitHub could not be reached.
    #[error(transparent)]
    Http(#[from] slipway_http::HttpError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// GitHub answered with an error.
    #[error("HTTP {status}: {message}")]
    Refused {
        status: u16,
        /// GitHub's message, shortened.
        message: String,
    },
}

/// How many commits' reports are in flight at once.
const CONCURRENCY: usize = 8;

/// Sends the outbox.
pub struct Reporter {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    public_url: String,
    auth: Arc<GitHubAuth>,
    metrics: Arc<Metrics>,
    /// Who takes the rows this reporter sends.
    holder: String,
}

impl Reporter {
    /// A reporter linking statuses to builds under `public_url`, authenticated by `auth`.
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        public_url: String,
        auth: Arc<GitHubAuth>,
        metrics: Arc<Metrics>,
    ) -> Reporter {
        Reporter {
            store,
            config,
            public_url,
            auth,
            metrics,
            holder: crate::outbox::holder("statuses"),
        }
    }

    /// Sends due reports until `shutdown`; `wake` shortens the wait after a new report.
    pub async fn run(self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let idle = Duration::from_millis(500);
        crate::outbox::drain(
            "status outbox",
            (self.store.as_ref(), &self.holder),
            || self.send_due(),
            Some(&wake),
            idle,
            &shutdown,
        )
        .await;
    }

    /// Sends a batch of due reports: the reports of different commits at once (up to
    /// [`CONCURRENCY`]), each commit's in id order, skipping those a newer report supersedes.
    /// The batch costs the store three writes or reads whatever its size (take, superseded, done;
    /// a failed report's retry is its own), so a backlog drains at the pace of GitHub's answers.
    async fn send_due(&self) -> Result<usize, crate::store::StoreError> {
        let due = self
            .store
            .outbox_take(&self.holder, 64, crate::outbox::HOLD_MS)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let handled = due.len();
        let ids: Vec<i64> = due.iter().map(|i| i.id).collect();
        let mut done = self.store.outbox_superseded(&ids).await?;
        let mut commits: Vec<Vec<OutboxItem>> = Vec::new();
        for item in due.into_iter().filter(|i| !done.contains(&i.id)) {
            match commits
                .iter_mut()
                .find(|c| c[0].repo == item.repo && c[0].sha == item.sha)
            {
                Some(c) => c.push(item),
                None => commits.push(vec![item]),
            }
        }
        let outcomes: Vec<_> = futures::stream::iter(commits)
            .map(|items| self.send_commit(items))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut failed = None;
        for outcome in outcomes {
            match outcome {
                Ok(sent) => done.extend(sent),
                Err(e) => failed = Some(e),
            }
        }
        self.store.outbox_done(&done).await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(handled),
        }
    }

    /// One commit's reports, in order; the ids of those sent.
    async fn send_commit(
        &self,
        items: Vec<OutboxItem>,
    ) -> Result<Vec<i64>, crate::store::StoreError> {
        let mut sent_ids = Vec::new();
        for item in items {
            let sent = match item.kind {
                OutboxKind::Status => self.send(&item).await,
                OutboxKind::Checks | OutboxKind::Lint => self.send_checks(&item).await,
            };
            match sent {
                Ok(()) => {
                    if item.kind == OutboxKind::Status {
                        self.metrics.inc(&self.metrics.statuses_sent);
                    }
                    sent_ids.push(item.id);
                }
                Err(e) => {
                    self.metrics.inc(&self.metrics.status_failures);
                    let max = self.config.github.max_backoff_seconds.max(1) * 1000;
                    let backoff = (500u64 << item.attempts.clamp(0, 20)).min(max);
                    tracing::warn!(build = item.build_id, attempts = item.attempts + 1, error = %e, "status report failed; retrying in {backoff} ms");
                    self.store
                        .outbox_retry(item.id, now_ms() + backoff as i64, &e.to_string())
                        .await?;
                }
            }
        }
        Ok(sent_ids)
    }

    /// Check runs need a GitHub App's installation token; with any other credential (or none)
    /// there are statuses only, and the item is done.
    async fn send_checks(&self, item: &OutboxItem) -> Result<(), ReportError> {
        if !valid_repo(&item.repo) {
            return Err(ReportError::NotARepository);
        }
        let Some(credential @ Credential::Installation(_)) =
            self.auth.credential(&item.repo).await?
        else {
            return Ok(());
        };
        match item.kind {
            OutboxKind::Lint => self.send_lint(item, &credential).await,
            _ => self.sync_checks(item, &credential).await,
        }
    }

    async fn send(&self, item: &OutboxItem) -> Result<(), ReportError> {
        let credential = self.auth.credential(&item.repo).await?;
        if !valid_repo(&item.repo) {
            return Err(ReportError::NotARepository);
        }
        let state = match item.state.as_str() {
            s @ ("pending" | "success" | "failure") => s,
            _ => "error",
        };
        let body = serde_json::json!({
            "state": state,
            "target_url": format!("{}/builds/{}", self.public_url.trim_end_matches('/'), item.build_id),
            "description": item.description,
            "context": self.config.github.status_context,
        });
        let path = format!("/repos/{}/statuses/{}", item.repo, item.sha);
        let answer = self
            .auth
            .api()
            .send(
                Method::POST,
                &path,
                credential
                    .as_ref()
                    .map(Credential::authorization)
                    .as_deref(),
                Some(&body),
            )
            .await?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        if answer.status == 401
            && let Some(c) = &credential
        {
            self.auth.forget(c).await;
        }
        Err(ReportError::Refused {
            status: answer.status,
            message: answer.message().chars().take(480).collect(),
        })
    }
}

/// `owner/name`, nothing that could climb out of `/repos/` in a path.
fn valid_repo(repo: &str) -> bool {
    repo.split_once('/').is_some_and(|(o, n)| {
        !o.is_empty() && !n.is_empty() && !n.contains('/') && o != ".." && n != ".."
    })
}
