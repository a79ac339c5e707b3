//! The access part of the store: which repositories are private, who is signed in, and what
//! GitHub last said each user may do with each repository.
//!
//! Sessions live here rather than in memory so they survive a restart and can be shared by
//! several servers; only a hash of a session's id is stored, so a copy of the database does not
//! sign anyone in.

use super::{Build, BuildFilter, Millis, StoreError};
use async_trait::async_trait;
use serde::Serialize;
use slipway_secrets::Secret;

/// A served repository as the access rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoAccess {
    /// `owner/name` as its first delivery spelled it.
    pub name: String,
    /// As its latest delivery said (`repository.private`).
    pub private: bool,
    /// The token a private repository's badge URL must carry (`?token=`).
    pub badge_token: String,
}

/// What a caller may do with one repository, in GitHub's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Nothing: the repository does not exist for this caller.
    None,
    /// Read builds, jobs, logs and the badge.
    Pull,
    /// Also cancel and restart builds, and see the badge token.
    Push,
}

impl Permission {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::None => "none",
            Permission::Pull => "pull",
            Permission::Push => "push",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Permission, StoreError> {
        match s {
            "none" => Ok(Permission::None),
            "pull" => Ok(Permission::Pull),
            "push" => Ok(Permission::Push),
            other => Err(StoreError::Invalid(format!("permission {other:?}"))),
        }
    }
}

/// Who a signed-in browser belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    /// The GitHub login, or `api-token` for a session opened with an API token.
    pub login: String,
    /// The user's OAuth token, used to ask GitHub for their permissions; `None` for an API-token
    /// session.
    pub github_token: Option<Secret<String>>,
    /// Opened with an API token: may read and act on everything.
    pub admin: bool,
    /// The token every state-changing form of this session must carry.
    pub csrf: Secret<String>,
    /// When it stops working.
    pub expires_at: Millis,
}

/// The access part of [`super::Store`].
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// One repository, by name (ASCII case ignored); `None` when no delivery named it yet.
    async fn repo_access(&self, name: &str) -> Result<Option<RepoAccess>, StoreError>;
    /// Every repository a delivery named.
    async fn repos_access(&self) -> Result<Vec<RepoAccess>, StoreError>;
    /// Builds of these repositories (ASCII case ignored) that pass `filter` (its `repo` unused),
    /// newest first.
    async fn builds_of(
        &self,
        repos: Vec<String>,
        filter: BuildFilter,
        limit: i64,
    ) -> Result<Vec<Build>, StoreError>;
    /// Stores a new session under the SHA-256 of its id.
    async fn create_session(&self, id_hash: [u8; 32], session: Session) -> Result<(), StoreError>;
    /// The session with this id hash, unless it expired.
    async fn session(&self, id_hash: [u8; 32]) -> Result<Option<Session>, StoreError>;
    /// Ends a session (sign-out).
    async fn delete_session(&self, id_hash: [u8; 32]) -> Result<(), StoreError>;
    /// What GitHub said `login` may do with `repo`, if it said so at or after `since`.
    async fn cached_permission(
        &self,
        login: &str,
        repo: &str,
        since: Millis,
    ) -> Result<Option<Permission>, StoreError>;
    /// Remembers what GitHub said `login` may do with `repo`.
    async fn cache_permission(
        &self,
        login: &str,
        repo: &str,
        permission: Permission,
    ) -> Result<(), StoreError>;
}
