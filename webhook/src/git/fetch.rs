//! Fetching into a repository: the options every fetch uses and the mirror's fetch of the refs
//! a build needs.

use super::GitError;
use git2::{FetchOptions, RemoteCallbacks, Repository};

/// Fetch options that offer `token` once (as GitHub's `x-access-token` user) and fetch no tags.
pub(super) fn fetch_options(token: Option<&str>) -> FetchOptions<'static> {
    let mut callbacks = RemoteCallbacks::new();
    if let Some(token) = token {
        let token = token.to_string();
        let mut offered = false;
        callbacks.credentials(move |_, _, _| {
            if std::mem::replace(&mut offered, true) {
                return Err(git2::Error::from_str("the configured token was refused"));
            }
            git2::Cred::userpass_plaintext("x-access-token", &token)
        });
    }
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks);
    opts.download_tags(git2::AutotagOption::None);
    opts
}

pub(super) fn fetch(
    repo: &Repository,
    url: &str,
    refs: &[String],
    token: Option<&str>,
) -> Result<(), GitError> {
    let mut remote = repo.remote_anonymous(url)?;
    let mut opts = fetch_options(token);
    let specs: Vec<String> = refs.iter().map(|r| format!("+{r}:{r}")).collect();
    remote.fetch(&specs, Some(&mut opts), None)?;
    for r in refs {
        if repo.refname_to_id(r).is_err() {
            return Err(GitError::MissingRef(r.clone()));
        }
    }
    Ok(())
}
