//! Reporting to GitHub: commit statuses sent from the persisted outbox, retried with backoff.
//!
//! A status is first written to the outbox in the same transaction as the state change it
//! reports, so it cannot be lost; this task sends it. Reports for one commit go out in order, and
//! a report that a newer one for the same commit supersedes is dropped unsent, so a late retry of
//! "pending" can never overwrite a final state.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{OutboxItem, Store, now_ms};
use octocrab::models::StatusState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Sends the outbox.
pub struct Reporter {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    public_url: String,
    clients: HashMap<Option<String>, octocrab::Octocrab>,
    metrics: Arc<Metrics>,
}

impl Reporter {
    /// A reporter linking statuses to builds under `public_url`.
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        public_url: String,
        metrics: Arc<Metrics>,
    ) -> Reporter {
        Reporter {
            store,
            config,
            public_url,
            clients: HashMap::new(),
            metrics,
        }
    }

    /// Sends due reports until `shutdown`; `wake` shortens the wait after a new report.
    pub async fn run(mut self, wake: Arc<Notify>, shutdown: CancellationToken) {
        loop {
            let sent = match self.send_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "status outbox");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn send_due(&mut self) -> Result<usize, crate::store::StoreError> {
        let due = self.store.outbox_due(64).await?;
        let mut handled = 0;
        for item in due {
            handled += 1;
            if self.store.outbox_superseded(&item).await? {
                self.store.outbox_done(item.id).await?;
                continue;
            }
            match self.send(&item).await {
                Ok(()) => {
                    self.metrics.inc(&self.metrics.statuses_sent);
                    self.store.outbox_done(item.id).await?;
                }
                Err(e) => {
                    self.metrics.inc(&self.metrics.status_failures);
                    let max = self.config.github.max_backoff_seconds.max(1) * 1000;
                    let backoff = (500u64 << item.attempts.clamp(0, 20)).min(max);
                    tracing::warn!(build = item.build_id, attempts = item.attempts + 1, error = %e, "status report failed; retrying in {backoff} ms");
                    self.store
                        .outbox_retry(item.id, now_ms() + backoff as i64, &e)
                        .await?;
                }
            }
        }
        Ok(handled)
    }

    async fn send(&mut self, item: &OutboxItem) -> Result<(), String> {
        let token = self.config.token_for(&item.repo);
        let client = match self.clients.get(&token) {
            Some(c) => c.clone(),
            None => {
                let mut b = octocrab::Octocrab::builder()
                    .base_uri(self.config.github.api_url.as_str())
                    .map_err(|e| e.to_string())?
                    .set_connect_timeout(Some(Duration::from_secs(10)))
                    .set_read_timeout(Some(Duration::from_secs(30)));
                if let Some(t) = &token {
                    b = b.personal_token(t.clone());
                }
                let c = b.build().map_err(|e| e.to_string())?;
                self.clients.insert(token, c.clone());
                c
            }
        };
        let (owner, name) = item
            .repo
            .split_once('/')
            .ok_or("repository is not owner/name")?;
        let state = match item.state.as_str() {
            "pending" => StatusState::Pending,
            "success" => StatusState::Success,
            "failure" => StatusState::Failure,
            _ => StatusState::Error,
        };
        client
            .repos(owner, name)
            .create_status(item.sha.clone(), state)
            .context(self.config.github.status_context.clone())
            .target(format!(
                "{}/builds/{}",
                self.public_url.trim_end_matches('/'),
                item.build_id
            ))
            .description(item.description.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}").chars().take(500).collect())
    }
}
