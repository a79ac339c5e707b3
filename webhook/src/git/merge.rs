//! A pull request's head merged into its base in the mirror, as GitHub's merge ref would be.

use super::GitError;
use git2::{Oid, Repository, Signature, Time};
use std::fmt::Write as _;

/// The commit the event named when the mirror has it, else the ref's tip (the event is older
/// than the ref, e.g. a redelivery after another push).
pub(super) fn resolve(
    repo: &Repository,
    git_ref: &str,
    sha: &str,
    log: &mut String,
) -> Result<Oid, GitError> {
    if let Ok(oid) = Oid::from_str(sha)
        && repo.find_commit(oid).is_ok()
    {
        return Ok(oid);
    }
    let tip = repo
        .refname_to_id(git_ref)
        .map_err(|_| GitError::MissingRef(git_ref.to_string()))?;
    let _ = writeln!(log, "{sha} is not in {git_ref}; building its tip {tip}");
    Ok(tip)
}

/// Merges `head` into `base`. The merge commit is reproducible: its signature's time is the
/// later of the two commits', so every machine merging the same pair makes the same commit (a
/// job claimed on a machine that did not prepare its build merges again to get it).
pub(super) fn merge(repo: &Repository, base: Oid, head: Oid) -> Result<Oid, GitError> {
    let base_commit = repo.find_commit(base)?;
    let head_commit = repo.find_commit(head)?;
    if repo.graph_descendant_of(head, base)? || head == base {
        // Fast-forward: the head already contains the base; build it as GitHub's merge ref would
        // still be a merge commit, but its tree is the head's, so the head itself is equivalent.
        return Ok(head);
    }
    let mut index = repo.merge_commits(&base_commit, &head_commit, None)?;
    if index.has_conflicts() {
        let mut paths: Vec<String> = index
            .conflicts()?
            .filter_map(|c| c.ok())
            .filter_map(|c| c.our.or(c.their).or(c.ancestor))
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        paths.sort();
        paths.dedup();
        return Err(GitError::Conflict(paths));
    }
    let tree_id = index.write_tree_to(repo)?;
    let tree = repo.find_tree(tree_id)?;
    let when = base_commit
        .time()
        .seconds()
        .max(head_commit.time().seconds());
    let sig = Signature::new("Slipway", "slipway@localhost", &Time::new(when, 0))?;
    let message = format!("Merge {head} into {base}\n");
    Ok(repo.commit(
        None,
        &sig,
        &sig,
        &message,
        &tree,
        &[&base_commit, &head_commit],
    )?)
}
