//! Where a deploy may find credentials besides its options and the job's environment.
//!
//! On one's own machine (`slipway run`) a deploy may use the machine's credentials, as `dpl`
//! does: the AWS chain (environment, `~/.aws`, instance metadata) and `$KUBECONFIG` or
//! `~/.kube/config`. A server (`slipway serve`) builds other people's code: its own environment,
//! files and metadata service belong to the server, not to any repository, so there a deploy uses
//! only the repository's secrets and settings, or credentials the server's configuration gives
//! that one repository.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use slipway_secrets::Secret;

/// The credentials a deploy may fall back on.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// This machine's own (`slipway run`).
    Ambient,
    /// Only what the server configured for the repository being built, if anything
    /// (`slipway serve`).
    Repository(Option<Arc<RepoCredentials>>),
}

impl Default for Credentials {
    /// The safe choice: nothing of the machine's own.
    fn default() -> Self {
        Credentials::Repository(None)
    }
}

/// Credentials a server configured for one repository (`[repos.deploy]`).
#[derive(Clone, Debug, Default)]
pub struct RepoCredentials {
    /// AWS keys for Elastic Beanstalk, ECS and S3 deploys.
    pub aws: Option<AwsKeys>,
    /// A kubeconfig on the server for `kubernetes` deploys that name none.
    pub kubeconfig: Option<PathBuf>,
}

/// An AWS access key.
#[derive(Clone, Debug)]
pub struct AwsKeys {
    /// The access key id (shown in dry runs).
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    /// A session token, for temporary keys.
    pub session_token: Option<Secret<String>>,
}

impl Credentials {
    /// The server's AWS keys for the repository, when it configured some.
    pub fn aws(&self) -> Option<&AwsKeys> {
        match self {
            Credentials::Repository(Some(c)) => c.aws.as_ref(),
            _ => None,
        }
    }

    /// The server's kubeconfig for the repository, when it configured one.
    pub fn kubeconfig(&self) -> Option<&PathBuf> {
        match self {
            Credentials::Repository(Some(c)) => c.kubeconfig.as_ref(),
            _ => None,
        }
    }

    /// True on one's own machine.
    pub fn ambient(&self) -> bool {
        matches!(self, Credentials::Ambient)
    }
}

/// The GitHub access a server holds for the repositories it builds (its App's installation token
/// for the repository, or its configured token), which the `releases` provider may use when the
/// pipeline gives no token of its own. A server hands it to deploys of the repository being built
/// only, and never to pull request builds.
#[async_trait]
pub trait GitHubTokens: Send + Sync {
    /// The token for `repo` (`owner/name`), `None` when the server has none for it.
    async fn token(&self, repo: &str) -> Result<Option<Secret<String>>, String>;
}

impl std::fmt::Debug for dyn GitHubTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitHubTokens")
    }
}

/// What the AWS error says can be done.
pub(crate) const AWS_FIX: &str = "give access_key_id and secret_access_key (secure), set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the repository's settings, or configure [repos.deploy] for it on the server; the server's own credentials are never used";

/// What the GitHub error says can be done.
pub(crate) const GITHUB_FIX: &str = "give token (secure) or username and password, or set GITHUB_TOKEN in the repository's settings; on a server, its own GitHub access is used only for the repository being built";

/// What the Kubernetes error says can be done.
pub(crate) const KUBE_FIX: &str = "give kubeconfig (a file of the build), set KUBECONFIG in the repository's settings, or configure [repos.deploy] kubeconfig for it on the server; the server's own KUBECONFIG and ~/.kube are never used";
