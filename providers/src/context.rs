//! What a deploy knows about the build it belongs to: commit, working tree, environment,
//! pushed images, how to decrypt secure options, and where the APIs live.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slipway_runner::SecretSource;
use slipway_secrets::Secret;

use crate::credentials::{Credentials, GitHubTokens};
use crate::error::Error;
use crate::inputs::BuildDir;

/// One variable of the job's environment as the deploy sees it (already evaluated by the job's
/// shell, so `SHA=$(git rev-parse HEAD)` arrives as the commit id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// A value that may be shown in logs and dry runs.
    Plain(String),
    /// A value from a `secure:` variable or a secret setting: usable, never shown.
    Secret(Secret<String>),
}

impl EnvValue {
    /// The value itself, for building requests.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(v) => v,
            EnvValue::Secret(v) => v.expose(),
        }
    }

    /// True when the value must not be shown.
    pub fn is_secret(&self) -> bool {
        matches!(self, EnvValue::Secret(_))
    }
}

/// Where the services deploys talk to live, as the machine's configuration gives them (the
/// server's `[endpoints]`, else the `SLIPWAY_*_ENDPOINT` variables; see [`crate::hook`]).
///
/// For AWS, Kubernetes and GitHub `None` means the address the service's own configuration gives
/// (the AWS SDK's, the kubeconfig's, the server's `[github] api_url`). A package registry or
/// hosting platform has no such default: its address comes from the deploy's option or from here,
/// and a deploy with neither fails before sending anything ([`Error::NoEndpoint`]), so a build
/// never publishes to a service nobody named.
///
/// [`Error::NoEndpoint`]: crate::Error::NoEndpoint
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// S3 (path-style addressing is used whenever this is set).
    pub s3: Option<String>,
    /// Elastic Beanstalk.
    pub elasticbeanstalk: Option<String>,
    pub ecs: Option<String>,
    /// The GKE (Container) API that describes clusters.
    pub gke_container: Option<String>,
    /// The Kubernetes API server (else the kubeconfig's or the GKE cluster's endpoint).
    pub kubernetes: Option<String>,
    /// GitHub's REST API (else GitHub's public API; a server uses its `[github] api_url`).
    pub github_api: Option<String>,
    /// Where GitHub serves git (else `https://github.com`, or the `pages` option `url`).
    pub github: Option<String>,
    /// Heroku's Platform API (no deploy option names it).
    pub heroku: Option<String>,
    /// packagecloud's API (no deploy option names it).
    pub packagecloud: Option<String>,
    /// The Python package index's upload API, when the deploy's `server` names none.
    pub pypi: Option<String>,
    /// The npm registry, when neither the deploy's `registry` nor the package's
    /// `publishConfig.registry` names one.
    pub npm: Option<String>,
    /// The gem host, when the deploy's `host` names none.
    pub rubygems: Option<String>,
}

impl Endpoints {
    /// These endpoints, each unset one taken from `fallback` (a blank fallback stays unset).
    pub fn or(self, fallback: Endpoints) -> Endpoints {
        let pick = |mine: Option<String>, other: Option<String>| {
            mine.or(other.filter(|v| !v.trim().is_empty()))
        };
        Endpoints {
            s3: pick(self.s3, fallback.s3),
            elasticbeanstalk: pick(self.elasticbeanstalk, fallback.elasticbeanstalk),
            ecs: pick(self.ecs, fallback.ecs),
            gke_container: pick(self.gke_container, fallback.gke_container),
            kubernetes: pick(self.kubernetes, fallback.kubernetes),
            github_api: pick(self.github_api, fallback.github_api),
            github: pick(self.github, fallback.github),
            heroku: pick(self.heroku, fallback.heroku),
            packagecloud: pick(self.packagecloud, fallback.packagecloud),
            pypi: pick(self.pypi, fallback.pypi),
            npm: pick(self.npm, fallback.npm),
            rubygems: pick(self.rubygems, fallback.rubygems),
        }
    }

    /// Every AWS service at one base URL (a local AWS double answers all of them).
    pub fn all_aws(url: &str) -> Self {
        Endpoints {
            s3: Some(url.to_owned()),
            elasticbeanstalk: Some(url.to_owned()),
            ecs: Some(url.to_owned()),
            ..Endpoints::default()
        }
    }
}

/// Everything a provider needs to know about the build, besides its options.
#[derive(Clone)]
pub struct DeployContext {
    /// `owner/name` of the repository (the Beanstalk `app` defaults to `name`).
    pub repo: String,
    /// The commit built (labels, image tags).
    pub commit: String,
    /// The branch built (dpl's per-branch option maps, `app: {master: prod}`, pick by it).
    pub branch: String,
    /// The commit's message (the Beanstalk version description defaults to it).
    pub commit_message: String,
    /// The tag, for a tag build (a GitHub Release is made for it).
    pub tag: Option<String>,
    /// The build's working tree on this machine, as the deploy should see it. Every path a
    /// deploy reads must resolve inside it ([`DeployContext::input`]).
    pub workdir: PathBuf,
    /// Where the job saw its build dir (`/home/travis/build/owner/name`), so absolute paths it
    /// wrote into the environment or options map onto `workdir`.
    pub job_dir: Option<String>,
    /// What the deploy may fall back on when neither its options nor the job's environment
    /// give credentials. The default is nothing of the machine's own.
    pub credentials: Credentials,
    /// The job's environment after the job's shell evaluated it; `$NAME` in options reads it.
    pub env: BTreeMap<String, EnvValue>,
    /// Image references this build pushed (`repo/name:tag`); Dockerrun and ECS definitions are
    /// pinned to them by repository.
    pub pushed_images: Vec<String>,
    /// Endpoint overrides.
    pub endpoints: Endpoints,
    /// Decrypts `secure:` options of [`DeployContext::repo`]: the runner's own source, handed
    /// over only for a job that is allowed secrets; `None` in dry runs, so nothing is ever
    /// decrypted there.
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// The server's own GitHub access, for the repository being built only; set by a server's
    /// hook for builds that are not pull requests, never on one's own machine.
    pub server_github: Option<Arc<dyn GitHubTokens>>,
    /// Unix time used for default labels, fixed by the caller so a dry run and the run agree.
    pub now: u64,
    /// Pause between two status polls while waiting (5 s in production, shorter in tests).
    pub poll_interval: Duration,
}

impl std::fmt::Debug for DeployContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployContext")
            .field("repo", &self.repo)
            .field("commit", &self.commit)
            .field("workdir", &self.workdir)
            .field("job_dir", &self.job_dir)
            .field("credentials", &self.credentials)
            .field("env", &self.env)
            .field("pushed_images", &self.pushed_images)
            .field("endpoints", &self.endpoints)
            .field("secrets", &self.secrets.is_some())
            .field("server_github", &self.server_github.is_some())
            .field("now", &self.now)
            .finish()
    }
}

impl DeployContext {
    /// A context for `repo` at `commit`, with the working tree at `workdir` and the current time.
    pub fn new(repo: &str, commit: &str, workdir: impl Into<PathBuf>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        DeployContext {
            repo: repo.to_owned(),
            commit: commit.to_owned(),
            branch: "master".to_owned(),
            commit_message: String::new(),
            tag: None,
            workdir: workdir.into(),
            job_dir: None,
            credentials: Credentials::default(),
            env: BTreeMap::new(),
            pushed_images: Vec::new(),
            endpoints: Endpoints::default(),
            secrets: None,
            server_github: None,
            now,
            poll_interval: Duration::from_secs(5),
        }
    }

    /// A context for the event a plan was made for: its repository, commit, branch and commit
    /// message, with the working tree at `workdir`. Real deploys and dry runs both start here.
    pub fn for_event(ctx: &slipway_pipelines::plan::Context, workdir: impl Into<PathBuf>) -> Self {
        let mut out = DeployContext::new(
            &ctx.repo,
            ctx.commit.as_deref().unwrap_or_default(),
            workdir,
        );
        out.branch = ctx.branch.clone();
        out.commit_message = ctx.commit_message.clone();
        out.tag = ctx.tag.clone();
        out
    }

    /// Sets a plain environment variable (builder style, for callers and tests).
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env
            .insert(name.to_owned(), EnvValue::Plain(value.to_owned()));
        self
    }

    /// The build dir the deploy's files must come from.
    pub fn build_dir(&self, provider: &'static str) -> Result<BuildDir, Error> {
        BuildDir::new(provider, &self.workdir, self.job_dir.as_deref())
    }

    /// Resolves `path` (option `option` of `provider`) inside the build dir, symlinks followed;
    /// a path that leads outside it is an error naming the option and the path.
    pub fn input(
        &self,
        provider: &'static str,
        option: &str,
        path: &str,
    ) -> Result<PathBuf, Error> {
        self.build_dir(provider)?.resolve(provider, option, path)
    }

    /// The repository's name without its owner.
    pub fn repo_name(&self) -> &str {
        self.repo.rsplit('/').next().unwrap_or(&self.repo)
    }
}
