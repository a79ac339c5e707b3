//! Git: one bare mirror per repository, incremental fetches of only the refs a build needs, the
//! local merge of a pull request's head into its base, and job workspaces checked out from it.
//!
//! All of it is blocking libgit2 work; callers run it on the blocking thread pool, never on the
//! request path. `docs/operations.md` explains why libgit2 was kept (see the P5 benchmark).
//!
//! One module per concern: [`mirror`] (the mirrors and preparing a build's sources), [`merge`],
//! [`workspace`] (job checkouts), [`pack`] (shallow packs), [`submodules`], [`upkeep`] (mirror
//! compaction) and [`fetch`].

mod fetch;
mod merge;
mod mirror;
mod pack;
mod submodules;
mod upkeep;
mod workspace;

pub use mirror::Mirrors;
pub use submodules::resolve_url;
pub use upkeep::{Upkeep, UpkeepReport};
pub use workspace::Remote;

/// Why preparing sources failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// libgit2 reported an error.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The file system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The head does not merge cleanly into the base.
    #[error("merge conflict in {}", .0.join(", "))]
    Conflict(Vec<String>),
    /// A ref the build needs is not on the remote.
    #[error("{0} was not found on the remote")]
    MissingRef(String),
    /// A submodule could not be checked out.
    #[error("submodule {0}: {1}")]
    Submodule(String, String),
}

/// The sources of a build, ready to plan and check out.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The commit to build: the merge commit for PRs, the pushed commit otherwise.
    pub commit: String,
    /// The pipeline file's name and bytes at that commit, if there is one.
    pub pipeline: Option<(String, Vec<u8>)>,
    /// What happened, for the build's log.
    pub log: String,
}

/// The pipeline files looked for, in order.
pub const PIPELINE_FILES: [&str; 2] = [".slipway.yml", ".travis.yml"];
