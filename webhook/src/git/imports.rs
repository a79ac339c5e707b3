//! Files that a pipeline file's `import:` names, read from the mirrors: the build's own
//! repository at its commit (no fetch), or a ref of a repository fetched into that repository's
//! mirror under the same [`FetchPolicy`](super::FetchPolicy) and token rules as every fetch.

use super::GitError;
use super::fetch::fetch_specs;
use super::mirror::Mirrors;
use super::policy::Scope;
use git2::{Oid, Repository};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where the imported refs of a mirror are kept (`refs/slipway/imports/<ref>`).
const IMPORT_REFS: &str = "refs/slipway/imports";

fn blob_at(repo: &Repository, commit: Oid, path: &str) -> Result<Vec<u8>, GitError> {
    let tree = repo.find_commit(commit)?.tree()?;
    let entry = tree
        .get_path(std::path::Path::new(path))
        .map_err(|_| GitError::MissingFile(path.to_owned()))?;
    let blob = repo
        .find_blob(entry.id())
        .map_err(|_| GitError::MissingFile(path.to_owned()))?;
    Ok(blob.content().to_vec())
}

impl Mirrors {
    /// `path` at `commit` (the build's) in `repo`'s mirror, which the build's preparation
    /// already fetched.
    pub fn read_at(&self, repo: &str, commit: &str, path: &str) -> Result<Vec<u8>, GitError> {
        // Upkeep deletes packs: it waits until no reader of this mirror is left.
        let objects = self.objects_lock(repo);
        let _reading = objects.read().expect("mirror objects lock");
        let mirror = Repository::open_bare(self.path(repo))?;
        blob_at(&mirror, Oid::from_str(commit)?, path)
    }

    /// `path` at `git_ref` (a branch, tag or commit; `None`: the remote's default branch) of
    /// `repo`, fetched from `url` into its mirror. `token` goes to `url` only.
    pub fn fetch_file(
        &self,
        repo: &str,
        url: &str,
        token: Option<&str>,
        git_ref: Option<&str>,
        path: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, GitError> {
        let lock = self.lock(repo);
        let _guard = lock.lock().expect("mirror lock");
        let dir = self.path(repo);
        let mirror = match Repository::open_bare(&dir) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(&dir)?;
                Repository::init_bare(&dir)?
            }
        };
        // A full commit id the mirror already has needs no fetch.
        if let Some(id) = git_ref
            .filter(|r| is_full_id(r))
            .and_then(|r| Oid::from_str(r).ok())
            && mirror.find_commit(id).is_ok()
        {
            return blob_at(&mirror, id, path);
        }
        let wanted = git_ref.unwrap_or("HEAD");
        let local = format!(
            "{IMPORT_REFS}/{}",
            wanted
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                    c
                } else {
                    '_'
                })
                .collect::<String>()
                .replace("..", "_")
        );
        let scope = Arc::new(Scope::new(&self.policy, cancel, token.map(|t| (url, t))));
        fetch_specs(&mirror, url, &[format!("+{wanted}:{local}")], &scope)?;
        let commit = mirror
            .refname_to_id(&local)
            .map_err(|_| GitError::MissingRef(wanted.to_owned()))?;
        let commit = mirror.find_object(commit, None)?.peel_to_commit()?.id();
        blob_at(&mirror, commit, path)
    }
}

fn is_full_id(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}
