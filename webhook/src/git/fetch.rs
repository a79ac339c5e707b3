//! Fetching into a repository: every fetch runs under a [`Scope`] (limits, cancellation, the
//! one URL its token goes to), and the mirror's fetch of the refs a build needs.

use super::GitError;
use super::policy::Scope;
use super::transport::with_scope;
use git2::{FetchOptions, RemoteCallbacks, Repository};
use std::sync::Arc;

/// Fetch options that fetch no tags and stop a fetch libgit2 runs itself (the local transport,
/// `file://`) once `scope` is canceled, late or over its size; network transports check the
/// scope on every read.
pub(super) fn fetch_options(scope: &Arc<Scope>) -> FetchOptions<'static> {
    let mut callbacks = RemoteCallbacks::new();
    let watched = scope.clone();
    callbacks.transfer_progress(move |p| {
        watched.check().is_ok() && watched.total_is(p.received_bytes() as u64).is_ok()
    });
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks);
    opts.download_tags(git2::AutotagOption::None);
    opts
}

/// Runs the libgit2 fetch `f` under `scope`. When a limit or a cancel stopped it, the error
/// says which, whatever libgit2 made of it.
pub(super) fn scoped<T>(
    scope: &Arc<Scope>,
    f: impl FnOnce() -> Result<T, git2::Error>,
) -> Result<T, GitError> {
    with_scope(scope, f).map_err(|e| match scope.stopped() {
        Some(why) => GitError::Stopped(why),
        None => e.into(),
    })
}

/// Fetches `specs` (refspecs) from `url` into `repo`.
pub(super) fn fetch_specs(
    repo: &Repository,
    url: &str,
    specs: &[String],
    scope: &Arc<Scope>,
) -> Result<(), GitError> {
    let mut remote = repo.remote_anonymous(url)?;
    let mut opts = fetch_options(scope);
    scoped(scope, || remote.fetch(specs, Some(&mut opts), None))
}

/// Fetches `refs` (full names, each into itself) from `url` into `repo`.
pub(super) fn fetch(
    repo: &Repository,
    url: &str,
    refs: &[String],
    scope: &Arc<Scope>,
) -> Result<(), GitError> {
    let mut remote = repo.remote_anonymous(url)?;
    let mut opts = fetch_options(scope);
    let specs: Vec<String> = refs.iter().map(|r| format!("+{r}:{r}")).collect();
    scoped(scope, || remote.fetch(&specs, Some(&mut opts), None))?;
    for r in refs {
        if repo.refname_to_id(r).is_err() {
            return Err(GitError::MissingRef(r.clone()));
        }
    }
    Ok(())
}
