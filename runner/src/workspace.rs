//! The code under test, packed once per build as a tar that every job copies into its container.
//!
//! For `slipway run` this is the local working tree *including uncommitted changes*: the files
//! `git ls-files --cached --others --exclude-standard` lists (what a clone plus your edits would
//! hold, without ignored build output) and the `.git` directory, so `git rev-parse HEAD` works in
//! the job; checked-out submodules are listed the same way, recursively. A directory that is not a git repository is packed whole. Entries are owned by uid 0
//! and placed under the job's build dir.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A packed workspace.
#[derive(Debug)]
pub struct Workspace {
    /// The directory it was packed from (secret files are read from here).
    pub root: PathBuf,
    /// The tar, paths relative to `/` under the build dir.
    pub tar: tempfile::TempPath,
    /// Number of files packed.
    pub files: usize,
    /// Size of the tar in bytes.
    pub bytes: u64,
}

/// Why packing failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// Listing or reading files failed.
    #[error("packing the workspace {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// git failed to list the files.
    #[error("listing the files of {dir} with git failed: {message}")]
    Git {
        /// The directory.
        dir: PathBuf,
        /// git's error output.
        message: String,
    },
}

fn is_git_work_tree(dir: &Path) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output()
        .map(|o| o.status.success() && o.stdout.starts_with(b"true"))
        .unwrap_or(false)
}

/// What `git ls-files` lists in `dir`; `None` when `dir` is not in a git work tree or there is no
/// `git` (then the directory is packed whole). One process answers both questions.
fn listed_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, WorkspaceError> {
    match git_files(dir) {
        Ok(files) => Ok(Some(files)),
        Err(WorkspaceError::Git { message, .. }) if message.contains("not a git repository") => {
            Ok(None)
        }
        Err(WorkspaceError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn git_files(dir: &Path) -> Result<Vec<PathBuf>, WorkspaceError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        // The "not a git repository" answer is read, so it must not be translated.
        .env("LC_ALL", "C")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .map_err(|source| WorkspaceError::Io {
            dir: dir.into(),
            source,
        })?;
    if !out.status.success() {
        return Err(WorkspaceError::Git {
            dir: dir.into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if !is_hook_sample(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// A hook sample git writes into every new repository (`.git/hooks/*.sample`): git never runs
/// one, and the fourteen of them are half the files of a small repository's `.git`, each a
/// file to create in the job container before its first line. Hooks in use are kept.
fn is_hook_sample(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "sample")
        && path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "hooks")
        && path.components().any(|c| c.as_os_str() == ".git")
}

/// The files of the repository checked out at `root/rel`: what git lists, its `.git`, and the same
/// for every checked-out submodule (git lists one as a single directory entry), down to 8 levels.
fn repo_files(
    root: &Path,
    rel: &Path,
    listed: Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), WorkspaceError> {
    let here = root.join(rel);
    let io = |source| WorkspaceError::Io {
        dir: here.clone(),
        source,
    };
    for file in listed {
        let path = rel.join(&file);
        let full = root.join(&path);
        let is_dir = std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir());
        if !is_dir {
            out.push(path);
        } else if depth < 8 && full.join(".git").exists() && is_git_work_tree(&full) {
            repo_files(root, &path, git_files(&full)?, out, depth + 1)?;
        }
    }
    let git = rel.join(".git");
    if root.join(&git).is_dir() {
        walk(root, &git, out).map_err(io)?;
    } else if root.join(&git).is_file() {
        out.push(git);
    }
    Ok(())
}

/// Packs `dir` for a job whose build dir is `build_dir` (absolute, e.g.
/// `/home/travis/build/owner/repo`).
pub fn pack(dir: &Path, build_dir: &str) -> Result<Workspace, WorkspaceError> {
    let io = |source| WorkspaceError::Io {
        dir: dir.into(),
        source,
    };
    let mut files = Vec::new();
    match listed_files(dir)? {
        Some(listed) => repo_files(dir, Path::new(""), listed, &mut files, 0)?,
        None => walk(dir, Path::new(""), &mut files).map_err(io)?,
    }
    let tmp = tempfile::NamedTempFile::new().map_err(io)?;
    let prefix = PathBuf::from(build_dir.trim_start_matches('/'));
    let mut builder = tar::Builder::new(std::io::BufWriter::new(tmp.reopen().map_err(io)?));
    builder.follow_symlinks(false);
    // No entries for the build dir or its parents: the job's volume (or the image) has them and
    // `tar` makes what is missing. An entry would set their owner, mode and times in the image's
    // own filesystem (an image's `/home/travis` would become root's), each a write to the
    // container's storage layer before the job's first line.
    let mut count = 0;
    for rel in &files {
        let full = dir.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            continue; // tracked but deleted in the working tree
        };
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        h.set_uid(0);
        h.set_gid(0);
        let name = prefix.join(rel);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).map_err(io)?;
            builder.append_link(&mut h, &name, &target).map_err(io)?;
        } else if meta.is_file() {
            let f = std::fs::File::open(&full).map_err(io)?;
            builder.append_data(&mut h, &name, f).map_err(io)?;
        } else {
            continue;
        }
        count += 1;
    }
    builder.into_inner().map_err(io)?;
    let bytes = std::fs::metadata(tmp.path()).map_err(io)?.len();
    Ok(Workspace {
        root: dir.to_path_buf(),
        tar: tmp.into_temp_path(),
        files: count,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "protocol.file.allow=always"])
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    fn names(ws: &Workspace) -> Vec<String> {
        let mut archive = tar::Archive::new(std::fs::File::open(&ws.tar).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_directory_outside_git_is_packed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".gitignore"), "out/\n").unwrap();
        std::fs::create_dir_all(tmp.path().join("out")).unwrap();
        std::fs::write(tmp.path().join("out/build.o"), "built").unwrap();

        let names = names(&pack(tmp.path(), "/build/acme/plain").unwrap());

        for want in [
            "build/acme/plain/.gitignore",
            "build/acme/plain/out/build.o",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
    }

    #[test]
    fn the_build_dir_and_its_parents_are_left_to_the_container() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("src")).unwrap();
        std::fs::write(tmp.path().join("src/main.sh"), "echo hi\n").unwrap();

        let names = names(&pack(tmp.path(), "/home/travis/build/acme/app").unwrap());

        assert_eq!(names, ["home/travis/build/acme/app/src/main.sh"]);
    }

    #[test]
    fn hook_samples_stay_behind_and_hooks_in_use_go_with_the_git_dir() {
        let tmp = tempfile::tempdir().unwrap();
        git(tmp.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(tmp.path().join("app.sh"), "echo app\n").unwrap();
        let hooks = tmp.path().join(".git/hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        std::fs::write(hooks.join("pre-commit.sample"), "#!/bin/sh\n").unwrap();
        std::fs::write(hooks.join("pre-push"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::write(tmp.path().join("notes.sample"), "kept\n").unwrap();

        let names = names(&pack(tmp.path(), "/build/acme/app").unwrap());

        for want in [
            "build/acme/app/app.sh",
            "build/acme/app/notes.sample",
            "build/acme/app/.git/HEAD",
            "build/acme/app/.git/hooks/pre-push",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.ends_with("hooks/pre-commit.sample")),
            "a hook sample was packed: {names:?}"
        );
    }

    #[test]
    fn checked_out_submodules_are_packed_with_their_git_links_and_ignores() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        git(&lib, &["init", "-q", "-b", "main"]);
        std::fs::write(lib.join("lib.sh"), "echo lib\n").unwrap();
        std::fs::write(lib.join(".gitignore"), "out/\n").unwrap();
        git(&lib, &["add", "."]);
        git(&lib, &["commit", "-qm", "lib"]);

        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        git(&app, &["init", "-q", "-b", "main"]);
        std::fs::write(app.join("app.sh"), "echo app\n").unwrap();
        git(&app, &["add", "."]);
        git(
            &app,
            &[
                "submodule",
                "add",
                "-q",
                lib.to_str().unwrap(),
                "vendor/lib",
            ],
        );
        git(&app, &["commit", "-qm", "app"]);
        std::fs::create_dir_all(app.join("vendor/lib/out")).unwrap();
        std::fs::write(app.join("vendor/lib/out/build.o"), "ignored").unwrap();
        std::fs::write(app.join("vendor/lib/new.txt"), "untracked").unwrap();

        let ws = pack(&app, "/build/acme/app").unwrap();
        let names = names(&ws);
        for want in [
            "build/acme/app/app.sh",
            "build/acme/app/.gitmodules",
            "build/acme/app/vendor/lib/lib.sh",
            "build/acme/app/vendor/lib/new.txt",
            "build/acme/app/vendor/lib/.git",
            "build/acme/app/.git/modules/vendor/lib/HEAD",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains("build.o")),
            "the submodule's ignored output was packed: {names:?}"
        );
    }
}
