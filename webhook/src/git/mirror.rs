//! The mirrors: one bare repository per served repository, and preparing a build's sources in
//! it (fetch, merge, pipeline file).

use super::fetch::fetch;
use super::merge::{merge, resolve};
use super::policy::{FetchPolicy, Scope};
use super::upkeep::Upkeep;
use super::{GitError, PIPELINE_FILES, Sources};
use crate::event::NewBuild;
use git2::{Oid, Repository};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use tokio_util::sync::CancellationToken;

/// How far back a pull request's base is searched for the commit another machine merged its
/// head into: the base rarely moves more than a few commits between a build's preparation and
/// its last job.
const BASES_TRIED: usize = 20;

/// Mirrors under one directory, one lock per repository so fetches into one mirror never overlap.
#[derive(Debug)]
pub struct Mirrors {
    pub(super) root: PathBuf,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Per repository: checkouts read the mirror's object files without the fetch lock, so
    /// they hold this shared while upkeep, which deletes packs, holds it exclusively.
    objects: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    pub(super) upkeep: Upkeep,
    /// What every fetch into these mirrors and their workspaces is held to.
    pub(super) policy: FetchPolicy,
    /// Set once the missing git CLI has been logged, so it is logged once per process.
    pub(super) git_missing_logged: AtomicBool,
}

impl Mirrors {
    /// Mirrors live in `root/<owner>/<name>.git`.
    pub fn new(root: PathBuf) -> Mirrors {
        Mirrors::with_upkeep(root, Upkeep::default())
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

    pub(super) fn lock(&self, repo: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .expect("mirror lock table")
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// Deletes the merge refs (`refs/slipway/builds/<id>`) of pruned builds, under the mirror's
    /// lock; returns how many there were. A repository without a mirror has none.
    pub fn remove_build_refs(&self, repo: &str, builds: &[i64]) -> Result<usize, GitError> {
        let lock = self.lock(repo);
        let _guard = lock.lock().expect("mirror lock");
        let path = self.path(repo);
        if !path.exists() {
            return Ok(0);
        }
        let mirror = Repository::open_bare(&path)?;
        let mut removed = 0;
        for id in builds {
            if let Ok(mut r) = mirror.find_reference(&format!("refs/slipway/builds/{id}")) {
                r.delete()?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// These mirrors with every fetch held to `policy` (addresses, time and size limits).
    pub fn with_policy(mut self, policy: FetchPolicy) -> Mirrors {
        self.policy = policy;
        self
    }

    /// Fetches what `spec` needs into the mirror, merges a PR's head into its base, keeps the
    /// result under `refs/slipway/builds/<id>` and reads the pipeline file from it.
    ///
    /// The fetch is held to the mirrors' [`FetchPolicy`]; `token` is sent to `clone_url` only,
    /// and `cancel` stops the fetch within the transports' 200 ms tick.
    pub fn prepare(
        &self,
        build_id: i64,
        spec: &NewBuild,
        clone_url: &str,
        token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Sources, GitError> {
        let lock = self.lock(&spec.repo);
        let _guard = lock.lock().expect("mirror lock");
        let repo = self.open_or_init(&spec.repo)?;
        let mut log = String::new();
        let started = std::time::Instant::now();
        let refs = self.fetch_refs(&repo, spec, clone_url, token, cancel)?;
        let _ = writeln!(
            log,
            "fetched {} in {} ms",
            refs.join(" "),
            started.elapsed().as_millis()
        );

        let head = resolve(&repo, &spec.head_ref, &spec.head_sha, &mut log)?;
        let people = people(&repo.find_commit(head)?);
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
            people,
        })
    }

    /// Makes sure the mirror holds `commit`, the commit build `spec` was prepared at, perhaps by
    /// another machine sharing the store (mirrors are per machine): when it is missing, the
    /// build's refs are fetched, and a pull request's head is merged again into its base's tip
    /// or, when the base moved on since, into one of its last commits. Merges are reproducible
    /// ([`merge`]), so the same parents give the same commit.
    pub fn ensure(
        &self,
        spec: &NewBuild,
        commit: &str,
        clone_url: &str,
        token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        let lock = self.lock(&spec.repo);
        let _guard = lock.lock().expect("mirror lock");
        let repo = self.open_or_init(&spec.repo)?;
        let wanted = Oid::from_str(commit)?;
        if repo.find_commit(wanted).is_ok() {
            return Ok(());
        }
        self.fetch_refs(&repo, spec, clone_url, token, cancel)?;
        if repo.find_commit(wanted).is_ok() {
            return Ok(());
        }
        if let Some(base_ref) = &spec.base_ref {
            let head = resolve(&repo, &spec.head_ref, &spec.head_sha, &mut String::new())?;
            let mut base = repo.refname_to_id(base_ref).ok();
            for _ in 0..BASES_TRIED {
                let Some(b) = base else { break };
                if merge(&repo, b, head).ok() == Some(wanted) {
                    return Ok(());
                }
                base = repo.find_commit(b)?.parent_id(0).ok();
            }
        }
        Err(GitError::MissingRef(format!(
            "{commit} (the build's commit, from {} {})",
            spec.head_ref,
            spec.base_ref.as_deref().unwrap_or_default()
        )))
    }

    /// The mirror of `repo`, created empty the first time.
    fn open_or_init(&self, repo: &str) -> Result<Repository, GitError> {
        let path = self.path(repo);
        Ok(match Repository::open_bare(&path) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(&path)?;
                Repository::init_bare(&path)?
            }
        })
    }

    /// Fetches the refs `spec` builds from (its head, a pull request's base); their names.
    fn fetch_refs(
        &self,
        repo: &Repository,
        spec: &NewBuild,
        clone_url: &str,
        token: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, GitError> {
        let mut refs = vec![spec.head_ref.clone()];
        refs.extend(spec.base_ref.clone());
        let scope = Arc::new(Scope::new(
            &self.policy,
            cancel,
            token.map(|t| (clone_url, t)),
        ));
        fetch(repo, clone_url, &refs, &scope)?;
        Ok(refs)
    }

    /// Mirrors in `root` (see [`Mirrors::new`]), compacted as `upkeep` says.
    pub fn with_upkeep(root: PathBuf, upkeep: Upkeep) -> Mirrors {
        Mirrors {
            root,
            locks: Mutex::new(HashMap::new()),
            objects: Mutex::new(HashMap::new()),
            upkeep,
            policy: FetchPolicy::default(),
            git_missing_logged: AtomicBool::new(false),
        }
    }

    /// The lock a checkout holds shared (`read()`) while it reads `repo`'s mirror, so upkeep,
    /// which holds it exclusively, never deletes a pack a checkout is linking or reading.
    pub(super) fn objects_lock(&self, repo: &str) -> Arc<RwLock<()>> {
        self.objects
            .lock()
            .expect("mirror objects lock table")
            .entry(repo.to_string())
            .or_default()
            .clone()
    }
}

/// Who made `commit`, lossily decoded (names and addresses are anyone's bytes).
fn people(commit: &git2::Commit<'_>) -> super::People {
    let (author, committer) = (commit.author(), commit.committer());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    super::People {
        author_name: text(author.name_bytes()),
        author_email: text(author.email_bytes()),
        committer_name: text(committer.name_bytes()),
        committer_email: text(committer.email_bytes()),
        committed_at: Some(committer.when().seconds()),
    }
}
