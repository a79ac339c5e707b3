//! `slipway plan`: show what a pipeline file means for one event, and why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args as ClapArgs, ValueEnum};
use slipway_pipelines::placement::{self, Placement};
use slipway_pipelines::plan::{Context, EnvValue, EventType, Job, Plan};
use slipway_runner::image_map::ImageMap;

use crate::cmd::images::{ImageArgs, describe_job_image, describe_service_images};
use crate::cmd::preview::{
    Preview, cleanup_note, deploy_previews, with_deploy_calls, write_preview,
};
use crate::cmd::vars::{RunVars, VarArgs};

/// Arguments of `slipway plan`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The pipeline file (default: `.slipway.yml`, else `.travis.yml`, in the current directory).
    pub file: Option<PathBuf>,
    /// The pipeline file, as an option.
    #[arg(short = 'f', long = "file", conflicts_with = "file")]
    pub file_opt: Option<PathBuf>,
    /// The event to plan for.
    #[arg(long, value_enum, default_value_t = Event::Push)]
    pub event: Event,
    /// The branch built (for a pull request: its base branch).
    #[arg(long, default_value = "master")]
    pub branch: String,
    /// The tag, for a tag push.
    #[arg(long)]
    pub tag: Option<String>,
    /// The pull request number (implies `--event pull_request` when no event is given).
    #[arg(long = "pull-request")]
    pub pull_request: Option<u64>,
    /// The pull request comes from a fork.
    #[arg(long)]
    pub fork: bool,
    /// The repository slug, `owner/name` (default: from the `origin` remote of the pipeline
    /// file's directory, else `local/<its name>`). Its settings variables are resolved by name.
    #[arg(long)]
    pub repo: Option<String>,
    /// The commit message conditions see.
    #[arg(long = "commit-message", default_value = "")]
    pub commit_message: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// A local checkout of a repository `import:` names, `owner/name=DIR` (repeatable).
    #[arg(long = "import-repo", value_name = "OWNER/NAME=DIR")]
    pub import_repo: Vec<String>,
    /// The most jobs the build may have.
    #[arg(long = "max-jobs", default_value_t = slipway_pipelines::DEFAULT_MAX_JOBS)]
    pub max_jobs: u64,
    /// Variables for the run planned (resolved by name; secrets are never shown).
    #[command(flatten)]
    pub vars: VarArgs,
    /// Images mapped as `slipway run` would map them.
    #[command(flatten)]
    pub images: ImageArgs,
}

/// The event types `--event` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Event {
    /// A branch or tag push.
    Push,
    PullRequest,
    /// An API-triggered build.
    Api,
    /// A scheduled build.
    Cron,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text.
    Human,
    /// The plan as JSON.
    Json,
}

/// Finds the pipeline file in `dir`: `.slipway.yml` first, then `.travis.yml`.
pub fn find_pipeline_file(dir: &Path) -> Option<PathBuf> {
    [".slipway.yml", ".travis.yml"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `slipway plan`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = match args.file.clone().or(args.file_opt.clone()) {
        Some(p) => p,
        None => find_pipeline_file(Path::new("."))
            .context("no .slipway.yml or .travis.yml here; name the file with -f FILE")?,
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = path.display().to_string();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let repo = args
        .repo
        .clone()
        .unwrap_or_else(|| crate::cmd::repo::default_repo(dir));
    let given = args.vars.read()?;
    let vars = RunVars::resolve(&repo, &given)?;
    let images = args.images.map()?;
    let mut ctx = context_of(&args, repo);
    ctx.env.extend(VarArgs::plain(&given));
    let imports = crate::cmd::imports::LocalImports::new(dir, &args.import_repo)?;
    let mut fetch = |s: &slipway_pipelines::imports::Source| imports.read(s);
    let planned = slipway_pipelines::plan_imported(
        &file,
        &bytes,
        &ctx,
        slipway_pipelines::PlanOptions {
            max_jobs: args.max_jobs,
            ..Default::default()
        },
        &mut fetch,
    );
    match planned {
        Ok(plan) => {
            let out = match args.format {
                Format::Json => {
                    serde_json::to_string_pretty(&with_deploy_calls(&plan, dir, &vars))? + "\n"
                }
                Format::Human => {
                    let extras = Extras {
                        variables: &vars.describe(),
                        images: &images,
                    };
                    render_with(&plan, extras, |job| deploy_previews(&plan, job, dir, &vars))
                }
            };
            print!("{out}");
            Ok(())
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!("{file}: cannot be planned");
            std::process::exit(1);
        }
    }
}

fn context_of(args: &Args, repo: String) -> Context {
    let ctx = event_context(
        args.event,
        args.pull_request,
        args.tag.as_ref(),
        args.fork,
        || args.branch.clone(),
        repo,
    );
    Context {
        head_repo: (ctx.event == EventType::PullRequest).then(|| ctx.repo.clone()),
        commit_message: args.commit_message.clone(),
        ..ctx
    }
}

/// What `slipway plan` and `slipway run` read alike from their flags: the event (`--pull-request`
/// makes a push a pull request), the branch (a tag push's is the tag, else `branch()`), the tag,
/// the pull request's number (1 when the event is one and no number was given), the fork flag and
/// the repository. The rest is the caller's.
pub(crate) fn event_context(
    event: Event,
    pull_request: Option<u64>,
    tag: Option<&String>,
    fork: bool,
    branch: impl FnOnce() -> String,
    repo: String,
) -> Context {
    let event = match (event, pull_request) {
        (Event::Push, Some(_)) => EventType::PullRequest,
        (Event::Push, None) => EventType::Push,
        (Event::PullRequest, _) => EventType::PullRequest,
        (Event::Api, _) => EventType::Api,
        (Event::Cron, _) => EventType::Cron,
    };
    let branch = match (tag, event) {
        (Some(tag), EventType::Push) => tag.clone(),
        _ => branch(),
    };
    Context {
        event,
        branch,
        tag: tag.cloned(),
        pull_request: pull_request.or((event == EventType::PullRequest).then_some(1)),
        fork,
        repo,
        ..Context::default()
    }
}

/// The add-ons a job applies before `before_install`, and those it cannot honour.
fn render_addons(out: &mut String, a: &slipway_pipelines::plan::Addons) {
    if let Some(apt) = &a.apt {
        let _ = writeln!(
            out,
            "    addons.apt: {} source(s), packages: {}{}",
            apt.sources.len(),
            if apt.packages.is_empty() {
                "none".to_owned()
            } else {
                apt.packages.join(" ")
            },
            if apt.update { " (update)" } else { "" }
        );
    }
    let simple = [
        ("hosts", (!a.hosts.is_empty()).then(|| a.hosts.join(" "))),
        ("hostname", a.hostname.clone()),
        (
            "ssh_known_hosts",
            (!a.ssh_known_hosts.is_empty()).then(|| a.ssh_known_hosts.join(" ")),
        ),
        ("chrome", a.chrome.clone()),
        ("firefox", a.firefox.clone()),
        ("postgresql", a.postgresql.clone()),
        ("mariadb", a.mariadb.clone()),
    ];
    for (name, value) in simple {
        if let Some(v) = value {
            let _ = writeln!(out, "    addons.{name}: {v}");
        }
    }
    if let Some(artifacts) = &a.artifacts {
        let paths = artifacts
            .get("paths")
            .map(|p| p.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    addons.artifacts: uploaded to S3 after the job {paths}"
        );
    }
    for n in &a.not_honoured {
        let _ = writeln!(
            out,
            "    addons.{}: skipped: {}; instead, {}",
            n.addon, n.why, n.instead
        );
    }
}

/// What a plan is rendered with besides itself: the variables exported before the file's `env:`
/// (as [`RunVars::describe`] gives them) and the image map in force.
#[derive(Debug, Clone, Copy)]
pub struct Extras<'a> {
    /// One line per settings or run variable, secrets as `[secure]`.
    pub variables: &'a [String],
    /// The images jobs and services really pull.
    pub images: &'a ImageMap,
}

/// Renders a plan for reading in a terminal: the variables, then each stage and job, and under
/// each deploy the API calls `previews` gives for its job.
pub fn render_with(
    plan: &Plan,
    extras: Extras<'_>,
    previews: impl Fn(&Job) -> Vec<Preview>,
) -> String {
    let mut out = String::new();
    let ctx = &plan.context;
    let _ = writeln!(
        out,
        "{}: {} on {}{}",
        plan.file,
        ctx.event.as_str(),
        ctx.branch,
        ctx.tag
            .as_ref()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default()
    );
    let verdict = if plan.build.included {
        "build"
    } else {
        "no build"
    };
    let _ = writeln!(out, "{verdict}: {}", plan.build.reason);
    if !extras.variables.is_empty() {
        let _ = writeln!(out, "variables before the file's env:");
        for line in extras.variables {
            let _ = writeln!(out, "  {line}");
        }
    }
    if plan.fast_finish {
        let _ = writeln!(
            out,
            "fast_finish: the build finishes once required jobs are done"
        );
    }
    for stage in &plan.stages {
        let _ = writeln!(out, "\nstage {}", stage.name);
        for job in &stage.jobs {
            let previews = if job.deploys.is_empty() {
                Vec::new()
            } else {
                previews(job)
            };
            render_job(&mut out, job, extras.images, &previews);
        }
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "\nskipped");
        for s in &plan.skipped {
            let _ = writeln!(out, "  {}: {}", s.what, s.reason);
        }
    }
    out
}

/// One job of a rendered plan: title, why, the image it really uses, env, phases and deploys.
fn render_job(out: &mut String, job: &Job, images: &ImageMap, runs: &[Preview]) {
    let title = job.name.clone().unwrap_or_else(|| {
        job.matrix
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "env" | "if"))
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str().map(str::to_owned).unwrap_or(v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let af = if job.allow_failure {
        " (allowed to fail)"
    } else {
        ""
    };
    let _ = writeln!(out, "  job {}: {title}{af}", job.number);
    let _ = writeln!(out, "    why: {}", job.reason);
    let _ = writeln!(out, "    image: {}", describe_job_image(job, images));
    let hosting = slipway_runner::hosting::detect(Default::default());
    if let Placement::NotHere(why) = placement::place(job, &hosting) {
        let _ = writeln!(out, "    not run here: {why}");
    }
    render_addons(out, &job.addons);
    for var in &job.env {
        let value = match &var.value {
            EnvValue::Plain(v) => format!("{}={v}", var.name),
            EnvValue::Secure(_) => format!("{}=[secure]", var.name),
            EnvValue::SecureAssignment(_) => "[secure]".to_owned(),
        };
        let _ = writeln!(out, "    env: {value}");
    }
    if !job.services.is_empty() {
        let _ = writeln!(out, "    services: {}", job.services.join(", "));
    }
    for line in describe_service_images(job, images) {
        let _ = writeln!(out, "    {line}");
    }
    for phase in &job.phases {
        let source = match phase.source {
            slipway_pipelines::plan::PhaseSource::File => "",
            slipway_pipelines::plan::PhaseSource::Default => " (default)",
        };
        let suffix = if phase.commands.is_empty() {
            " (nothing)"
        } else {
            ""
        };
        let _ = writeln!(out, "    {}{source}:{suffix}", phase.name.as_str());
        for cmd in &phase.commands {
            let _ = writeln!(out, "      $ {cmd}");
        }
    }
    for (i, deploy) in job.deploys.iter().enumerate() {
        let verdict = if deploy.decision.included {
            "runs"
        } else {
            "skipped"
        };
        let cleanup = cleanup_note(deploy);
        let _ = writeln!(
            out,
            "    deploy {}: {verdict}: {}{cleanup}",
            deploy.provider, deploy.decision.reason
        );
        if let Some(preview) = runs.get(i) {
            write_preview(out, "      ", preview);
        }
    }
}
