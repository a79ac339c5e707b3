//! `import:` for local commands: imported files read from the working tree and from local
//! checkouts of other repositories (`--import-repo owner/name=DIR`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use slipway_pipelines::imports::Source;

/// Reads imported files from local directories: the repository being built, and the others
/// `--import-repo` names. A `@ref` is read with `git show REF:PATH`; without one, the file as it
/// is in the directory (uncommitted changes included, like the rest of a local run).
#[derive(Debug, Clone)]
pub struct LocalImports {
    own: PathBuf,
    others: HashMap<String, PathBuf>,
}

impl LocalImports {
    /// Imports relative to `own`, with `--import-repo` values `owner/name=DIR`.
    pub fn new(own: &Path, import_repos: &[String]) -> anyhow::Result<Self> {
        let mut others = HashMap::new();
        for spec in import_repos {
            let (repo, dir) = spec
                .split_once('=')
                .filter(|(r, d)| r.contains('/') && !d.is_empty())
                .with_context(|| {
                    format!("--import-repo takes owner/name=DIR (a local checkout), not {spec}")
                })?;
            if !Path::new(dir).is_dir() {
                bail!("--import-repo {repo}={dir}: {dir} is not a directory");
            }
            others.insert(repo.to_owned(), PathBuf::from(dir));
        }
        Ok(LocalImports {
            own: own.to_path_buf(),
            others,
        })
    }

    /// The bytes of `source`, or why not.
    pub fn read(&self, source: &Source) -> Result<Vec<u8>, String> {
        let dir = match &source.repo {
            None => &self.own,
            Some(repo) => self.others.get(repo).ok_or_else(|| {
                format!("{repo} is not available locally; pass --import-repo {repo}=DIR")
            })?,
        };
        match &source.git_ref {
            None => std::fs::read(dir.join(&source.path))
                .map_err(|e| format!("{}: {e}", dir.join(&source.path).display())),
            Some(r) => {
                let out = Command::new("git")
                    .arg("-C")
                    .arg(dir)
                    .arg("show")
                    .arg(format!("{r}:{}", source.path))
                    .output()
                    .map_err(|e| format!("running git: {e}"))?;
                if out.status.success() {
                    Ok(out.stdout)
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
                }
            }
        }
    }
}
