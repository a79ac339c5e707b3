//! Git: one bare mirror per repository, incremental fetches of only the refs a build needs, the
//! local merge of a pull request's head into its base, and job workspaces checked out from it.
//!
//! All of it is blocking libgit2 work; callers run it on the blocking thread pool, never on the
//! request path. `docs/operations.md` explains why libgit2 was kept (see the P5 benchmark).

use crate::event::NewBuild;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use git2::{FetchOptions, Oid, RemoteCallbacks, Repository, Signature};
use sha1::{Digest as _, Sha1};
use slipway_pipelines::plan::Git;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    /// A submodule could not be checked out.
    #[error("submodule {0}: {1}")]
    Submodule(String, String),
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
    /// Per repository: checkouts read the mirror's object files without the fetch lock, so
    /// they hold this shared while upkeep, which deletes packs, holds it exclusively.
    objects: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    upkeep: Upkeep,
    /// Set once the missing git CLI has been logged, so it is logged once per process.
    git_missing_logged: AtomicBool,
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

    /// Checks `commit` out into `dest` as the job's workspace: a standalone repository (nothing
    /// in it points back at the mirror, so it can be copied into a container) whose `origin` is
    /// `remote.url`, HEAD detached at the commit, history cut to `git.depth` and submodules
    /// checked out when `git.submodules` is on (shallow to `git.submodules_depth` if set). With
    /// `git.clone` off, `dest` is left an empty directory.
    ///
    /// With a depth of N the workspace is shallow like `git clone --depth N`: its objects are
    /// the N generations of commits from `commit` and their trees, written as one new pack, and
    /// `.git/shallow` names where history stops. Without a depth (`depth: false`, or 0) the
    /// mirror's object files are hard-linked (copied across file systems), which costs the same
    /// whatever the history but puts all of it in the workspace. Holds the mirror's objects lock
    /// shared, so upkeep never deletes a pack it is reading.
    pub fn checkout(
        &self,
        repo: &str,
        commit: &str,
        dest: &Path,
        git: &Git,
        remote: Remote<'_>,
    ) -> Result<(), GitError> {
        // Upkeep deletes packs: it waits until no checkout of this mirror is reading.
        let objects = self.objects_lock(repo);
        let _reading = objects.read().expect("mirror objects lock");
        if dest.exists() {
            std::fs::remove_dir_all(dest)?;
        }
        std::fs::create_dir_all(dest)?;
        if !git.clone {
            // `git: clone: false`: the job starts in an empty directory (the runner says so).
            return Ok(());
        }
        let mirror = Repository::open_bare(self.path(repo))?;
        let oid = Oid::from_str(commit)?;
        let ws = Repository::init(dest)?;
        if !remote.url.is_empty() {
            ws.remote("origin", remote.url)?;
        }
        let objects = ws.path().join("objects");
        match git.depth {
            Some(depth) if depth > 0 => write_shallow(&mirror, oid, depth, &ws)?,
            _ => link_objects(&mirror.path().join("objects"), &objects)?,
        }
        ws.set_head_detached(oid)?;
        ws.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
        if git.submodules {
            let depth = git.submodules_depth.filter(|&d| d > 0);
            update_submodules(&ws, remote.url, remote.token, depth, 0)?;
        }
        Ok(())
    }
}

/// Writes `depth` generations of history from `tip` into `ws` and records the cut in
/// `.git/shallow`, as `git fetch --depth` leaves a repository.
fn write_shallow(from: &Repository, tip: Oid, depth: u32, ws: &Repository) -> Result<(), GitError> {
    let shallow = write_shallow_pack(from, tip, depth, ws)?;
    if !shallow.is_empty() {
        let list: String = shallow.iter().map(|c| format!("{c}\n")).collect();
        std::fs::write(ws.path().join("shallow"), list)?;
    }
    Ok(())
}

/// Where a job's sources come from: the repository's clone URL, which becomes the workspace's
/// `origin` and the base that relative submodule URLs resolve against, and the token to fetch
/// with. The token is never written into the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    /// The clone URL (the configured override, else the event's).
    pub url: &'a str,
    /// The repository's token, offered only to hosts serving `url`.
    pub token: Option<&'a str>,
}

/// Writes into `ws` one pack holding `depth` generations of commits from `tip` with their trees
/// and blobs; returns the commits at the cut whose parents were left out (the shallow boundary),
/// as `git fetch --depth` records them.
///
/// The pack stores every object whole (zlib, no deltas): libgit2's pack builder searches for
/// deltas, which took most of the checkout's time in the P5 benchmark for a pack a quarter
/// smaller; see `docs/operations.md`.
fn write_shallow_pack(
    mirror: &Repository,
    tip: Oid,
    depth: u32,
    ws: &Repository,
) -> Result<Vec<Oid>, GitError> {
    let mut seen = HashSet::new();
    let mut objects = Vec::new();
    let mut queue = VecDeque::from([(tip, 1u32)]);
    let mut boundary = Vec::new();
    while let Some((id, generation)) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let c = mirror.find_commit(id)?;
        objects.push(id);
        collect_tree(mirror, c.tree_id(), &mut seen, &mut objects)?;
        if generation >= depth {
            if c.parent_count() > 0 {
                boundary.push(id);
            }
            continue;
        }
        queue.extend(c.parent_ids().map(|p| (p, generation + 1)));
    }
    let odb = mirror.odb()?;
    let ws_odb = ws.odb()?;
    let mut writer = ws_odb.packwriter()?;
    let mut hash = Sha1::new();
    let mut buf = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(b"PACK");
    buf.extend_from_slice(&2u32.to_be_bytes());
    let count = u32::try_from(objects.len())
        .map_err(|_| git2::Error::from_str("too many objects for one pack"))?;
    buf.extend_from_slice(&count.to_be_bytes());
    for id in &objects {
        let obj = odb.read(*id)?;
        let kind: u8 = match obj.kind() {
            git2::ObjectType::Commit => 1,
            git2::ObjectType::Tree => 2,
            git2::ObjectType::Blob => 3,
            git2::ObjectType::Tag => 4,
            _ => return Err(git2::Error::from_str("unexpected object type").into()),
        };
        // Entry header: type and size, 4 bits then 7 per byte, high bit = more follows.
        let mut size = obj.len();
        let mut byte = (kind << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            buf.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        buf.push(byte);
        let mut z = ZlibEncoder::new(&mut buf, Compression::default());
        z.write_all(obj.data())?;
        z.finish()?;
        if buf.len() >= 1 << 16 {
            hash.update(&buf);
            writer.write_all(&buf)?;
            buf.clear();
        }
    }
    hash.update(&buf);
    writer.write_all(&buf)?;
    writer.write_all(&hash.finalize())?;
    writer.commit()?;
    boundary.sort();
    Ok(boundary)
}

/// Adds `tree` and everything under it to `objects`, once each (a tree already seen is skipped
/// whole: same id, same contents). Submodule entries are commits of other repositories: left out.
fn collect_tree(
    repo: &Repository,
    tree: Oid,
    seen: &mut HashSet<Oid>,
    objects: &mut Vec<Oid>,
) -> Result<(), GitError> {
    if !seen.insert(tree) {
        return Ok(());
    }
    objects.push(tree);
    for entry in repo.find_tree(tree)?.iter() {
        match entry.kind() {
            Some(git2::ObjectType::Tree) => collect_tree(repo, entry.id(), seen, objects)?,
            Some(git2::ObjectType::Blob) if seen.insert(entry.id()) => objects.push(entry.id()),
            _ => {}
        }
    }
    Ok(())
}

/// Hard-links every pack, index and loose object of `from` into `to` (copies when the two are
/// on different file systems). Object files are never modified in place, so sharing them is safe.
fn link_objects(from: &Path, to: &Path) -> Result<(), GitError> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_pack_dir = name == "pack";
        let is_loose_dir = name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit());
        if !(is_pack_dir || is_loose_dir) || !entry.file_type()?.is_dir() {
            continue;
        }
        let target = to.join(&*name);
        std::fs::create_dir_all(&target)?;
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            let fname = file.file_name();
            let f = fname.to_string_lossy();
            if f.starts_with("tmp")
                || (is_pack_dir && !(f.ends_with(".pack") || f.ends_with(".idx")))
            {
                continue;
            }
            let dst = target.join(&fname);
            if std::fs::hard_link(file.path(), &dst).is_err() {
                std::fs::copy(file.path(), &dst)?;
            }
        }
    }
    Ok(())
}

/// Initialises and checks out every submodule of `repo` at the commit its superproject records,
/// fetching each from its URL (a relative URL is resolved against `base_url`, as git does), then
/// does the same inside it, like `git submodule update --init --recursive`.
///
/// With a `depth`, each submodule is shallow like `git submodule update --depth N`: the N
/// generations of commits from the recorded one, fetched with that depth from a remote (the
/// commit asked for by id, else the remote's HEAD), or cut from a local repository directly
/// (libgit2's local transport cannot fetch shallow).
fn update_submodules(
    repo: &Repository,
    base_url: &str,
    token: Option<&str>,
    depth: Option<u32>,
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
        let token = same_host(&url, base_url).then_some(token).flatten();
        let failed = |e: GitError| GitError::Submodule(name.clone(), format!("{url}: {e}"));
        match depth {
            Some(depth) => shallow_submodule(&mut sm, &url, token, depth).map_err(failed)?,
            None => {
                let mut opts = git2::SubmoduleUpdateOptions::new();
                opts.fetch(fetch_options(token));
                sm.update(true, Some(&mut opts)).map_err(|e| {
                    GitError::Submodule(name.clone(), format!("{url}: {}", e.message()))
                })?;
            }
        }
        update_submodules(&sm.open()?, &url, token, depth, level + 1)?;
    }
    Ok(())
}

/// Checks submodule `sm` out from `url` with `depth` generations of history from the commit its
/// superproject records; see [`update_submodules`].
fn shallow_submodule(
    sm: &mut git2::Submodule<'_>,
    url: &str,
    token: Option<&str>,
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
        let mut by_id = fetch_options(token);
        by_id.depth(depth);
        // Servers that refuse a commit asked for by id get asked for their HEAD instead.
        if remote
            .fetch(&[oid.to_string()], Some(&mut by_id), None)
            .is_err()
            || sub.find_commit(oid).is_err()
        {
            let mut head = fetch_options(token);
            head.depth(depth);
            remote.fetch(&["+HEAD:refs/remotes/origin/HEAD"], Some(&mut head), None)?;
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

/// Whether two URLs name the same scheme and host, so a token for one may be offered to the other.
fn same_host(a: &str, b: &str) -> bool {
    fn origin(u: &str) -> Option<(&str, &str)> {
        let (scheme, rest) = u.split_once("://")?;
        let host = rest.split(['/', '?', '#']).next()?;
        let host = host.rsplit('@').next()?;
        Some((scheme, host))
    }
    match (origin(a), origin(b)) {
        (Some(x), Some(y)) => x.0.eq_ignore_ascii_case(y.0) && x.1.eq_ignore_ascii_case(y.1),
        _ => false,
    }
}

/// Fetch options that offer `token` once (as GitHub's `x-access-token` user) and fetch no tags.
fn fetch_options(token: Option<&str>) -> FetchOptions<'static> {
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

fn fetch(
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

/// When a mirror is compacted. Every fetch adds a pack and every build a loose ref
/// (`refs/slipway/builds/<id>`); past these counts lookups, fetches and checkouts slow down, so
/// the mirror is repacked into one pack and its refs written into `packed-refs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upkeep {
    /// Repack when `objects/pack` holds more packs than this; 0 never repacks.
    pub max_packs: usize,
    /// Pack the refs when more loose refs than this exist; 0 never packs them.
    pub max_loose_refs: usize,
    /// The git program that repacks (libgit2 can only repack by recomputing every delta). When
    /// it cannot be run, repacking is skipped (logged once) and refs are still packed.
    pub git: PathBuf,
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            max_packs: 20,
            max_loose_refs: 500,
            git: PathBuf::from("git"),
        }
    }
}

/// What one upkeep pass of a mirror found and did: for the log, and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpkeepReport {
    /// Packs in `objects/pack` before.
    pub packs_before: usize,
    /// Loose refs under `refs/` before.
    pub loose_refs_before: usize,
    /// Packs after.
    pub packs_after: usize,
    /// Loose refs after.
    pub loose_refs_after: usize,
    /// The objects were repacked by the git CLI.
    pub repacked: bool,
    /// The refs were written into `packed-refs` and their loose files removed.
    pub refs_packed: bool,
    /// Repacking was due but the git CLI could not be run.
    pub git_missing: bool,
}

impl Mirrors {
    /// Mirrors in `root` (see [`Mirrors::new`]), compacted as `upkeep` says.
    pub fn with_upkeep(root: PathBuf, upkeep: Upkeep) -> Mirrors {
        Mirrors {
            root,
            locks: Mutex::new(HashMap::new()),
            objects: Mutex::new(HashMap::new()),
            upkeep,
            git_missing_logged: AtomicBool::new(false),
        }
    }

    /// The lock a checkout holds shared (`read()`) while it reads `repo`'s mirror, so upkeep,
    /// which holds it exclusively, never deletes a pack a checkout is linking or reading.
    fn objects_lock(&self, repo: &str) -> Arc<RwLock<()>> {
        self.objects
            .lock()
            .expect("mirror objects lock table")
            .entry(repo.to_string())
            .or_default()
            .clone()
    }

    /// Compacts `repo`'s mirror when it holds more packs or loose refs than the [`Upkeep`]
    /// limits: `git repack -a -d` into one pack (loose objects included), then every ref into
    /// `packed-refs` (libgit2), so build refs keep resolving to the same commits.
    ///
    /// Runs under the mirror's fetch lock, so it never overlaps a fetch or merge, and with the
    /// objects lock held exclusively, so it never overlaps a checkout. Counting is cheap (two
    /// directory listings); call it after every preparation, on the blocking pool.
    pub fn upkeep(&self, repo: &str) -> Result<UpkeepReport, GitError> {
        let limits = &self.upkeep;
        let mut report = UpkeepReport::default();
        if limits.max_packs == 0 && limits.max_loose_refs == 0 {
            return Ok(report);
        }
        let lock = self.lock(repo);
        let _guard = lock.lock().expect("mirror lock");
        let path = self.path(repo);
        if !path.join("objects").is_dir() {
            return Ok(report);
        }
        report.packs_before = count_packs(&path)?;
        report.loose_refs_before = count_loose_refs(&path.join("refs"))?;
        let repack_due = limits.max_packs > 0 && report.packs_before > limits.max_packs;
        let refs_due =
            limits.max_loose_refs > 0 && report.loose_refs_before > limits.max_loose_refs;
        if repack_due {
            let objects = self.objects_lock(repo);
            let _exclusive = objects.write().expect("mirror objects lock");
            match repack(&limits.git, &path) {
                Ok(()) => report.repacked = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.git_missing = true;
                    if !self.git_missing_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            git = %limits.git.display(),
                            "git is not installed: mirrors are not repacked (their refs still are)"
                        );
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if refs_due || report.repacked {
            Repository::open_bare(&path)?.refdb_compress()?;
            report.refs_packed = true;
        }
        report.packs_after = count_packs(&path)?;
        report.loose_refs_after = count_loose_refs(&path.join("refs"))?;
        Ok(report)
    }
}

/// The pack files in a repository's `objects/pack`.
fn count_packs(git_dir: &Path) -> std::io::Result<usize> {
    let dir = git_dir.join("objects/pack");
    if !dir.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        n += usize::from(name.starts_with("pack-") && name.ends_with(".pack"));
    }
    Ok(n)
}

/// The loose ref files under `dir` (lock files left out).
fn count_loose_refs(dir: &Path) -> std::io::Result<usize> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            n += count_loose_refs(&entry.path())?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().ends_with(".lock") {
            n += 1;
        }
    }
    Ok(n)
}

/// `git repack -a -d -q` in the bare repository `git_dir`: every object reachable from its refs
/// into one pack, loose objects packed and removed, old packs deleted. No bitmap index: libgit2
/// never reads it. `NotFound` when `git` cannot be run.
fn repack(git: &Path, git_dir: &Path) -> std::io::Result<()> {
    let out = std::process::Command::new(git)
        .arg("--git-dir")
        .arg(git_dir)
        .args(["-c", "repack.writeBitmaps=false", "-c", "gc.auto=0"])
        .args(["repack", "-a", "-d", "-q"])
        .env_remove("GIT_DIR")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .stdin(std::process::Stdio::null())
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "git repack in {}: {}: {}",
        git_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
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

    #[test]
    fn the_token_goes_only_to_the_clone_urls_host() {
        let gh = "https://github.com/acme/app.git";
        assert!(same_host(gh, "https://github.com/acme/lib.git"));
        assert!(same_host(gh, "https://x-access-token@GitHub.com/other/lib"));
        assert!(!same_host(gh, "https://example.org/acme/lib.git"));
        assert!(!same_host(gh, "http://github.com/acme/lib.git"));
        assert!(!same_host(
            gh,
            "https://github.com.evil.example/acme/lib.git"
        ));
        assert!(!same_host(gh, "git@github.com:acme/lib.git"));
    }
}
