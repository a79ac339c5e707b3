//! From a normalised [`Config`] and a [`Context`] to the resolved [`Plan`].
//!
//! Expansion ([`crate::expand`]) decides which jobs exist and in what order; this module applies
//! the request-level filters (root `if:` and `branches:`, which decide whether a build exists at
//! all), then gives every job its image, env, phases (the language's defaults where the file sets
//! none), services, cache, checkout settings and deploys with their `on:` evaluated.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use regex::Regex;
use serde_json::Value;

mod notify;

use crate::config::{Attrs, Config, DeploySpec, EXPAND_KEYS, EnvEntry, JobAttrs};
use crate::expand::{self, CondOutcome, DEFAULT_STAGE, ExpandedJob, Expansion};
use crate::images;
use crate::plan::{
    Cache, Context, Decision, Deploy, EnvValue, EnvVar, EventType, Git, Image, ImageSource, Job,
    Phase, PhaseName, PhaseSource, Plan, Skipped, Stage, WorkspaceCreate, Workspaces,
};

/// The branch deploys are limited to when `on:` names none. Travis used the repository's default
/// branch; a pipeline file does not know it, so Slipway uses `master` (as Travis did for
/// repositories created before the switch to `main`).
pub const DEFAULT_DEPLOY_BRANCH: &str = "master";

/// How to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Apply the request-level filters (root `if:`, `branches:`): when they reject the event the
    /// plan has no stages. Off only to inspect what the matrix would be (Travis's job list).
    pub request_filters: bool,
    /// The most jobs a build may have ([`DEFAULT_MAX_JOBS`] unless configured); a file whose
    /// matrix expands to more is refused before any job is built.
    pub max_jobs: u64,
}

/// Travis refused builds of more than 200 jobs; so does Slipway unless configured otherwise.
pub const DEFAULT_MAX_JOBS: u64 = 200;

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            request_filters: true,
            max_jobs: DEFAULT_MAX_JOBS,
        }
    }
}

/// The error for a matrix of more than `max_jobs` jobs, or `None` when it fits. `span` is where
/// its largest axis is written, when known (lint knows, planning does not).
pub fn job_cap(
    file: &str,
    size: &crate::expand::MatrixSize,
    max_jobs: u64,
    span: Option<crate::yaml::Span>,
) -> Option<crate::diagnostic::Diagnostic> {
    if size.jobs <= max_jobs {
        return None;
    }
    let hint = match size.largest_axis() {
        Some((key, n)) => format!(
            "shrink the largest axis, `{key}` ({n} values), split the build, or raise the limit ([limits] max_jobs, --max-jobs)"
        ),
        None => {
            "use fewer jobs.include entries, or raise the limit ([limits] max_jobs, --max-jobs)"
                .to_owned()
        }
    };
    Some(crate::diagnostic::Diagnostic {
        severity: crate::diagnostic::Severity::Error,
        code: "too_many_jobs".to_owned(),
        file: file.to_owned(),
        span,
        key: size.largest_axis().map(|(k, _)| k.to_owned()),
        message: format!(
            "the build matrix expands to {} jobs ({}), over the limit of {max_jobs} jobs per build",
            size.jobs,
            size.describe()
        ),
        hint: Some(hint),
    })
}

/// True when `name` matches a `branches:`/`on.branch` pattern: an exact name or a `/regex/`.
pub fn branch_matches(pattern: &str, name: &str) -> bool {
    if pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/') {
        return branch_regex(&pattern[1..pattern.len() - 1]).is_some_and(|re| re.is_match(name));
    }
    pattern == name
}

/// How many compiled branch patterns [`branch_regex`] keeps; past it the cache starts afresh, so
/// files full of distinct patterns cannot grow it without end.
const BRANCH_REGEX_CACHE: usize = 64;

/// The compiled form of a `/regex/` branch pattern (`None` when it does not compile), cached by
/// source: a pattern is matched once per job and deploy of every plan, and compiling it costs
/// far more than matching.
fn branch_regex(source: &str) -> Option<Regex> {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<Regex>>>> = LazyLock::new(Default::default);
    let cache = || CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = cache().get(source) {
        return re.clone();
    }
    // Compiled without the lock held: a slow pattern must not stall other plans.
    let re = Regex::new(source).ok();
    let mut cache = cache();
    if cache.len() >= BRANCH_REGEX_CACHE {
        cache.clear();
    }
    cache.insert(source.to_owned(), re.clone());
    re
}

/// The branch a request is about: the base branch for pull requests, the tag for tag pushes.
fn request_branch(ctx: &Context) -> &str {
    match (&ctx.tag, ctx.event) {
        (Some(tag), EventType::Push) if ctx.branch.is_empty() => tag,
        _ => &ctx.branch,
    }
}

/// The request-level decision: root `if:`, then `branches:` (`only` beats `except`).
pub fn build_decision(config: &Config, ctx: &Context) -> Decision {
    let condition = config.condition.as_deref();
    match expand::evaluate(condition, &config.root, ctx) {
        CondOutcome::Accepted => {}
        CondOutcome::Rejected => {
            return Decision {
                included: false,
                reason: format!("root if: {} is false", squash(condition.unwrap_or(""))),
            };
        }
        CondOutcome::Invalid(e) => {
            return Decision {
                included: false,
                reason: format!(
                    "root if: {} is invalid ({e})",
                    squash(condition.unwrap_or(""))
                ),
            };
        }
    }
    let branch = request_branch(ctx);
    let mut reasons = Vec::new();
    if let Some(c) = condition {
        reasons.push(format!("root if: {} is true", squash(c)));
    }
    if let Some(b) = &config.branches {
        if !b.only.is_empty() {
            if !b.only.iter().any(|p| branch_matches(p, branch)) {
                return Decision {
                    included: false,
                    reason: format!("branch {branch} is not in branches.only"),
                };
            }
            reasons.push(format!("branch {branch} is in branches.only"));
        } else if !b.except.is_empty() {
            if b.except.iter().any(|p| branch_matches(p, branch)) {
                return Decision {
                    included: false,
                    reason: format!("branch {branch} is in branches.except"),
                };
            }
            reasons.push(format!("branch {branch} is not in branches.except"));
        }
    }
    if reasons.is_empty() {
        reasons.push("no request-level filters".to_owned());
    }
    Decision {
        included: true,
        reason: reasons.join("; "),
    }
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plans a normalised config for `ctx`.
pub fn plan_config(file: &str, config: &Config, ctx: &Context, options: PlanOptions) -> Plan {
    let build = build_decision(config, ctx);
    let Expansion {
        stages: expanded_stages,
        jobs,
        mut skipped,
    } = expand::expand(config, ctx);

    let mut stages: Vec<Stage> = if expanded_stages.is_empty() {
        vec![Stage {
            name: DEFAULT_STAGE.to_owned(),
            jobs: Vec::new(),
        }]
    } else {
        expanded_stages
            .iter()
            .map(|s| Stage {
                name: s.name.clone(),
                jobs: Vec::new(),
            })
            .collect()
    };
    for (i, job) in jobs.iter().enumerate() {
        let planned = plan_job(i + 1, job, ctx);
        let stage = stages
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(&planned.stage))
            .expect("every expanded job's stage survived expansion");
        stage.jobs.push(planned);
    }
    stages.retain(|s| !s.jobs.is_empty());

    if options.request_filters && !build.included {
        for stage in stages.drain(..) {
            for job in stage.jobs {
                skipped.push(Skipped {
                    what: format!("job {}", job_label(&job)),
                    reason: format!("no build: {}", build.reason),
                });
            }
        }
    }
    Plan {
        file: file.to_owned(),
        context: ctx.clone(),
        build,
        stages,
        fast_finish: config.fast_finish,
        skipped,
        notifications: notify::plan_notifications(&config.root, ctx),
    }
}

fn job_label(job: &Job) -> String {
    match &job.name {
        Some(n) => format!("{n}/{}", job.number),
        None => format!("{}", job.number),
    }
}

/// The Travis-named keys a job is compared by, in a stable order.
fn matrix_of(job: &ExpandedJob) -> indexmap::IndexMap<String, Value> {
    let mut m = indexmap::IndexMap::new();
    for key in ["language", "os", "arch", "dist", "group", "if"] {
        if let Some(v) = job.attrs.get(key) {
            m.insert(key.to_owned(), v.clone());
        }
    }
    // The job's expand keys in `EXPAND_KEYS` order, found in one pass over the job's keys (a
    // job sets few of the many expand keys; looking each one up was most of planning a job).
    let mut expand: Vec<(usize, &String, &Value)> = job
        .attrs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "os" | "arch"))
        .filter_map(|(k, v)| Some((EXPAND_KEYS.iter().position(|e| e == k)?, k, v)))
        .collect();
    expand.sort_unstable_by_key(|(i, _, _)| *i);
    for (_, k, v) in expand {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn plan_job(number: usize, job: &ExpandedJob, ctx: &Context) -> Job {
    let attrs = &job.attrs;
    let image = match attrs.str_of("image") {
        Some(name) => Image {
            name: name.to_owned(),
            source: ImageSource::File,
        },
        None => Image {
            name: images::image_for(attrs),
            source: ImageSource::Language,
        },
    };
    let mut env = Vec::new();
    for entry in attrs.env_entries() {
        match entry {
            EnvEntry::Vars(vars) => {
                env.extend(vars.into_iter().map(|(name, value)| EnvVar { name, value }));
            }
            EnvEntry::Secure(s) => env.push(EnvVar {
                name: String::new(),
                value: EnvValue::SecureAssignment(s),
            }),
        }
    }
    let language = attrs.str_of("language").unwrap_or("ruby");
    let mut phases = Vec::new();
    for phase in PhaseName::ALL {
        match attrs.phase(phase) {
            Some(commands) => {
                let commands = if commands.iter().all(|c| c.trim() == "skip") {
                    Vec::new()
                } else {
                    commands
                };
                phases.push(Phase {
                    name: phase,
                    commands,
                    source: PhaseSource::File,
                });
            }
            None => {
                let defaults = default_commands(language, phase);
                if !defaults.is_empty() {
                    phases.push(Phase {
                        name: phase,
                        commands: defaults.iter().map(|s| (*s).to_owned()).collect(),
                        source: PhaseSource::Default,
                    });
                }
            }
        }
    }
    let deploys = attrs
        .deploys()
        .into_iter()
        .map(|d| plan_deploy(d, attrs, ctx))
        .collect();
    Job {
        number,
        name: attrs.str_of("name").map(str::to_owned),
        stage: job
            .stage
            .clone()
            .unwrap_or_else(|| DEFAULT_STAGE.to_owned()),
        allow_failure: job.allow_failure,
        reason: if job.allow_failure {
            format!("{}; allowed to fail (jobs.allow_failures)", job.reason)
        } else {
            job.reason.clone()
        },
        matrix: matrix_of(job),
        image,
        env,
        phases,
        services: attrs.str_list("services"),
        cache: cache_of(attrs),
        git: git_of(attrs),
        deploys,
        secret_files: attrs
            .get("secrets")
            .and_then(|s| s.get("files"))
            .map(|f| match f {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            })
            .unwrap_or_default(),
        addons: crate::addons::addons_of(attrs.get("addons")),
        workspaces: workspaces_of(attrs),
    }
}

/// `workspaces:`: `create: {name, paths}` and `use: NAME` (or a list of names).
fn workspaces_of(attrs: &Attrs) -> Workspaces {
    let mut out = Workspaces::default();
    let Some(Value::Object(map)) = attrs.get("workspaces") else {
        return out;
    };
    let names = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    if let Some(u) = map.get("use") {
        out.uses = names(u);
    }
    if let Some(Value::Object(create)) = map.get("create")
        && let Some(name) = create.get("name").and_then(Value::as_str)
    {
        out.create = Some(WorkspaceCreate {
            name: name.to_owned(),
            paths: create.get("paths").map(names).unwrap_or_default(),
        });
    }
    out
}

/// Travis's default commands for a phase the file leaves unset, per language.
///
/// Only phases with a default are listed; where Travis chose at run time by the files present
/// (Gradle or Maven, a `requirements.txt`), the command makes the same test in the job's shell.
pub fn default_commands(language: &str, phase: PhaseName) -> &'static [&'static str] {
    use PhaseName::*;
    match (language, phase) {
        ("node_js", Install) => &["npm install"],
        ("node_js", Script) => &["npm test"],
        ("python", Install) => {
            &["if [ -f requirements.txt ]; then pip install -r requirements.txt; fi"]
        }
        ("ruby", Install) => &["if [ -f Gemfile ]; then bundle install --jobs=3 --retry=3; fi"],
        ("ruby", Script) => &["rake"],
        ("go", Install) => &["go get -t -v ./..."],
        ("go", Script) => &["go test -v ./..."],
        ("java" | "android" | "groovy" | "kotlin", Install) => &[
            "if [ -f gradlew ]; then ./gradlew assemble; elif [ -f build.gradle ]; then gradle assemble; elif [ -f mvnw ]; then ./mvnw install -DskipTests=true -Dmaven.javadoc.skip=true -B -V; elif [ -f pom.xml ]; then mvn install -DskipTests=true -Dmaven.javadoc.skip=true -B -V; fi",
        ],
        ("java" | "android" | "groovy" | "kotlin", Script) => &[
            "if [ -f gradlew ]; then ./gradlew check; elif [ -f build.gradle ]; then gradle check; elif [ -f mvnw ]; then ./mvnw test -B; else mvn test -B; fi",
        ],
        ("scala", Script) => &["sbt ++$TRAVIS_SCALA_VERSION test"],
        ("clojure", Install) => &["lein deps"],
        ("clojure", Script) => &["lein test"],
        ("php", Script) => &["phpunit"],
        ("rust", Script) => &["cargo build --verbose", "cargo test --verbose"],
        ("perl", Install) => &["cpanm --quiet --installdeps --notest ."],
        ("perl", Script) => &["prove -lrv t"],
        ("elixir", Install) => &[
            "mix local.rebar --force",
            "mix local.hex --force",
            "mix deps.get",
        ],
        ("elixir", Script) => &["mix test"],
        ("erlang", Install) => &["rebar3 get-deps"],
        ("erlang", Script) => &["rebar3 eunit"],
        ("c" | "cpp", Script) => &["./configure && make && make test"],
        ("crystal", Install) => &["shards install"],
        ("crystal", Script) => &["crystal spec"],
        ("julia", Script) => {
            &["julia --color=yes -e 'using Pkg; Pkg.build(); Pkg.test(coverage=true)'"]
        }
        ("dart", Install) => &["dart pub get"],
        ("dart", Script) => &["dart test"],
        ("haskell", Install) => &[
            "cabal update",
            "cabal install --only-dependencies --enable-tests",
        ],
        ("haskell", Script) => &["cabal configure --enable-tests && cabal build && cabal test"],
        _ => &[],
    }
}

fn cache_of(attrs: &Attrs) -> Cache {
    let mut cache = Cache::default();
    if let Some(Value::Object(map)) = attrs.get("cache") {
        for (k, v) in map {
            match (k.as_str(), v) {
                ("directories", Value::Array(dirs)) => cache
                    .directories
                    .extend(dirs.iter().filter_map(|d| d.as_str().map(str::to_owned))),
                (_, Value::Bool(true)) => cache.languages.push(k.clone()),
                _ => {}
            }
        }
    }
    cache
}

fn git_of(attrs: &Attrs) -> Git {
    let mut git = Git::default();
    if let Some(Value::Object(map)) = attrs.get("git") {
        if let Some(depth) = map.get("depth") {
            git.depth = match depth {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::Bool(false) => None,
                Value::String(s) => s.parse().ok(),
                _ => git.depth,
            };
        }
        if let Some(Value::Bool(b)) = map.get("clone") {
            git.clone = *b;
        }
        if let Some(Value::Bool(b)) = map.get("submodules") {
            git.submodules = *b;
        }
        if let Some(depth) = map.get("submodules_depth") {
            git.submodules_depth = match depth {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .filter(|&n| n > 0);
        }
        if let Some(Value::Bool(b)) = map.get("lfs_skip_smudge") {
            git.lfs_skip_smudge = *b;
        }
        if let Some(Value::String(s)) = map.get("sparse_checkout") {
            git.sparse_checkout = Some(s.clone());
        }
    }
    git
}

/// Decides whether a deploy runs for this job and event, in Travis's order of checks.
fn deploy_decision(d: &DeploySpec, job: &Attrs, ctx: &Context) -> Decision {
    let no = |reason: String| Decision {
        included: false,
        reason,
    };
    if ctx.event == EventType::PullRequest {
        return no("deploys never run on pull request builds".to_owned());
    }
    if let Some(repo) = &d.on.repo
        && *repo != ctx.repo
    {
        return no(format!("on.repo is {repo}, this build is for {}", ctx.repo));
    }
    for (key, want) in &d.on.matrix {
        let have = job.str_of(key);
        if have != Some(want.as_str()) {
            return no(format!(
                "on.{key} is {want}, this job has {}",
                have.unwrap_or("none")
            ));
        }
    }
    let mut reasons = Vec::new();
    let branch = request_branch(ctx);
    match (d.on.tags, &ctx.tag) {
        (Some(true), None) => return no("on.tags is true and this is not a tag build".to_owned()),
        (Some(false), Some(tag)) => {
            return no(format!("on.tags is false and this build is for tag {tag}"));
        }
        (Some(true), Some(tag)) => reasons.push(format!("on.tags is true and {tag} is a tag")),
        _ => {}
    }
    if d.on.tags != Some(true) {
        if d.on.all_branches {
            reasons.push("on.all_branches is true".to_owned());
        } else {
            let default = [DEFAULT_DEPLOY_BRANCH.to_owned()];
            let (branches, which) = if d.on.branch.is_empty() {
                (&default[..], "the default deploy branch")
            } else {
                (&d.on.branch[..], "on.branch")
            };
            if !branches.iter().any(|p| branch_matches(p, branch)) {
                return no(format!(
                    "branch {branch} is not {which} ({})",
                    branches.join(", ")
                ));
            }
            reasons.push(format!("branch {branch} matches {which}"));
        }
    }
    if !d.on.condition.is_empty() {
        reasons.push(format!(
            "on.condition {} is evaluated by the job's shell at deploy time",
            d.on.condition
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    Decision {
        included: true,
        reason: reasons.join("; "),
    }
}

fn plan_deploy(d: DeploySpec, job: &Attrs, ctx: &Context) -> Deploy {
    let decision = deploy_decision(&d, job, ctx);
    Deploy {
        provider: d.provider,
        options: d.options,
        condition: d.on.condition,
        decision,
        skip_cleanup: d.skip_cleanup,
        allow_failure: d.allow_failure,
        edge: d.edge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_patterns() {
        assert!(branch_matches("master", "master"));
        assert!(!branch_matches("master", "master2"));
        assert!(branch_matches("/^v\\d+/", "v1.0.0"));
        assert!(!branch_matches("/^v\\d+/", "feature"));
        assert!(!branch_matches("/(/", "("));
    }
}
