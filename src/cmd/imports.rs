//! `import:` for local commands: imported files read from the working tree and from local
//! checkouts of other repositories (`--import-repo owner/name=DIR`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, anyhow, bail};
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
    pub fn read(&self, source: &Source) -> anyhow::Result<Vec<u8>> {
        let dir = match &source.repo {
            None => &self.own,
            Some(repo) => self.others.get(repo).with_context(|| {
                format!("{repo} is not available locally; pass --import-repo {repo}=DIR")
            })?,
        };
        match &source.git_ref {
            None => {
                let path = dir.join(&source.path);
                std::fs::read(&path).map_err(|e| anyhow!("{}: {e}", path.display()))
            }
            Some(r) => {
                let out = Command::new("git")
                    .arg("-C")
                    .arg(dir)
                    .arg("show")
                    .arg(format!("{r}:{}", source.path))
                    .output()
                    .map_err(|e| anyhow!("running git: {e}"))?;
                if !out.status.success() {
                    bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
                }
                Ok(out.stdout)
            }
        }
    }
}
