//! The files a deploy reads, confined to the job's build dir.
//!
//! Paths come from the pipeline file (`local_dir`, `zip_file`, Dockerrun files, manifests,
//! kubeconfigs, key files) and from the files themselves (a kubeconfig names certificate files),
//! so a pull request or a careless option could point them anywhere: `/etc`, or a symlink to
//! `/` committed in the repository would upload the deploying machine's own files (on a server,
//! its data directory holds every repository's keys). Every such path is resolved here after
//! following symlinks, and one that ends outside the build dir is an error naming the option and
//! the path; the deploy then sends nothing.

use std::path::{Component, Path, PathBuf};

use crate::error::Error;

/// The job's build dir on this machine (the deploy's working tree), and where the job saw it
/// (`/home/travis/build/owner/name`), so absolute paths the job wrote (`$TRAVIS_BUILD_DIR/site`)
/// still name files of the build.
#[derive(Clone, Debug)]
pub struct BuildDir {
    root: PathBuf,
    job_path: Option<PathBuf>,
}

impl BuildDir {
    /// The build dir at `root` (resolved, so it may itself be reached through a symlink), seen by
    /// the job at `job_path`.
    pub fn new(provider: &'static str, root: &Path, job_path: Option<&str>) -> Result<Self, Error> {
        let canonical = root.canonicalize().map_err(|e| Error::File {
            provider,
            path: root.to_path_buf(),
            message: format!("the build dir: {e}"),
        })?;
        Ok(BuildDir {
            root: canonical,
            job_path: job_path.filter(|p| !p.is_empty()).map(PathBuf::from),
        })
    }

    /// The build dir, resolved.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `path`, as option `option` of `provider` gives it, inside the build dir: relative
    /// to it, or absolute under the job's path of it (or its path here); symlinks followed. A path that does not
    /// exist (yet) resolves through its longest existing parent. Anything that ends outside the
    /// build dir is [`Error::OutsideBuildDir`].
    pub fn resolve(
        &self,
        provider: &'static str,
        option: &str,
        path: &str,
    ) -> Result<PathBuf, Error> {
        self.resolve_from(provider, option, &self.root.clone(), path)
    }

    /// Like [`BuildDir::resolve`], with a relative `path` taken from `base` (a directory inside
    /// the build dir: where the kubeconfig naming a certificate file lives).
    pub fn resolve_from(
        &self,
        provider: &'static str,
        option: &str,
        base: &Path,
        path: &str,
    ) -> Result<PathBuf, Error> {
        let outside = |resolved: PathBuf| Error::OutsideBuildDir {
            provider,
            option: option.to_owned(),
            path: path.to_owned(),
            resolved,
        };
        let written = Path::new(path);
        // An absolute path the job wrote names its own view of the build dir; any other
        // absolute path stays as it is and must lead into the build dir like the rest.
        let in_job = self
            .job_path
            .as_deref()
            .and_then(|j| written.strip_prefix(j).ok());
        let start = match in_job {
            Some(rel) => self.root.join(rel),
            None => base.join(written),
        };
        let resolved = resolve_existing(&start);
        if resolved.starts_with(&self.root) {
            Ok(resolved)
        } else {
            Err(outside(resolved))
        }
    }

    /// Checks that `path` (found by listing a directory inside the build dir) is inside it after
    /// following symlinks; returns it resolved.
    pub fn check(
        &self,
        provider: &'static str,
        option: &str,
        path: &Path,
    ) -> Result<PathBuf, Error> {
        let resolved = resolve_existing(path);
        if resolved.starts_with(&self.root) {
            Ok(resolved)
        } else {
            Err(Error::OutsideBuildDir {
                provider,
                option: option.to_owned(),
                path: path.display().to_string(),
                resolved,
            })
        }
    }
}

impl BuildDir {
    /// The regular files matching the glob `pattern` (as dpl's `file_glob` and Ruby's `Dir.glob`
    /// read it: `*`, `?`, `[…]`, `{a,b}`, `**` across directories; names starting with a dot only
    /// when the pattern says so), sorted. The pattern's leading directories without glob
    /// characters are resolved like any path, so the walk starts inside the build dir; symlinks
    /// found by the walk are neither followed nor returned.
    pub fn glob(
        &self,
        provider: &'static str,
        option: &str,
        pattern: &str,
    ) -> Result<Vec<PathBuf>, Error> {
        let pattern = pattern.trim_start_matches("./");
        let parts: Vec<&str> = pattern.split('/').collect();
        let literal = parts
            .iter()
            .take_while(|p| !p.contains(['*', '?', '[', '{']))
            .count();
        if literal == parts.len() {
            // No glob characters: the file itself, if it is one.
            let path = self.resolve(provider, option, pattern)?;
            return Ok(if path.is_file() {
                vec![path]
            } else {
                Vec::new()
            });
        }
        let prefix = parts[..literal].join("/");
        let rest = parts[literal..].join("/");
        let start = if prefix.is_empty() && pattern.starts_with('/') {
            self.resolve(provider, option, "/")?
        } else {
            self.resolve(
                provider,
                option,
                if prefix.is_empty() { "." } else { &prefix },
            )?
        };
        let matcher = globset::GlobBuilder::new(&rest)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Option {
                provider,
                option: option.to_owned(),
                problem: format!("bad glob `{pattern}`: {e}"),
            })?
            .compile_matcher();
        let dots = rest.starts_with('.') || rest.contains("/.");
        let mut out = Vec::new();
        if !start.is_dir() {
            return Ok(out);
        }
        let walk = ignore::WalkBuilder::new(&start)
            .standard_filters(false)
            .hidden(!dots)
            .follow_links(false)
            .build();
        for entry in walk.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&start) else {
                continue;
            };
            if matcher.is_match(rel) {
                out.push(self.check(provider, option, entry.path())?);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `path` with every symlink of its existing part followed and `.`/`..` applied, component by
/// component; the part that does not exist is appended as written (its `..` applied lexically).
fn resolve_existing(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    let mut exists = true;
    for part in path.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => out.push(part.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if exists {
                    match out.canonicalize() {
                        Ok(real) => out = real,
                        // A dangling symlink points wherever its target says: follow it once.
                        Err(_) => match std::fs::read_link(&out) {
                            Ok(target) => {
                                out.pop();
                                let joined = out.join(target);
                                out = resolve_existing(&joined);
                                exists = out.exists();
                            }
                            Err(_) => exists = false,
                        },
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, BuildDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("site/css")).unwrap();
        std::fs::write(dir.path().join("site/index.html"), "hi").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("site/passwd")).unwrap();
        std::os::unix::fs::symlink("css", dir.path().join("site/styles")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", dir.path().join("dangling")).unwrap();
        let build = BuildDir::new("s3", dir.path(), Some("/home/travis/build/acme/app")).unwrap();
        (dir, build)
    }

    #[test]
    fn paths_inside_the_build_dir_resolve_there() {
        let (_dir, b) = tree();
        let root = b.root().to_path_buf();
        assert_eq!(
            b.resolve("s3", "local_dir", "site").unwrap(),
            root.join("site")
        );
        assert_eq!(b.resolve("s3", "local_dir", ".").unwrap(), root);
        assert_eq!(
            b.resolve("s3", "local_dir", "site/styles").unwrap(),
            root.join("site/css")
        );
        assert_eq!(
            b.resolve("s3", "local_dir", "/home/travis/build/acme/app/site")
                .unwrap(),
            root.join("site")
        );
        assert_eq!(
            b.resolve("s3", "local_dir", "public/not-yet").unwrap(),
            root.join("public/not-yet")
        );
        assert_eq!(
            b.resolve("s3", "local_dir", "site/../site/css").unwrap(),
            root.join("site/css")
        );
    }

    #[test]
    fn absolute_paths_symlinks_and_dot_dots_out_of_the_build_dir_are_refused() {
        let (_dir, b) = tree();
        for (path, resolved) in [
            ("/etc", "/etc"),
            ("root", "/"),
            ("root/etc", "/etc"),
            ("site/passwd", "/etc/passwd"),
            ("../..", ""),
            ("dangling", "/nonexistent/x"),
            (
                "/home/travis/build/acme/other",
                "/home/travis/build/acme/other",
            ),
        ] {
            let e = b.resolve("s3", "local_dir", path).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "s3: option `local_dir`: {path} is outside the build dir"
                )),
                "{path}: {text}"
            );
            if !resolved.is_empty() {
                assert!(text.contains(resolved), "{path}: {text}");
            }
        }
        let listed = b.root().join("site/passwd");
        assert!(b.check("kubernetes", "manifests", &listed).is_err());
        assert!(
            b.check("kubernetes", "manifests", &b.root().join("site/index.html"))
                .is_ok()
        );
    }

    #[test]
    fn globs_find_regular_files_inside_the_build_dir_as_ruby_does() {
        let (dir, b) = tree();
        std::fs::create_dir_all(dir.path().join("target/deploy/nested")).unwrap();
        for f in [
            "target/deploy/app-v1-linux.tar.gz",
            "target/deploy/app-v1-linux.zip",
            "target/deploy/.hidden",
            "target/deploy/nested/deep.txt",
            "app_1.0.deb",
        ] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            b.glob("releases", "file", pattern)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(b.root()).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names("./target/deploy/*"),
            [
                "target/deploy/app-v1-linux.tar.gz",
                "target/deploy/app-v1-linux.zip"
            ]
        );
        assert_eq!(names("target/deploy/.*"), ["target/deploy/.hidden"]);
        assert_eq!(names("target/**/*.txt"), ["target/deploy/nested/deep.txt"]);
        assert_eq!(names("app*.{deb,rpm}"), ["app_1.0.deb"]);
        assert_eq!(names("app_1.0.deb"), ["app_1.0.deb"]);
        assert!(names("missing/*").is_empty());
        assert!(names("nothing.zip").is_empty());
        // The site's symlinks (to /etc/passwd, to css) are not returned by a walk.
        assert_eq!(names("site/*"), ["site/index.html"]);
        let e = b.glob("releases", "file", "root/etc/*").unwrap_err();
        assert!(e.to_string().contains("outside the build dir"), "{e}");
        let e = b.glob("releases", "file", "/etc/*").unwrap_err();
        assert!(e.to_string().contains("outside the build dir"), "{e}");
    }
}
