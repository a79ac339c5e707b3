//! The Beanstalk source bundle: a zip of the working tree that honours `.ebignore`, else
//! `.gitignore`, as the EB CLI and dpl do.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::write::SimpleFileOptions;

/// Why the bundle could not be listed or written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Walking the working tree failed (an unreadable directory, a bad ignore file).
    #[error(transparent)]
    Walk(#[from] ignore::Error),
    /// A file of the tree or the bundle could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file, as the bundle names it (or the bundle itself).
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The zip writer refused.
    #[error("{path}: {source}")]
    Zip {
        /// The file being added (or the bundle itself).
        path: String,
        /// The zip error.
        #[source]
        source: ZipError,
    },
}

fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BundleError {
    move |source| BundleError::Io {
        path: path.to_string(),
        source,
    }
}

fn zip_error(path: impl std::fmt::Display) -> impl FnOnce(ZipError) -> BundleError {
    move |source| BundleError::Zip {
        path: path.to_string(),
        source,
    }
}

/// Files of `root` that go into the bundle, relative, `/`-separated, sorted.
///
/// With a `.ebignore` at the root only its rules apply; otherwise `.gitignore` files do. The
/// `.git` directory never goes in.
pub fn files(root: &Path) -> Result<Vec<String>, BundleError> {
    let has_ebignore = root.join(".ebignore").is_file();
    let mut walk = ignore::WalkBuilder::new(root);
    walk.hidden(false)
        .parents(false)
        .ignore(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .git_ignore(!has_ebignore)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git");
    if has_ebignore {
        walk.add_custom_ignore_filename(".ebignore");
    }
    let mut out = Vec::new();
    for entry in walk.build() {
        let entry = entry?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        // The walk starts at `root`, so every entry is below it.
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        out.push(rel);
    }
    out.sort();
    Ok(out)
}

/// Writes a zip of `files` under `root` to `out`; `replace` swaps a file's content (a pinned
/// `Dockerrun.aws.json`) without touching the working tree.
pub fn write_zip(
    root: &Path,
    files: &[String],
    replace: &BTreeMap<String, Vec<u8>>,
    out: &Path,
) -> Result<u64, BundleError> {
    let file = std::fs::File::create(out).map_err(io(out.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    for rel in files {
        let path: PathBuf = root.join(rel);
        let mode = file_mode(&path);
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        zip.start_file(rel.as_str(), options)
            .map_err(zip_error(rel))?;
        let bytes = match replace.get(rel) {
            Some(b) => b.clone(),
            None => std::fs::read(&path).map_err(io(rel))?,
        };
        zip.write_all(&bytes).map_err(io(rel))?;
    }
    zip.finish().map_err(zip_error(out.display()))?;
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(io(out.display()))
}

#[cfg(unix)]
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> u32 {
    0o644
}
