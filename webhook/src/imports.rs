//! `import:` for served builds: imported files come from the mirrors, with the build's trust.
//!
//! - A path in the build's own repository is read at the build's commit (the merge commit of a
//!   pull request), as the pipeline file itself was; with `@ref`, that ref is fetched with the
//!   repository's own token.
//! - Another repository's file is fetched only for trusted builds, and only from a repository
//!   this server serves (listed in `[[repos]]` when the allow-list is set), at its clone URL and
//!   with its own token, exactly as its submodules would be. A pull request from a fork may
//!   import only from its own repository: its author must not read other repositories through
//!   the server's credentials.
//!
//! Runs on the blocking pool inside planning; tokens are looked up on the runtime.

use std::sync::Arc;

use slipway_pipelines::imports::{Fetch, FetchError, Source};
use tokio_util::sync::CancellationToken;

use crate::git::GitError;
use crate::worker::Engine;

/// Why a served build cannot import a file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A fork's build asked for another repository's file.
    #[error("a pull request from a fork may import only from its own repository")]
    ForkImport,
    /// Another repository this server does not serve.
    #[error("{0} is not served by this server (it is not in [[repos]])")]
    NotServed(String),
    /// Reading or fetching the file failed.
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Reads a build's imported files.
pub struct BuildImports {
    /// The server.
    pub engine: Arc<Engine>,
    /// Where tokens are looked up (from the blocking pool).
    pub runtime: tokio::runtime::Handle,
    /// The build's repository, its clone URL and commit.
    pub repo: String,
    /// The clone URL of the build's repository.
    pub url: String,
    /// The commit the build runs.
    pub commit: String,
    /// True for a pull request from a fork.
    pub fork: bool,
    /// Stops fetches when the preparation is canceled.
    pub cancel: CancellationToken,
}

impl BuildImports {
    /// The clone URL of a served repository other than the build's, or why it cannot be used.
    fn served_url(&self, other: &str) -> Result<String, ImportError> {
        let repos = &self.engine.config.repos;
        let listed = repos.iter().find(|r| r.name.eq_ignore_ascii_case(other));
        if !repos.is_empty() && listed.is_none() {
            return Err(ImportError::NotServed(other.to_owned()));
        }
        Ok(match listed.and_then(|r| r.clone_url.clone()) {
            Some(url) => url,
            // Where GitHub serves it: beside the build's own repository.
            None => crate::git::resolve_url(&self.url, &format!("../../{other}.git")),
        })
    }

    /// The bytes of `source`, with the build's trust and the repository's token.
    fn read(&self, source: &Source) -> Result<Vec<u8>, ImportError> {
        let own = source
            .repo
            .as_deref()
            .is_none_or(|r| r.eq_ignore_ascii_case(&self.repo));
        let mirrors = &self.engine.mirrors;
        if own && source.git_ref.is_none() {
            return Ok(mirrors.read_at(&self.repo, &self.commit, &source.path)?);
        }
        let (repo, url) = if own {
            (self.repo.clone(), self.url.clone())
        } else if self.fork {
            return Err(ImportError::ForkImport);
        } else {
            let other = source.repo.clone().unwrap_or_default();
            let url = self.served_url(&other)?;
            (other, url)
        };
        let token = match self.fork {
            true => None,
            false => self.runtime.block_on(self.engine.git_token(&repo)).0,
        };
        Ok(mirrors.fetch_file(
            &repo,
            &url,
            token.as_deref(),
            source.git_ref.as_deref(),
            &source.path,
            &self.cancel,
        )?)
    }
}

impl Fetch for BuildImports {
    fn fetch(&mut self, source: &Source) -> Result<Vec<u8>, FetchError> {
        Ok(self.read(source)?)
    }
}
