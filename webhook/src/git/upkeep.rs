//! Mirror upkeep: repacking objects and packing refs once fetches and builds piled them up.

use super::{GitError, Mirrors};
use git2::Repository;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

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
    pub packs_after: usize,
    pub loose_refs_after: usize,
    /// The objects were repacked by the git CLI.
    pub repacked: bool,
    /// The refs were written into `packed-refs` and their loose files removed.
    pub refs_packed: bool,
    /// Repacking was due but the git CLI could not be run.
    pub git_missing: bool,
}

impl Mirrors {
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
