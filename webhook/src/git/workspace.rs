//! Job workspaces: a standalone repository checked out from the mirror at the build's commit,
//! shallow to `git: depth`, with submodules when asked.

use super::pack::write_shallow_pack;
use super::submodules::{Fetching, update_submodules};
use super::{GitError, Mirrors};
use git2::{Oid, Repository};
use slipway_pipelines::plan::Git;
use std::path::Path;
use tokio_util::sync::CancellationToken;

impl Mirrors {
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
    ///
    /// Submodule fetches are held to the mirrors' policy, each on its own, and stop within the
    /// transports' 200 ms tick once `cancel` is canceled.
    pub fn checkout(
        &self,
        repo: &str,
        commit: &str,
        dest: &Path,
        git: &Git,
        remote: Remote<'_>,
        cancel: &CancellationToken,
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
            let how = Fetching {
                remote,
                policy: &self.policy,
                cancel,
                depth: git.submodules_depth.filter(|&d| d > 0),
            };
            update_submodules(&ws, remote.url, &how, 0)?;
        }
        Ok(())
    }
}

/// Writes `depth` generations of history from `tip` into `ws` and records the cut in
/// `.git/shallow`, as `git fetch --depth` leaves a repository.
pub(super) fn write_shallow(
    from: &Repository,
    tip: Oid,
    depth: u32,
    ws: &Repository,
) -> Result<(), GitError> {
    let shallow = write_shallow_pack(from, tip, depth, ws)?;
    if !shallow.is_empty() {
        let list: String = shallow.iter().map(|c| format!("{c}\n")).collect();
        std::fs::write(ws.path().join("shallow"), list)?;
    }
    Ok(())
}

/// Where a job's sources come from: the repository's clone URL, which becomes the workspace's
/// `origin` and the base that relative submodule URLs resolve against, and the credentials
/// submodule fetches may use. No token is ever written into the workspace.
#[derive(Clone, Copy)]
pub struct Remote<'a> {
    /// The clone URL (the configured override, else the event's).
    pub url: &'a str,
    /// The repository's token, sent only to a submodule whose URL is exactly `url`. `None` for
    /// builds from forks: their submodules are fetched anonymously.
    pub token: Option<&'a str>,
    /// Tokens of the other repositories the server serves, each for its own exact URL.
    pub served: &'a dyn SubmoduleTokens,
}

impl std::fmt::Debug for Remote<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("token", &self.token.map(|_| "[secure]"))
            .finish_non_exhaustive()
    }
}

impl<'a> Remote<'a> {
    /// `url` with no credentials at all (every submodule fetched anonymously).
    pub fn anonymous(url: &'a str) -> Remote<'a> {
        Remote {
            url,
            token: None,
            served: &NoTokens,
        }
    }
}

/// The credentials of the other repositories a server serves, for submodules that name one of
/// them by its exact clone URL. Asked lazily: only when a submodule is fetched.
pub trait SubmoduleTokens: Sync {
    /// The token of the served repository whose clone URL is exactly `url`, if there is one and
    /// it has credentials.
    fn token_for(&self, url: &str) -> Option<String>;
}

/// No other repository's credentials: for builds from forks, and for tests.
#[derive(Debug, Clone, Copy)]
pub struct NoTokens;

impl SubmoduleTokens for NoTokens {
    fn token_for(&self, _: &str) -> Option<String> {
        None
    }
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
