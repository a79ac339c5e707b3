//! Git: one bare mirror per repository, incremental fetches of only the refs a build needs, the
//! local merge of a pull request's head into its base, and job workspaces checked out from it.
//!
//! All of it is blocking libgit2 work; callers run it on the blocking thread pool, never on the
//! request path. `docs/operations.md` explains why libgit2 was kept (see the P5 benchmark).

use crate::event::NewBuild;
use git2::{FetchOptions, Oid, RemoteCallbacks, Repository, Signature};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why preparing sources failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// libgit2 reported an error.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The file system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The head does not merge cleanly into the base.
    #[error("merge conflict in {}", .0.join(", "))]
    Conflict(Vec<String>),
    /// A ref the build needs is not on the remote.
    #[error("{0} was not found on the remote")]
    MissingRef(String),
}

/// The sources of a build, ready to plan and check out.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The commit to build: the merge commit for PRs, the pushed commit otherwise.
    pub commit: String,
    /// The pipeline file's name and bytes at that commit, if there is one.
    pub pipeline: Option<(String, Vec<u8>)>,
    /// What happened, for the build's log.
    pub log: String,
}

/// The pipeline files looked for, in order.
pub const PIPELINE_FILES: [&str; 2] = [".slipway.yml", ".travis.yml"];

/// Mirrors under one directory, one lock per repository so fetches into one mirror never overlap.
#[derive(Debug)]
pub struct Mirrors {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Mirrors {
    /// Mirrors live in `root/<owner>/<name>.git`.
    pub fn new(root: PathBuf) -> Mirrors {
        Mirrors {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The mirror's directory.
    pub fn path(&self, repo: &str) -> PathBuf {
        let safe: String = repo
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .replace("..", "_");
        self.root.join(format!("{safe}.git"))
    }

    fn lock(&self, repo: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .expect("mirror lock table")
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// Fetches what `spec` needs into the mirror, merges a PR's head into its base, keeps the
    /// result under `refs/slipway/builds/<id>` and reads the pipeline file from it.
    pub fn prepare(
        &self,
        build_id: i64,
        spec: &NewBuild,
        clone_url: &str,
        token: Option<&str>,
    ) -> Result<Sources, GitError> {
        let lock = self.lock(&spec.repo);
        let _guard = lock.lock().expect("mirror lock");
        let path = self.path(&spec.repo);
        let repo = match Repository::open_bare(&path) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(&path)?;
                Repository::init_bare(&path)?
            }
        };
        let mut log = String::new();
        let mut refs = vec![spec.head_ref.clone()];
        refs.extend(spec.base_ref.clone());
        let started = std::time::Instant::now();
        fetch(&repo, clone_url, &refs, token)?;
        let _ = writeln!(
            log,
            "fetched {} in {} ms",
            refs.join(" "),
            started.elapsed().as_millis()
        );

        let head = resolve(&repo, &spec.head_ref, &spec.head_sha, &mut log)?;
        let commit = match &spec.base_ref {
            None => head,
            Some(base_ref) => {
                let base = repo
                    .refname_to_id(base_ref)
                    .map_err(|_| GitError::MissingRef(base_ref.clone()))?;
                let merged = merge(&repo, base, head)?;
                let _ = writeln!(log, "merged {head} into {base_ref} ({base}): {merged}");
                merged
            }
        };
        repo.reference(
            &format!("refs/slipway/builds/{build_id}"),
            commit,
            true,
            "slipway build",
        )?;
        let tree = repo.find_commit(commit)?.tree()?;
        let mut pipeline = None;
        for name in PIPELINE_FILES {
            if let Some(entry) = tree.get_name(name) {
                let blob = repo.find_blob(entry.id())?;
                pipeline = Some((name.to_string(), blob.content().to_vec()));
                break;
            }
        }
        Ok(Sources {
            commit: commit.to_string(),
            pipeline,
            log,
        })
    }

    /// Checks `commit` out into `dest` as a standalone repository whose objects are hard links
    /// into the mirror (no copy, no network), with HEAD detached at the commit.
    pub fn checkout(
        &self,
        repo: &str,
        commit: &str,
        dest: &Path,
        submodules: bool,
    ) -> Result<(), GitError> {
        let mirror = self.path(repo);
        if dest.exists() {
            std::fs::remove_dir_all(dest)?;
        }
        let ws = git2::build::RepoBuilder::new()
            .clone_local(git2::build::CloneLocal::Local)
            .clone(mirror.to_str().unwrap_or_default(), dest)?;
        let oid = Oid::from_str(commit)?;
        ws.set_head_detached(oid)?;
        ws.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
        if submodules {
            for mut sm in ws.submodules()? {
                sm.update(true, None)?;
            }
        }
        Ok(())
    }
}

fn fetch(
    repo: &Repository,
    url: &str,
    refs: &[String],
    token: Option<&str>,
) -> Result<(), GitError> {
    let mut remote = repo.remote_anonymous(url)?;
    let mut callbacks = RemoteCallbacks::new();
    if let Some(token) = token {
        let token = token.to_string();
        callbacks
            .credentials(move |_, _, _| git2::Cred::userpass_plaintext("x-access-token", &token));
    }
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks);
    opts.download_tags(git2::AutotagOption::None);
    let specs: Vec<String> = refs.iter().map(|r| format!("+{r}:{r}")).collect();
    remote.fetch(&specs, Some(&mut opts), None)?;
    for r in refs {
        if repo.refname_to_id(r).is_err() {
            return Err(GitError::MissingRef(r.clone()));
        }
    }
    Ok(())
}

/// The commit the event named when the mirror has it, else the ref's tip (the event is older
/// than the ref, e.g. a redelivery after another push).
fn resolve(repo: &Repository, git_ref: &str, sha: &str, log: &mut String) -> Result<Oid, GitError> {
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

fn merge(repo: &Repository, base: Oid, head: Oid) -> Result<Oid, GitError> {
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
    let sig = Signature::now("Slipway", "slipway@localhost")?;
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
