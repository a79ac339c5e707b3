//! Submodules of a job's workspace: URLs resolved as git does, fetched and checked out at the
//! commits the superproject records, recursively.

use super::GitError;
use super::fetch::{fetch_options, scoped};
use super::policy::{FetchPolicy, Scope, same_url};
use super::workspace::{Remote, write_shallow};
use git2::Repository;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What checking submodules out needs besides the repository: where the superproject came from
/// (tokens by exact URL), the fetch policy, the cancellation and the depth.
pub(super) struct Fetching<'a> {
    pub remote: Remote<'a>,
    pub policy: &'a FetchPolicy,
    pub cancel: &'a CancellationToken,
    pub depth: Option<u32>,
}

impl Fetching<'_> {
    /// The token for a submodule at `url`: the build's own token only for the build's own exact
    /// URL, another served repository's own token for its exact URL, nothing for anything else.
    fn token_for(&self, url: &str) -> Option<String> {
        if same_url(url, self.remote.url) {
            return self.remote.token.map(str::to_string);
        }
        self.remote.served.token_for(url)
    }

    /// A fetch scope for one submodule: its own time and size budget.
    fn scope(&self, url: &str) -> Arc<Scope> {
        let token = self.token_for(url);
        Arc::new(Scope::new(
            self.policy,
            self.cancel,
            token.as_deref().map(|t| (url, t)),
        ))
    }
}

/// Initialises and checks out every submodule of `repo` at the commit its superproject records,
/// fetching each from its URL (a relative URL is resolved against `base_url`, as git does), then
/// does the same inside it, like `git submodule update --init --recursive`.
///
/// Each submodule's fetch is a fetch of its own under the policy: its own time and size limits,
/// its address checked, and a token only for an exact URL (see [`Fetching::token_for`]).
///
/// With a `depth`, each submodule is shallow like `git submodule update --depth N`: the N
/// generations of commits from the recorded one, fetched with that depth from a remote (the
/// commit asked for by id, else the remote's HEAD), or cut from a local repository directly
/// (libgit2's local transport cannot fetch shallow).
pub(super) fn update_submodules(
    repo: &Repository,
    base_url: &str,
    how: &Fetching<'_>,
    level: usize,
) -> Result<(), GitError> {
    const MAX_NESTING: usize = 8;
    if level >= MAX_NESTING {
        return Ok(());
    }
    for mut sm in repo.submodules()? {
        let name = sm.name().unwrap_or_default().to_string();
        // Listed in .gitmodules but not recorded in the commit, or `update = none`: git skips it.
        if sm.index_id().is_none() || sm.update_strategy() == git2::SubmoduleUpdate::None {
            continue;
        }
        let Some(url) = sm.url()?.map(str::to_string) else {
            return Err(GitError::Submodule(name, "it has no URL".into()));
        };
        let url = resolve_url(base_url, &url);
        if is_local(&url) && !is_local(base_url) {
            // A pull request must not be able to read the server's own files or mirrors.
            return Err(GitError::Submodule(
                name,
                format!("{url}: a local URL is refused for a repository fetched from {base_url}"),
            ));
        }
        repo.config()?
            .set_str(&format!("submodule.{name}.url"), &url)?;
        let failed = |e: GitError| {
            let message = match e {
                GitError::Git(e) => e.message().to_string(),
                other => other.to_string(),
            };
            let message = match message.strip_prefix(&format!("{url}: ")) {
                Some(rest) => rest.to_string(),
                None => message,
            };
            GitError::Submodule(name.clone(), format!("{url}: {message}"))
        };
        let scope = how.scope(&url);
        match how.depth {
            Some(depth) => shallow_submodule(&mut sm, &url, &scope, depth).map_err(failed)?,
            None => {
                let mut opts = git2::SubmoduleUpdateOptions::new();
                opts.fetch(fetch_options(&scope));
                scoped(&scope, || sm.update(true, Some(&mut opts))).map_err(failed)?;
            }
        }
        update_submodules(&sm.open()?, &url, how, level + 1)?;
    }
    Ok(())
}

/// Checks submodule `sm` out from `url` with `depth` generations of history from the commit its
/// superproject records; see [`update_submodules`].
fn shallow_submodule(
    sm: &mut git2::Submodule<'_>,
    url: &str,
    scope: &Arc<Scope>,
    depth: u32,
) -> Result<(), GitError> {
    let Some(oid) = sm.index_id() else {
        return Ok(());
    };
    sm.init(false)?;
    let sub = sm.repo_init(true)?;
    // libgit2 gives the new repository an `origin`; it must name the resolved URL.
    if sub.find_remote("origin").is_ok() {
        sub.remote_set_url("origin", url)?;
    } else {
        sub.remote("origin", url)?;
    }
    if is_local(url) {
        let path = url.strip_prefix("file://").unwrap_or(url);
        write_shallow(&Repository::open(path)?, oid, depth, &sub)?;
    } else {
        let mut remote = sub.find_remote("origin")?;
        let depth = i32::try_from(depth).unwrap_or(i32::MAX);
        let mut by_id = fetch_options(scope);
        by_id.depth(depth);
        // Servers that refuse a commit asked for by id get asked for their HEAD instead; a
        // refused address, a limit or a cancel is not worth a second try.
        let first = scoped(scope, || {
            remote.fetch(&[oid.to_string()], Some(&mut by_id), None)
        });
        if first.is_err() && scope.stopped().is_some() {
            return first;
        }
        if first.is_err() || sub.find_commit(oid).is_err() {
            let mut head = fetch_options(scope);
            head.depth(depth);
            scoped(scope, || {
                remote.fetch(&["+HEAD:refs/remotes/origin/HEAD"], Some(&mut head), None)
            })?;
        }
    }
    sub.find_commit(oid)
        .map_err(|_| git2::Error::from_str(&format!("commit {oid} is not within depth {depth}")))?;
    sub.set_head_detached(oid)?;
    sub.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
    Ok(())
}

/// Whether `url` names this machine's file system (`file://`, or a path) rather than a remote.
fn is_local(url: &str) -> bool {
    if let Some((scheme, _)) = url.split_once("://") {
        return scheme.eq_ignore_ascii_case("file");
    }
    // scp-like `host:path` has its ':' before any '/'.
    match (url.find(':'), url.find('/')) {
        (Some(colon), Some(slash)) => slash < colon,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Resolves a submodule URL as git does: `./x` and `../x` are relative to the superproject's
/// URL (each `../` drops one path component of it), anything else is used as written.
pub fn resolve_url(base: &str, url: &str) -> String {
    if !(url.starts_with("./") || url.starts_with("../")) {
        return url.to_string();
    }
    let mut base = base.trim_end_matches('/').to_string();
    let mut sep = '/';
    let mut rest = url;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("../") {
            rest = r;
            if let Some(i) = base.rfind('/') {
                base.truncate(i);
            } else if let Some(i) = base.rfind(':') {
                // scp-like `host:path`: going above the path leaves `host:`.
                base.truncate(i);
                sep = ':';
            } else {
                base.clear();
            }
        } else {
            break;
        }
    }
    format!("{base}{sep}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_submodule_urls_resolve_against_the_clone_url() {
        let gh = "https://github.com/acme/app.git";
        assert_eq!(
            resolve_url(gh, "../lib.git"),
            "https://github.com/acme/lib.git"
        );
        assert_eq!(
            resolve_url(gh, "../../other/lib"),
            "https://github.com/other/lib"
        );
        assert_eq!(
            resolve_url(gh, "./sub"),
            "https://github.com/acme/app.git/sub"
        );
        assert_eq!(
            resolve_url(&format!("{gh}/"), "../lib"),
            "https://github.com/acme/lib"
        );
        assert_eq!(
            resolve_url("git@github.com:acme/app.git", "../lib.git"),
            "git@github.com:acme/lib.git"
        );
        assert_eq!(
            resolve_url("git@host:app.git", "../lib.git"),
            "git@host:lib.git"
        );
        assert_eq!(
            resolve_url("file:///srv/git/app.git", "../lib.git"),
            "file:///srv/git/lib.git"
        );
        assert_eq!(
            resolve_url(gh, "https://example.org/x.git"),
            "https://example.org/x.git"
        );
    }

    #[test]
    fn local_urls_are_told_from_remote_ones() {
        for local in ["file:///srv/x.git", "/srv/x.git", "../x.git", "x", "./a:b"] {
            assert!(is_local(local), "{local}");
        }
        for remote in [
            "https://github.com/a/b",
            "git@github.com:a/b.git",
            "host:b",
            "ssh://h/x",
        ] {
            assert!(!is_local(remote), "{remote}");
        }
    }
}
