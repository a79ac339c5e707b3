//! Job workspaces: a standalone repository checked out from the mirror at the build's commit,
//! shallow to `git: depth`, with submodules when asked.

use super::pack::write_shallow_pack;
use super::submodules::update_submodules;
use super::{GitError, Mirrors};
use git2::{Oid, Repository};
use slipway_pipelines::plan::Git;
use std::path::Path;

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
/// `origin` and the base that relative submodule URLs resolve against, and the token to fetch
/// with. The token is never written into the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    /// The clone URL (the configured override, else the event's).
    pub url: &'a str,
    /// The repository's token, offered only to hosts serving `url`.
    pub token: Option<&'a str>,
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
