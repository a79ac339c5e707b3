//! The runner's deploy step performed by these providers: [`ProviderHook`] implements
//! `slipway_runner::DeployHook`, so a job's `deploy:` entries other than `script` run here while
//! the job's container waits.
//!
//! For each deploy the hook unpacks the job's build dir into a temporary directory (removed
//! afterwards) as the working tree, builds a [`DeployContext`] from the request (the job's
//! environment as its shell evaluated it, secret values marked secret, the images the build
//! pushed, a resolver for `secure:` options only when the runner allows the job secrets), and
//! calls [`run_deploy`], whose progress lines reach the job's log as they are written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_pipelines::plan::EventType;
use slipway_runner::{DeployHook, DeployReport, DeployRequest};
use slipway_secrets::Secret;

use crate::context::{DeployContext, Endpoints, EnvValue};
use crate::credentials::{Credentials, GitHubTokens, RepoCredentials};
use crate::{Outcome, run_deploy};

/// Endpoints read from the environment of the process running Slipway, one variable per API
/// (the standard `AWS_ENDPOINT_URL*` variables apply on top for AWS). `slipway run` and `slipway
/// plan` know endpoints only from these; a server also from its `[endpoints]`, which they win over.
pub const ENDPOINT_VARIABLES: &[&str] = &[
    "SLIPWAY_S3_ENDPOINT",
    "SLIPWAY_ELASTICBEANSTALK_ENDPOINT",
    "SLIPWAY_ECS_ENDPOINT",
    "SLIPWAY_GKE_CONTAINER_ENDPOINT",
    "SLIPWAY_KUBERNETES_ENDPOINT",
    "SLIPWAY_GITHUB_API_ENDPOINT",
    "SLIPWAY_GITHUB_ENDPOINT",
    "SLIPWAY_HEROKU_ENDPOINT",
    "SLIPWAY_PACKAGECLOUD_ENDPOINT",
    "SLIPWAY_PYPI_ENDPOINT",
    "SLIPWAY_NPM_ENDPOINT",
    "SLIPWAY_RUBYGEMS_ENDPOINT",
];

/// Reads [`ENDPOINT_VARIABLES`] through `get` (the process environment in production), so tests and
/// private clouds point providers elsewhere without touching pipeline files.
pub fn endpoints_from(get: impl Fn(&str) -> Option<String>) -> Endpoints {
    let read = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    Endpoints {
        s3: read("SLIPWAY_S3_ENDPOINT"),
        elasticbeanstalk: read("SLIPWAY_ELASTICBEANSTALK_ENDPOINT"),
        ecs: read("SLIPWAY_ECS_ENDPOINT"),
        gke_container: read("SLIPWAY_GKE_CONTAINER_ENDPOINT"),
        kubernetes: read("SLIPWAY_KUBERNETES_ENDPOINT"),
        github_api: read("SLIPWAY_GITHUB_API_ENDPOINT"),
        github: read("SLIPWAY_GITHUB_ENDPOINT"),
        heroku: read("SLIPWAY_HEROKU_ENDPOINT"),
        packagecloud: read("SLIPWAY_PACKAGECLOUD_ENDPOINT"),
        pypi: read("SLIPWAY_PYPI_ENDPOINT"),
        npm: read("SLIPWAY_NPM_ENDPOINT"),
        rubygems: read("SLIPWAY_RUBYGEMS_ENDPOINT"),
    }
}

/// Performs a job's provider deploys for the runner (`slipway run` and `slipway serve`).
#[derive(Clone, Debug)]
pub struct ProviderHook {
    /// Where the APIs live.
    pub endpoints: Endpoints,
    /// Pause between status polls while waiting for a deploy to settle.
    pub poll_interval: Duration,
    /// Where deploys may take credentials from besides their options and the job's environment:
    /// this machine's own (`slipway run`), or only what the server configured per repository.
    pub machine: Machine,
    /// The server's GitHub access (`slipway serve`): offered to a deploy for the repository being
    /// built, never to a pull request build.
    pub github: Option<Arc<dyn GitHubTokens>>,
}

/// Whose machine the deploys run on: the seam between `slipway run` and `slipway serve`.
#[derive(Clone, Debug)]
pub enum Machine {
    /// One's own (`slipway run`): its AWS chain, `$KUBECONFIG` and `~/.kube` may be used.
    Local,
    /// A server building others' code (`slipway serve`): never its own credentials; each
    /// repository only its own, from this map (lower-cased `owner/name`).
    Server(HashMap<String, Arc<RepoCredentials>>),
}

impl ProviderHook {
    /// The hook of `slipway run`: endpoint overrides from the process environment, the
    /// production poll interval (5 s), and this machine's credentials as the last resort.
    pub fn local() -> Self {
        ProviderHook {
            endpoints: endpoints_from(|name| std::env::var(name).ok()),
            poll_interval: Duration::from_secs(5),
            machine: Machine::Local,
            github: None,
        }
    }

    /// The hook of `slipway serve`: like [`ProviderHook::local`], but deploys never use the
    /// server's own credentials; `repos` holds those configured per repository (by `owner/name`).
    pub fn server(repos: HashMap<String, RepoCredentials>) -> Self {
        ProviderHook {
            machine: Machine::Server(
                repos
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), Arc::new(v)))
                    .collect(),
            ),
            ..ProviderHook::local()
        }
    }

    /// Adds the endpoints of the server's configuration (`[endpoints]`) for every API the
    /// process environment names none for.
    pub fn with_configured(mut self, configured: Endpoints) -> Self {
        self.endpoints = std::mem::take(&mut self.endpoints).or(configured);
        self
    }

    /// Adds the server's GitHub access: `api_url` (its `[github] api_url`, unless
    /// `SLIPWAY_GITHUB_API_ENDPOINT` says otherwise) and the tokens it holds per repository.
    pub fn with_github(mut self, api_url: &str, tokens: Arc<dyn GitHubTokens>) -> Self {
        if self.endpoints.github_api.is_none() {
            self.endpoints.github_api = Some(api_url.trim_end_matches('/').to_owned());
        }
        self.github = Some(tokens);
        self
    }

    /// What a deploy of `repo` may fall back on.
    pub fn credentials_for(&self, repo: &str) -> Credentials {
        match &self.machine {
            Machine::Local => Credentials::Ambient,
            Machine::Server(map) => {
                Credentials::Repository(map.get(&repo.to_ascii_lowercase()).cloned())
            }
        }
    }

    /// The deploy context for `request`, with the working tree at `workdir`.
    pub fn context(&self, request: &DeployRequest<'_>, workdir: &std::path::Path) -> DeployContext {
        let mut out = DeployContext::for_event(request.context, workdir);
        out.endpoints = self.endpoints.clone();
        out.poll_interval = self.poll_interval;
        out.pushed_images = request.pushed_images.clone();
        out.job_dir = Some(request.build_dir.to_owned());
        // A pull request build never deploys (the planner leaves its deploys out); should one
        // reach here anyway, it gets nothing of the server's.
        let pull_request = request.context.event == EventType::PullRequest
            || request.context.pull_request.is_some()
            || request.context.fork;
        out.credentials = if pull_request {
            Credentials::Repository(None)
        } else {
            self.credentials_for(&request.context.repo)
        };
        out.server_github = self.github.clone().filter(|_| !pull_request);
        for (name, value) in &request.env {
            let secret =
                !value.is_empty() && request.secret_values.iter().any(|s| s.expose() == value);
            let value = if secret {
                EnvValue::Secret(Secret::new(value.clone()))
            } else {
                EnvValue::Plain(value.clone())
            };
            out.env.insert(name.clone(), value);
        }
        // The commit the job checked out, when the event did not name one.
        if out.commit.is_empty()
            && let Some(EnvValue::Plain(sha)) = out.env.get("TRAVIS_COMMIT")
        {
            out.commit = sha.clone();
        }
        out.secrets = request.secrets.clone();
        out
    }
}

#[async_trait]
impl DeployHook for ProviderHook {
    fn job_step(&self, deploy: &slipway_pipelines::plan::Deploy) -> Option<String> {
        crate::job_step(deploy)
    }

    async fn deploy(&self, request: DeployRequest<'_>) -> DeployReport {
        let failed = |why: String| DeployReport {
            success: false,
            log: vec![why],
        };
        let tree = match tempfile::Builder::new().prefix("slipway-deploy-").tempdir() {
            Ok(t) => t,
            Err(e) => return failed(format!("Deploy failed: a temporary directory: {e}")),
        };
        let tar = match request.files.tar(".").await {
            Ok(t) => t,
            Err(e) => {
                return failed(format!(
                    "Deploy failed: reading the build dir from the job: {e}"
                ));
            }
        };
        if let Err(e) = tar::Archive::new(tar.as_slice()).unpack(tree.path()) {
            return failed(format!("Deploy failed: unpacking the build dir: {e}"));
        }
        let ctx = self.context(&request, tree.path());
        let outcome = run_deploy(request.deploy, &ctx, request.log).await;
        DeployReport {
            success: !matches!(outcome, Outcome::Failed(_)),
            log: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_pipelines::plan::{Context, EventType};
    use slipway_runner::fake::PrefixSecrets;
    use slipway_runner::{DeployLog, ExecError, JobFiles};

    struct NoFiles;

    #[async_trait]
    impl JobFiles for NoFiles {
        async fn tar(&self, _: &str) -> Result<Vec<u8>, ExecError> {
            Ok(Vec::new())
        }
    }

    struct Quiet;

    impl DeployLog for Quiet {
        fn line(&self, _: &str) {}
    }

    fn plan() -> slipway_pipelines::plan::Plan {
        let ctx = Context {
            event: EventType::Push,
            branch: "main".into(),
            repo: "team/site".into(),
            commit: Some("abc123".into()),
            commit_message: "ship it".into(),
            ..Context::default()
        };
        let yml = b"language: shell\ndeploy:\n  provider: s3\n  bucket: b\n";
        slipway_pipelines::plan(".slipway.yml", yml, &ctx).unwrap()
    }

    #[test]
    fn the_context_carries_the_jobs_env_with_masked_values_secret_and_the_resolver() {
        let plan = plan();
        let job = &plan.stages[0].jobs[0];
        let masked = vec![Secret::new("hunter2".to_string())];
        let request = DeployRequest {
            job,
            deploy: &job.deploys[0],
            context: &plan.context,
            build_dir: "/home/travis/build/team/site",
            files: &NoFiles,
            env: vec![
                ("SITE".into(), "public".into()),
                ("TOKEN".into(), "hunter2".into()),
            ],
            secret_values: &masked,
            secrets: Some(Arc::new(PrefixSecrets {
                name: "X",
                prefix: "plain-of-",
            })),
            pushed_images: vec!["team/web:abc123".into()],
            log: &Quiet,
        };
        let hook = ProviderHook {
            endpoints: Endpoints::default(),
            poll_interval: Duration::from_millis(10),
            machine: Machine::Local,
            github: None,
        };
        let ctx = hook.context(&request, std::path::Path::new("/tmp/tree"));
        assert_eq!(
            (ctx.repo.as_str(), ctx.commit.as_str(), ctx.branch.as_str()),
            ("team/site", "abc123", "main")
        );
        assert_eq!(ctx.commit_message, "ship it");
        assert_eq!(ctx.env["SITE"], EnvValue::Plain("public".into()));
        assert!(ctx.env["TOKEN"].is_secret());
        assert_eq!(ctx.pushed_images, vec!["team/web:abc123".to_string()]);
        let source = ctx.secrets.expect("the runner gave secrets");
        let (_, value) = source.decrypt_env(&ctx.repo, "c1").unwrap();
        assert_eq!(value.expose(), "plain-of-c1");

        let untrusted = DeployRequest {
            secrets: None,
            ..request
        };
        assert!(
            hook.context(&untrusted, std::path::Path::new("/t"))
                .secrets
                .is_none()
        );
    }

    #[test]
    fn a_server_hook_gives_each_repository_only_its_own_credentials() {
        let mut repos = HashMap::new();
        repos.insert(
            "Team/Site".to_string(),
            RepoCredentials {
                kubeconfig: Some("/srv/site.kubeconfig".into()),
                ..RepoCredentials::default()
            },
        );
        let hook = ProviderHook::server(repos);
        assert!(matches!(
            hook.credentials_for("team/site"),
            Credentials::Repository(Some(c)) if c.kubeconfig.is_some()
        ));
        assert!(matches!(
            hook.credentials_for("team/other"),
            Credentials::Repository(None)
        ));
        assert!(matches!(
            ProviderHook::local().credentials_for("team/other"),
            Credentials::Ambient
        ));
    }

    struct ServerTokens;

    #[async_trait]
    impl GitHubTokens for ServerTokens {
        async fn token(&self, _: &str) -> Result<Option<Secret<String>>, String> {
            Ok(Some(Secret::new("ghs_server".into())))
        }
    }

    #[test]
    fn a_pull_request_build_gets_nothing_of_the_servers_credentials() {
        let mut repos = HashMap::new();
        repos.insert(
            "team/site".to_string(),
            RepoCredentials {
                kubeconfig: Some("/srv/site.kubeconfig".into()),
                ..RepoCredentials::default()
            },
        );
        let hook = ProviderHook::server(repos).with_github(
            "https://ghe.example.invalid/api/v3/",
            Arc::new(ServerTokens),
        );
        assert_eq!(
            hook.endpoints.github_api.as_deref(),
            Some("https://ghe.example.invalid/api/v3")
        );
        let mut plan = plan();
        let job = plan.stages[0].jobs[0].clone();
        let context_of = |plan: &slipway_pipelines::plan::Plan| {
            let request = DeployRequest {
                job: &job,
                deploy: &job.deploys[0],
                context: &plan.context,
                build_dir: "/home/travis/build/team/site",
                files: &NoFiles,
                env: Vec::new(),
                secret_values: &[],
                secrets: None,
                pushed_images: Vec::new(),
                log: &Quiet,
            };
            hook.context(&request, std::path::Path::new("/t"))
        };
        let push = context_of(&plan);
        assert!(push.server_github.is_some());
        assert!(push.credentials.kubeconfig().is_some());

        plan.context.event = EventType::PullRequest;
        plan.context.pull_request = Some(7);
        let pr = context_of(&plan);
        assert!(pr.server_github.is_none());
        assert!(matches!(pr.credentials, Credentials::Repository(None)));
    }

    #[test]
    fn the_environment_wins_over_the_servers_endpoints() {
        let mut hook = ProviderHook::server(HashMap::new());
        hook.endpoints = endpoints_from(|name| {
            (name == "SLIPWAY_PYPI_ENDPOINT").then(|| "http://127.0.0.1:1/env/".to_owned())
        });
        let hook = hook.with_configured(Endpoints {
            pypi: Some("http://127.0.0.1:2/config/".into()),
            npm: Some("http://127.0.0.1:2/npm/".into()),
            heroku: Some(" ".into()),
            ..Endpoints::default()
        });
        assert_eq!(
            hook.endpoints,
            Endpoints {
                pypi: Some("http://127.0.0.1:1/env/".into()),
                npm: Some("http://127.0.0.1:2/npm/".into()),
                ..Endpoints::default()
            }
        );
    }

    #[test]
    fn endpoints_come_from_slipway_variables_and_blank_means_unset() {
        let e = endpoints_from(|name| match name {
            "SLIPWAY_S3_ENDPOINT" => Some("http://127.0.0.1:5001".into()),
            "SLIPWAY_ECS_ENDPOINT" => Some("  ".into()),
            "SLIPWAY_KUBERNETES_ENDPOINT" => Some("http://127.0.0.1:6443".into()),
            _ => None,
        });
        assert_eq!(
            e,
            Endpoints {
                s3: Some("http://127.0.0.1:5001".into()),
                kubernetes: Some("http://127.0.0.1:6443".into()),
                ..Endpoints::default()
            }
        );
    }
}
