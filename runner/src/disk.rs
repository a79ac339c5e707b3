//! The per-job disk limit's watchdog, for engines whose storage driver cannot cap a container's
//! writable layer (only overlay2 on xfs with project quotas, btrfs, zfs and devicemapper can).
//!
//! A job that fills the disk stops every other job and the server with it, so the runner asks the
//! executor how much the job container has written ([`Executor::disk_usage`]) every interval and
//! stops the job, errored, once it is over the limit. Between two checks a job can write more
//! than the limit: the interval bounds how much.
//!
//! A job's build directory may live on a volume of its own, outside the writable layer the
//! engine measures; the executor then adds what [`tree_usage`] finds in the volume's directory on
//! this host. The job cannot fake that figure: it is read from the runner's side, not from a
//! `du` inside the container that a root job could replace.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, fstat, openat, statat};
use rustix::io::Errno;

use crate::executor::Executor;

/// Resolves with the reason to stop the job once its container has written more than `limit`
/// bytes; never resolves when the executor enforces the limit itself.
pub async fn watchdog(
    executor: &dyn Executor,
    job_id: &str,
    limit: u64,
    every: Duration,
) -> String {
    loop {
        tokio::time::sleep(every).await;
        match executor.disk_usage(job_id).await {
            Ok(None) => std::future::pending::<()>().await,
            Ok(Some(used)) if used > limit => {
                return format!(
                    "The job wrote {} into its container, over its disk limit of {}, and was stopped.",
                    human(used),
                    human(limit)
                );
            }
            // A failed check is tried again next time: the job is not stopped on a guess.
            Ok(Some(_)) | Err(_) => {}
        }
    }
}

/// Directories below this depth are opened again from the deepest one held open, so that a job
/// nesting thousands of directories costs the walk time, never all of the runner's descriptors.
const HELD_OPEN: usize = 64;

/// One directory of the walk: its descriptor (above [`HELD_OPEN`]), its name in its parent, and
/// the subdirectories still to visit.
struct Level {
    fd: Option<OwnedFd>,
    name: CString,
    subdirs: Vec<CString>,
}

/// The bytes the tree at `root` takes on disk (allocated blocks, so a sparse file counts what it
/// really holds). The tree belongs to an untrusted job, which may change it while it is walked:
/// every directory is opened relative to its parent's descriptor without following a symbolic
/// link, so a link (to `/`, to the user's checkout) counts as the link itself and a directory
/// swapped for one mid-walk is not entered; a file with several hard links counts once; entries
/// that vanish mid-walk are skipped.
pub fn tree_usage(root: &Path) -> std::io::Result<u64> {
    let root = openat(rustix::fs::CWD, root, dir_flags(), Mode::empty())?;
    let mut total = blocks(&fstat(&root)?);
    let mut linked = HashSet::new();
    let mut stack = vec![read_level(
        root,
        CString::default(),
        &mut total,
        &mut linked,
    )?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.subdirs.pop() else {
            stack.pop();
            continue;
        };
        let fd = match open_below(&stack, &name) {
            Ok(fd) => fd,
            Err(e) if vanished(e) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut level = match read_level(fd, name, &mut total, &mut linked) {
            Ok(level) => level,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => continue,
            Err(e) => return Err(e),
        };
        if stack.len() >= HELD_OPEN {
            level.fd = None;
        }
        stack.push(level);
    }
    Ok(total)
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Gone, or no longer a directory (a link put in its place): not the walk's to follow.
fn vanished(e: Errno) -> bool {
    matches!(e, Errno::NOENT | Errno::NOTDIR | Errno::LOOP)
}

fn blocks(stat: &Stat) -> u64 {
    (stat.st_blocks as u64).saturating_mul(512)
}

/// Opens `name` in the directory on top of `stack`, from the deepest descriptor held open.
fn open_below(stack: &[Level], name: &CString) -> Result<OwnedFd, Errno> {
    let held = stack
        .iter()
        .rposition(|l| l.fd.is_some())
        .expect("the root stays open");
    let mut fd: Option<OwnedFd> = None;
    for part in stack[held + 1..].iter().map(|l| &l.name).chain([name]) {
        let parent = fd
            .as_ref()
            .or(stack[held].fd.as_ref())
            .expect("an open parent");
        fd = Some(openat(parent, part.as_c_str(), dir_flags(), Mode::empty())?);
    }
    Ok(fd.expect("at least the name itself"))
}

/// Counts the entries of the open directory `fd` into `total` and lists its subdirectories.
fn read_level(
    fd: OwnedFd,
    name: CString,
    total: &mut u64,
    linked: &mut HashSet<(u64, u64)>,
) -> std::io::Result<Level> {
    let mut subdirs = Vec::new();
    for entry in Dir::read_from(&fd)? {
        let entry = entry?;
        let entry_name = entry.file_name();
        if entry_name == c"." || entry_name == c".." {
            continue;
        }
        let stat = match statat(&fd, entry_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::Directory {
            subdirs.push(entry_name.to_owned());
        } else if stat.st_nlink > 1 && !linked.insert((stat.st_dev, stat.st_ino)) {
            continue;
        }
        *total = total.saturating_add(blocks(&stat));
    }
    Ok(Level {
        fd: Some(fd),
        name,
        subdirs,
    })
}

/// `12.3 GiB`, `512.0 MiB`, `900 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(900), "900 B");
        assert_eq!(human(20 << 30), "20.0 GiB");
        assert_eq!(human(3 << 19), "1.5 MiB");
    }

    fn on_disk(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn a_tree_counts_hard_links_once_and_never_what_its_links_point_to() {
        let outside = tempfile::tempdir().unwrap();
        let big = outside.path().join("big");
        std::fs::write(&big, vec![1u8; 4 << 20]).unwrap();
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/data"), vec![2u8; 1 << 20]).unwrap();
        for n in 0..5 {
            std::fs::hard_link(root.join("a/b/data"), root.join(format!("a/link{n}"))).unwrap();
        }
        std::os::unix::fs::symlink(&big, root.join("to-big")).unwrap();
        std::os::unix::fs::symlink("/", root.join("to-root")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("a/to-outside")).unwrap();

        let want: u64 = [
            root.to_path_buf(),
            root.join("a"),
            root.join("a/b"),
            root.join("a/b/data"),
            root.join("to-big"),
            root.join("to-root"),
            root.join("a/to-outside"),
        ]
        .iter()
        .map(|p| on_disk(p))
        .sum();
        let got = tree_usage(root).unwrap();
        assert_eq!(got, want);
        assert!((1 << 20..2 << 20).contains(&got), "{got}");
    }

    #[test]
    fn a_tree_nested_deeper_than_the_descriptors_held_is_counted_whole() {
        let tree = tempfile::tempdir().unwrap();
        let mut dir = tree.path().to_path_buf();
        let mut want = on_disk(&dir);
        for _ in 0..(HELD_OPEN * 3) {
            dir.push("d");
            std::fs::create_dir(&dir).unwrap();
            want += on_disk(&dir);
        }
        std::fs::write(dir.join("deep"), vec![3u8; 256 << 10]).unwrap();
        want += on_disk(&dir.join("deep"));
        assert_eq!(tree_usage(tree.path()).unwrap(), want);
    }

    #[test]
    fn a_root_that_is_a_link_is_not_walked() {
        let tree = tempfile::tempdir().unwrap();
        let link = tree.path().join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert!(tree_usage(&link).is_err());
    }
}
