//! Upkeep of the data directory: old builds, their logs and merge refs, and old deliveries are
//! pruned in the background (at start-up, then every `[retention] every_minutes`), so the
//! database and the mirrors stop growing forever. What was removed is logged.

use crate::config::RetentionSettings;
use crate::git::Mirrors;
use crate::store::{Pruned, Store, StoreError, now_ms};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Prunes once: the store first, then the merge refs of the builds it removed.
pub async fn prune_once(
    store: &Arc<dyn Store>,
    mirrors: &Arc<Mirrors>,
    settings: &RetentionSettings,
) -> Result<Pruned, StoreError> {
    let older_than = (settings.days > 0).then(|| now_ms() - (settings.days * 86_400_000) as i64);
    let keep = (settings.builds_per_repo > 0).then_some(settings.builds_per_repo as i64);
    if older_than.is_none() && keep.is_none() {
        return Ok(Pruned::default());
    }
    let pruned = store.prune(older_than, keep).await?;
    let mut by_repo: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (id, repo) in &pruned.builds {
        by_repo.entry(repo.clone()).or_default().push(*id);
    }
    let mut refs = 0;
    for (repo, ids) in by_repo {
        let mirrors = mirrors.clone();
        let removed =
            tokio::task::spawn_blocking(move || mirrors.remove_build_refs(&repo, &ids)).await;
        match removed {
            Ok(Ok(n)) => refs += n,
            Ok(Err(e)) => tracing::warn!(error = %e, "removing merge refs of pruned builds"),
            Err(e) => tracing::warn!(error = %e, "removing merge refs of pruned builds"),
        }
    }
    if !pruned.builds.is_empty() || pruned.deliveries > 0 {
        let ids: Vec<i64> = pruned.builds.iter().map(|(id, _)| *id).collect();
        tracing::info!(
            builds = ids.len(),
            build_ids = ?ids,
            jobs = pruned.jobs,
            log_chunks = pruned.log_chunks,
            merge_refs = refs,
            deliveries = pruned.deliveries,
            days = settings.days,
            builds_per_repo = settings.builds_per_repo,
            "pruned old builds and deliveries"
        );
    }
    Ok(pruned)
}

/// Prunes at start-up and then periodically until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    mirrors: Arc<Mirrors>,
    settings: RetentionSettings,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(settings.every_minutes.max(1) * 60);
    loop {
        if let Err(e) = prune_once(&store, &mirrors, &settings).await {
            tracing::error!(error = %e, "pruning old builds");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
