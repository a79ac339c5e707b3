//! The cache archive: the job's `/slipway/cache` as a tar, gzip-compressed, checked both ways.
//!
//! The tar comes out of the job (the executor's download of [`CACHE_ROOT`]), so its entries are
//! the job's to choose. The runner never unpacks it on its own disk; it only checks that every
//! entry is a plain file, directory or link under `cache/` with no `..` and no absolute path,
//! so that what the job unpacks later lands where the cache belongs, and that it stays within the
//! size limit however well it compresses.

use std::io::{Read, Write};
use std::path::{Component, Path};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::CacheError;

/// The directory the job script gathers the cached directories in, and the one the runner
/// downloads, archives and, on restore, sends back (unpacked in [`CACHE_PARENT`]).
pub const CACHE_ROOT: &str = crate::script::CACHE_MOUNT;
/// Where the restored archive is unpacked: its entries start with `cache/`.
pub const CACHE_PARENT: &str = crate::script::SLIPWAY_DIR;
/// The first component of every entry.
const TOP: &str = "cache";

/// Checks `tar` (as downloaded from the job) and compresses it for the store.
pub fn pack(tar: &[u8], max: u64) -> Result<Vec<u8>, CacheError> {
    if tar.len() as u64 > max {
        return Err(CacheError::TooLarge { max });
    }
    check(tar)?;
    let mut gz = GzEncoder::new(Vec::with_capacity(tar.len() / 4), Compression::new(3));
    gz.write_all(tar)
        .and_then(|()| gz.finish())
        .map_err(|e| CacheError::Corrupt(format!("compressing: {e}")))
}

/// Decompresses an archive from the store, reading at most `max` bytes of tar, and checks it.
pub fn unpack(gz: &[u8], max: u64) -> Result<Vec<u8>, CacheError> {
    let mut tar = Vec::new();
    GzDecoder::new(gz)
        .take(max.saturating_add(1))
        .read_to_end(&mut tar)
        .map_err(|e| CacheError::Corrupt(format!("not a gzip stream: {e}")))?;
    if tar.len() as u64 > max {
        return Err(CacheError::TooLarge { max });
    }
    check(&tar)?;
    Ok(tar)
}

/// Every entry a plain file, directory, symbolic or hard link under `cache/`; links to no path
/// outside the archive's tree by `..` or an absolute hard-link target.
fn check(tar: &[u8]) -> Result<(), CacheError> {
    let corrupt = |what: String| CacheError::Corrupt(what);
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
    let mut any = false;
    for entry in entries {
        let entry = entry.map_err(|e| corrupt(format!("unreadable entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| corrupt(format!("unreadable entry name: {e}")))?;
        inside(&path).map_err(|why| corrupt(format!("{}: {why}", path.display())))?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular
            | tar::EntryType::Directory
            | tar::EntryType::Symlink
            | tar::EntryType::Continuous => {}
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| corrupt(format!("unreadable link: {e}")))?
                    .unwrap_or_default();
                inside(&target).map_err(|why| {
                    corrupt(format!(
                        "{} links to {}: {why}",
                        path.display(),
                        target.display()
                    ))
                })?;
            }
            other => {
                return Err(corrupt(format!(
                    "{}: a cache holds files, directories and links, not {other:?}",
                    path.display()
                )));
            }
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err(corrupt("the archive is empty".into()))
    }
}

/// Whether `path` is relative, under `cache/`, and without `..`.
fn inside(path: &Path) -> Result<(), &'static str> {
    let mut components = path.components().filter(|c| *c != Component::CurDir);
    match components.next() {
        Some(Component::Normal(top)) if top == TOP => {}
        Some(Component::RootDir | Component::Prefix(_)) => return Err("an absolute path"),
        _ => return Err("outside cache/"),
    }
    if components.any(|c| !matches!(c, Component::Normal(_))) {
        return Err("a path through ..");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Written raw: the builder's own checks would refuse the hostile names below.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(link) = link {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const FILE: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn a_cache_of_files_and_links_round_trips_through_the_store_format() {
        let tar = tar_of(&[
            ("cache/", tar::EntryType::Directory, b"", None),
            ("cache/ab12/stamp", FILE, b"built-once\n", None),
            (
                "cache/ab12/link",
                tar::EntryType::Symlink,
                b"",
                Some("/etc/hostname"),
            ),
            (
                "cache/ab12/same",
                tar::EntryType::Link,
                b"",
                Some("cache/ab12/stamp"),
            ),
        ]);
        let gz = pack(&tar, 1 << 20).unwrap();
        assert_eq!(unpack(&gz, 1 << 20).unwrap(), tar);
    }

    #[test]
    fn entries_outside_the_cache_directory_are_refused_both_ways() {
        for (path, link) in [
            ("../etc/passwd", None),
            ("/etc/passwd", None),
            ("cache/../../etc/passwd", None),
            ("job.sh", None),
            ("cache/x", Some("../../job.sh")),
            ("cache/x", Some("/etc/shadow")),
        ] {
            let kind = if link.is_some() {
                tar::EntryType::Link
            } else {
                FILE
            };
            let tar = tar_of(&[(path, kind, b"", link)]);
            let err = pack(&tar, 1 << 20).unwrap_err();
            assert!(matches!(err, CacheError::Corrupt(_)), "{path}: {err}");
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(&tar).unwrap();
            let err = unpack(&gz.finish().unwrap(), 1 << 20).unwrap_err();
            assert!(matches!(err, CacheError::Corrupt(_)), "{path}: {err}");
        }
    }

    #[test]
    fn devices_and_fifos_are_not_cached() {
        let tar = tar_of(&[("cache/ab/dev", tar::EntryType::Char, b"", None)]);
        assert!(matches!(pack(&tar, 1 << 20), Err(CacheError::Corrupt(_))));
    }

    #[test]
    fn garbage_is_corrupt_and_a_bomb_stops_at_the_limit() {
        assert!(matches!(
            unpack(b"not gzip at all", 1 << 20),
            Err(CacheError::Corrupt(_))
        ));
        let big = vec![0u8; 4 << 20];
        let tar = tar_of(&[("cache/ab/zeros", FILE, &big, None)]);
        let gz = pack(&tar, 8 << 20).unwrap();
        assert!(gz.len() < 64 << 10, "zeros compress well: {}", gz.len());
        assert!(matches!(
            unpack(&gz, 1 << 20),
            Err(CacheError::TooLarge { max }) if max == 1 << 20
        ));
        assert!(matches!(
            pack(&tar, 1 << 20),
            Err(CacheError::TooLarge { .. })
        ));
    }
}
