//! Private files: directories 0700, files 0600, written whole (temp file + rename) so a crash
//! never leaves a half-written key or settings store behind.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::Error;

/// Creates `dir` and its missing parents, each readable by the owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating directory", dir, e))
}

/// Writes `bytes` to `path` with mode 0600, replacing any previous file atomically.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode above is filtered by the umask only towards fewer rights, but a file left by
        // an earlier crash keeps its old mode: set it explicitly.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("writing", path, e)
    })
}

/// Creates `path` with mode 0600 only if it does not exist yet; returns false when it did.
/// Two processes making a repository's first key at once thus agree on one key.
pub(crate) fn create_private_new(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = path.with_extension(format!("new-{}", std::process::id()));
    write_private(&tmp, bytes)?;
    // A hard link fails if the target exists, which gives create-if-absent with full contents.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("creating", path, e)),
    }
}
