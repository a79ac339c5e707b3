//! Git: one bare mirror per repository, incremental fetches of only the refs a build needs, the
//! local merge of a pull request's head into its base, and job workspaces checked out from it.
//!
//! All of it is blocking libgit2 work; callers run it on the blocking thread pool, never on the
//! request path. `docs/operations.md` explains why libgit2 was kept (see the P5 benchmark).
//!
//! One module per concern: [`mirror`] (the mirrors and preparing a build's sources), [`merge`],
//! [`workspace`] (job checkouts), [`pack`] (shallow packs), [`submodules`], [`upkeep`] (mirror
//! compaction), [`fetch`], and what every network fetch is held to: [`policy`] (addresses,
//! limits, where a token may go) enforced by Slipway's own [`transport`]s ([`http`]).

mod fetch;
mod http;
mod imports;
mod merge;
mod mirror;
mod pack;
pub mod policy;
mod submodules;
mod transport;
mod upkeep;
mod workspace;

pub use mirror::Mirrors;
pub use policy::{Allowed, FetchPolicy};
pub use submodules::resolve_url;
pub use upkeep::{Upkeep, UpkeepReport};
pub use workspace::{NoTokens, Remote, SubmoduleTokens};

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
    /// A file an `import:` names is not in the commit.
    #[error("{0} is not in that commit")]
    MissingFile(String),
    /// A submodule could not be checked out.
    #[error("submodule {0}: {1}")]
    Submodule(String, String),
    /// A fetch was stopped by its time or size limit, or canceled.
    #[error("{0}")]
    Stopped(String),
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
    /// Who made the pushed (head) commit, for notifications.
    pub people: People,
}

/// The author and committer of a commit, as it records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    pub author_name: String,
    /// The author's address.
    pub author_email: String,
    pub committer_name: String,
    /// The committer's address.
    pub committer_email: String,
    /// When it was committed (Unix seconds).
    pub committed_at: Option<i64>,
}

/// The pipeline files looked for, in order.
pub const PIPELINE_FILES: [&str; 2] = [".slipway.yml", ".travis.yml"];
