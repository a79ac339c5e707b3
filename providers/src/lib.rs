//! Deploy providers: Elastic Beanstalk, ECS, Kubernetes/GKE, S3, GitHub Releases and Pages, and
//! the package registries, behind one [`Deployer`] trait.
//!
//! A plan's [`Deploy`] entry is parsed into a typed provider ([`parse`]); unknown or missing
//! options are errors naming the option. Each provider can list the API calls it would make
//! without contacting anything ([`Deployer::dry_run`], [`dry_run_job`]) and can deploy for real,
//! streaming progress into the job's log through the runner's [`DeployLog`] and waiting until
//! the service says the deploy settled ([`Deployer::deploy`], [`run_deploy`]).
//!
//! Whether a deploy runs at all (`on:`) was decided by the planner and is only read here from
//! [`Deploy::decision`]; `on.condition` is the runner's, evaluated in the job's shell.

use async_trait::async_trait;
use serde::Serialize;
use slipway_pipelines::plan::{Deploy, Job};
use slipway_runner::DeployLog;

pub mod artifacts;
mod aws;
pub mod bundle;
pub mod calls;
pub mod context;
pub mod credentials;
pub mod dockerrun;
pub mod eb;
pub mod ecs;
mod error;
mod git;
mod github;
pub mod heroku;
pub mod hook;
mod http;
pub mod images;
pub mod inputs;
pub mod kube;
mod multipart;
pub mod npm;
pub mod options;
pub mod packagecloud;
pub mod pages;
pub mod pypi;
pub mod releases;
pub mod rubygems;
pub mod s3;
#[cfg(feature = "testing")]
pub mod testing;

pub use calls::{ApiCall, MemorySink};
pub use context::{DeployContext, Endpoints, EnvValue};
pub use credentials::{AwsKeys, Credentials, GitHubTokens, RepoCredentials};
pub use error::Error;
pub use hook::ProviderHook;

/// One deploy provider, its options already read and checked.
#[async_trait]
pub trait Deployer: Send + Sync + std::fmt::Debug {
    /// The provider's name as a pipeline file writes it.
    fn provider(&self) -> &'static str;

    /// The API calls a deploy would make, in order, with their parameters (secrets shown as
    /// `[secure]`). Reads the working tree when it is there; contacts nothing.
    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall>;

    /// Where the deploy's credentials come from with `ctx` (never their values): for the
    /// `credentials:` line of dry runs.
    fn credentials(&self, ctx: &DeployContext) -> String;

    /// Deploys, writing progress to `log`, and waits as configured. Returns a one-line summary.
    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error>;
}

/// The providers this crate runs, with the options each accepts. The lint's spec
/// (`slipway_pipelines::spec::PROVIDERS`) must know exactly the options these providers read, with
/// the same types and required options; a test here compares them, since `pipelines` depends on
/// nothing of ours.
pub const PROVIDERS: &[(&str, &[&str])] = &[
    ("elasticbeanstalk", eb::OPTIONS),
    ("ecs", ecs::OPTIONS),
    ("gke", kube::GKE_OPTIONS),
    ("heroku", heroku::OPTIONS),
    ("kubernetes", kube::KUBERNETES_OPTIONS),
    ("npm", npm::OPTIONS),
    ("packagecloud", packagecloud::OPTIONS),
    ("pages", pages::OPTIONS),
    ("pypi", pypi::OPTIONS),
    ("releases", releases::OPTIONS),
    ("rubygems", rubygems::OPTIONS),
    ("s3", s3::OPTIONS),
    ("script", &["script"]),
];

/// Reads a deploy's options into its provider. In a dry run secure values are not decrypted
/// (they read as `[secure]`); otherwise they are decrypted through `ctx.secrets`.
pub fn parse(
    deploy: &Deploy,
    ctx: &DeployContext,
    dry_run: bool,
) -> Result<Box<dyn Deployer>, Error> {
    let provider = deploy.provider.to_ascii_lowercase();
    macro_rules! read {
        ($name:expr, $ty:ty) => {
            <$ty>::parse(options::Options::new($name, &deploy.options, ctx, dry_run))
                .map(|p| Box::new(p) as Box<dyn Deployer>)
        };
    }
    match provider.as_str() {
        "elasticbeanstalk" => read!("elasticbeanstalk", eb::ElasticBeanstalk),
        "ecs" => read!("ecs", ecs::Ecs),
        "heroku" => read!("heroku", heroku::Heroku),
        "gke" => {
            kube::Kubernetes::parse_gke(options::Options::new("gke", &deploy.options, ctx, dry_run))
                .map(|p| Box::new(p) as Box<dyn Deployer>)
        }
        "kubernetes" => kube::Kubernetes::parse_kubeconfig(options::Options::new(
            "kubernetes",
            &deploy.options,
            ctx,
            dry_run,
        ))
        .map(|p| Box::new(p) as Box<dyn Deployer>),
        "npm" => read!("npm", npm::Npm),
        "packagecloud" => read!("packagecloud", packagecloud::Packagecloud),
        "pages" => read!("pages", pages::Pages),
        "pypi" => read!("pypi", pypi::Pypi),
        "releases" => read!("releases", releases::Releases),
        "rubygems" => read!("rubygems", rubygems::Rubygems),
        "s3" => read!("s3", s3::S3),
        "script" => read!("script", Script),
        _ => Err(Error::UnknownProvider(deploy.provider.clone())),
    }
}

/// `provider: script`: the runner runs the command in the job's shell; here it only shows up in
/// dry runs, so `slipway plan` lists every deploy.
#[derive(Debug)]
pub struct Script {
    script: String,
}

impl Script {
    fn parse(mut o: options::Options<'_>) -> Result<Self, Error> {
        // The command is shell text for the job to evaluate, so `$VAR` stays as written.
        let script = o.raw_string("script")?;
        o.finish(&["script"])?;
        Ok(Script { script })
    }
}

#[async_trait]
impl Deployer for Script {
    fn provider(&self) -> &'static str {
        "script"
    }

    fn dry_run(&self, _ctx: &DeployContext) -> Vec<ApiCall> {
        vec![ApiCall::new("shell", "run").param("script", &self.script)]
    }

    async fn deploy(&self, _ctx: &DeployContext, _log: &dyn DeployLog) -> Result<String, Error> {
        Err(Error::RunsInJob("script"))
    }

    fn credentials(&self, _ctx: &DeployContext) -> String {
        "the job's own shell and environment".to_owned()
    }
}

/// The shell text a provider needs the job to run right before its deploy (building what it
/// publishes with the job's own tools), if any: the runner's `DeployHook::job_step`.
pub fn job_step(deploy: &Deploy) -> Option<String> {
    match deploy.provider.to_ascii_lowercase().as_str() {
        "npm" => Some(npm::job_step(&deploy.options)),
        "pypi" => Some(pypi::job_step(&deploy.options)),
        "rubygems" => Some(rubygems::job_step(&deploy.options)),
        _ => None,
    }
}

/// A deploy's dry run as `slipway plan` and `slipway run --dry-run` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DryRun {
    /// The provider as written.
    pub provider: String,
    /// Whether the deploy runs for this event, and why (from the planner).
    pub runs: bool,
    /// The planner's reason.
    pub reason: String,
    /// `on.condition` tests the job's shell evaluates first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// A failure does not error the job.
    pub allow_failure: bool,
    /// Where the deploy's credentials come from; absent when skipped or its options are wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// The calls in order; empty when the deploy is skipped or its options are wrong.
    pub calls: Vec<ApiCall>,
    /// Why the options cannot be used, when they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lists each deploy of `job` with the API calls it would make, touching no endpoint.
pub fn dry_run_job(job: &Job, ctx: &DeployContext) -> Vec<DryRun> {
    job.deploys.iter().map(|d| dry_run_deploy(d, ctx)).collect()
}

/// [`dry_run_job`] for one deploy.
pub fn dry_run_deploy(deploy: &Deploy, ctx: &DeployContext) -> DryRun {
    let mut out = DryRun {
        provider: deploy.provider.clone(),
        runs: deploy.decision.included,
        reason: deploy.decision.reason.clone(),
        conditions: deploy.condition.clone(),
        allow_failure: deploy.allow_failure,
        credentials: None,
        calls: Vec::new(),
        error: None,
    };
    if !deploy.decision.included {
        return out;
    }
    match parse(deploy, ctx, true) {
        Ok(p) => {
            out.credentials = Some(p.credentials(ctx));
            out.calls = p.dry_run(ctx);
        }
        Err(e) => out.error = Some(e.one_line()),
    }
    out
}

/// How a deploy step ended, for the runner to turn into the job's result.
#[derive(Debug)]
pub enum Outcome {
    /// The planner left the deploy out for this event.
    Skipped(String),
    /// The deploy finished; the one-line summary.
    Deployed(String),
    /// The deploy failed but `allow_failure` is set: the job continues.
    FailedAllowed(Error),
    /// The deploy failed: the job errors, as on Travis.
    Failed(Error),
}

impl Outcome {
    /// True when the job must error.
    pub fn errors_job(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

/// Runs one planned deploy for real: honours the planner's decision and `allow_failure`, notes
/// `edge` (which only changes the runner's cleanup before the deploy), and writes every step and
/// the final line to `log`.
pub async fn run_deploy(deploy: &Deploy, ctx: &DeployContext, log: &dyn DeployLog) -> Outcome {
    if !deploy.decision.included {
        log.line(&format!(
            "Skipping the {} deploy: {}",
            deploy.provider, deploy.decision.reason
        ));
        return Outcome::Skipped(deploy.decision.reason.clone());
    }
    if deploy.edge.is_some() {
        log.line(
            "edge: dpl v2 semantics for the cleanup before the deploy; Slipway's providers have one version",
        );
    }
    log.line(&format!("Deploying with {}", deploy.provider));
    let result = match parse(deploy, ctx, false) {
        Ok(p) => p.deploy(ctx, log).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(summary) => {
            log.line(&format!("Deploy finished: {summary}"));
            Outcome::Deployed(summary)
        }
        Err(e) if deploy.allow_failure => {
            log.line(&format!(
                "Deploy failed (allowed to fail): {}",
                e.one_line()
            ));
            Outcome::FailedAllowed(e)
        }
        Err(e) => {
            log.line(&format!("Deploy failed: {}", e.one_line()));
            Outcome::Failed(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use slipway_pipelines::plan::Decision;
    use slipway_pipelines::spec::{self, Support, Ty};

    use super::*;
    use crate::options::ASKED;

    /// The smallest options each provider parses with, so a probe reaches every reader.
    fn base(provider: &str) -> Vec<(&'static str, Value)> {
        match provider {
            "elasticbeanstalk" => vec![("bucket", json!("b")), ("env", json!("e"))],
            "ecs" => vec![("cluster", json!("c")), ("service", json!("s"))],
            "gke" => vec![
                ("project", json!("p")),
                ("zone", json!("z")),
                ("cluster", json!("c")),
                ("key_file", json!("key.json")),
            ],
            "heroku" | "kubernetes" | "npm" | "pages" | "pypi" | "releases" | "rubygems" => vec![],
            "s3" => vec![("bucket", json!("b"))],
            "packagecloud" => vec![("username", json!("u")), ("repository", json!("r"))],
            "script" => vec![("script", json!("./deploy.sh"))],
            other => panic!("no base options for {other}: add them here"),
        }
    }

    /// A value of the shape the lint expects for an option of type `ty`.
    fn sample(ty: &Ty) -> Value {
        match ty {
            Ty::Bool => json!(true),
            Ty::Num => json!(5),
            Ty::Strs => json!(["x"]),
            Ty::Map => json!({}),
            Ty::Secure | Ty::SecureLax => json!({"secure": "c2VjcmV0"}),
            _ => json!("x"),
        }
    }

    /// Parses `options` for `provider` as a dry run (nothing decrypted, nothing read).
    fn try_parse(provider: &str, options: &[(&str, Value)]) -> Result<(), String> {
        let deploy = Deploy {
            provider: provider.to_owned(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            decision: Decision {
                included: true,
                reason: String::new(),
            },
            skip_cleanup: false,
            allow_failure: false,
            edge: None,
            condition: Vec::new(),
        };
        let mut ctx = DeployContext::new("acme/app", "c0ffee", "/nonexistent");
        // Every service configured, so only the options decide.
        ctx.endpoints = crate::testing::unreachable_registries();
        parse(&deploy, &ctx, true)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_lint_spec_knows_exactly_the_options_the_providers_read() {
        let mut problems = Vec::new();
        for (name, options) in PROVIDERS {
            let Some(lint) = spec::provider(name) else {
                problems.push(format!("{name}: not in the lint's spec"));
                continue;
            };
            if lint.support != Support::Yes {
                problems.push(format!("{name}: the lint does not mark it supported"));
            }
            let lint_type = |option: &str| {
                lint.options
                    .iter()
                    .find(|k| k.name == option || k.aliases.contains(&option))
                    .map(|k| k.ty)
            };
            let lint_names: BTreeSet<String> = lint
                .options
                .iter()
                .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied()))
                .map(str::to_owned)
                .collect();
            let base = base(name);
            ASKED.with(|a| a.borrow_mut().clear());
            if let Err(e) = try_parse(name, &base) {
                problems.push(format!("{name}: the base options do not parse: {e}"));
                continue;
            }
            // Every option, given alone on top of the base with the lint's type, is read: not
            // unknown, not the wrong shape.
            let candidates: BTreeSet<String> = lint_names
                .iter()
                .cloned()
                .chain(options.iter().map(|o| (*o).to_owned()))
                .collect();
            for option in &candidates {
                let value = sample(&lint_type(option).unwrap_or(Ty::Str));
                let mut opts: Vec<(&str, Value)> = base.clone();
                opts.retain(|(k, _)| k != option);
                opts.push((option, value.clone()));
                if let Err(e) = try_parse(name, &opts)
                    && (e.contains("unknown option") || e.contains("expected "))
                {
                    problems.push(format!("{name}: `{option}: {value}` is refused: {e}"));
                }
            }
            let asked = ASKED.with(|a| a.borrow().clone());
            // Keys every deploy has (`run`) are known to the lint once, for all providers.
            let common = |o: &str| spec::DEPLOY_COMMON.iter().any(|k| k.name == o);
            for option in asked.difference(&lint_names).filter(|o| !common(o)) {
                problems.push(format!(
                    "{name}: reads `{option}`, which the lint does not know"
                ));
            }
            for option in lint_names.difference(&asked) {
                problems.push(format!(
                    "{name}: the lint knows `{option}`, which the provider never reads"
                ));
            }
            for option in *options {
                if !asked.contains(*option) {
                    problems.push(format!("{name}: PROVIDERS lists `{option}`, never read"));
                }
            }
            for key in lint.options {
                if !options.contains(&key.name) {
                    problems.push(format!(
                        "{name}: PROVIDERS (the unknown-option hint) lacks `{}`",
                        key.name
                    ));
                }
            }
            // Required: what the lint demands, parsing demands, and the other way round.
            for (option, _) in &base {
                let aliases = lint
                    .options
                    .iter()
                    .find(|k| k.name == *option)
                    .map_or(&[][..], |k| k.aliases);
                let without: Vec<(&str, Value)> = base
                    .iter()
                    .filter(|(k, _)| k != option && !aliases.contains(k))
                    .cloned()
                    .collect();
                let parse_requires = try_parse(name, &without)
                    .err()
                    .is_some_and(|e| e.ends_with(&format!("option `{option}`: is required")));
                let lint_requires = lint.required.contains(option);
                if parse_requires != lint_requires {
                    problems.push(format!(
                        "{name}: `{option}` is required by {} only",
                        if parse_requires {
                            "the provider"
                        } else {
                            "the lint"
                        }
                    ));
                }
            }
            for option in lint.required {
                if !base.iter().any(|(k, _)| k == option) {
                    problems.push(format!(
                        "{name}: the lint requires `{option}`, which the provider does not"
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
