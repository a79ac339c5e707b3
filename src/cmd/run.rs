//! `slipway run`: run a pipeline file's jobs locally in Docker, on the working tree as it is.
//!
//! The working tree is packed with uncommitted changes (see `slipway_runner::workspace`), the
//! plan is computed for the event the flags describe (branch, commit and repository default to
//! the local git repository's), and the jobs run exactly as the service runs them. `--dry-run`
//! needs no engine: it prints the containers, networks, volumes and script each job would get.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use slipway_pipelines::plan::{Context, EventType, Outcome, Plan};
use slipway_runner::docker::DockerExecutor;
use slipway_runner::executor::SweepReport;
use slipway_runner::kubernetes::{KubernetesConfig, KubernetesExecutor};
use slipway_runner::runner::{StoreSecrets, build_dir};
use slipway_runner::{
    BuildEvent, BuildInfo, BuildOutcome, BuildResult, CancellationToken, Executor, JobEvent,
    Runner, RunnerOptions, ServiceSpec,
};
use tokio::sync::mpsc;

use crate::cmd::images::ImageArgs;
use crate::cmd::notify;
use crate::cmd::plan::{Event, event_context, find_pipeline_file};
use crate::cmd::vars::{RunVars, VarArgs};

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    /// Containers on the local Docker engine.
    Docker,
    /// A pod per job in a Kubernetes cluster.
    Kubernetes,
}

/// Arguments of `slipway run`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The repository directory (default: the current directory).
    pub dir: Option<PathBuf>,
    /// The pipeline file (default: `.slipway.yml`, else `.travis.yml`, in DIR).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Run only the job with this number (see `slipway plan`).
    #[arg(long)]
    pub job: Option<usize>,
    /// Run only the jobs of this stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// The event to run for.
    #[arg(long, value_enum, default_value_t = Event::Push)]
    pub event: Event,
    /// The branch built (default: the checked-out branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// The tag, for a tag push.
    #[arg(long)]
    pub tag: Option<String>,
    /// The pull request number (implies `--event pull_request`).
    #[arg(long = "pull-request")]
    pub pull_request: Option<u64>,
    /// The repository slug `owner/name` (default: from the `origin` remote, else `local/<DIR's
    /// name>`). Its settings variables and secrets are available only when its key is in the
    /// data dir.
    #[arg(long)]
    pub repo: Option<String>,
    /// Run as a pull request from a fork: no secrets, no Docker engine, no deploy (the fork rule).
    #[arg(long)]
    pub fork: bool,
    /// Jobs of a stage run at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Print what would be created and run, without a Docker engine.
    #[arg(long)]
    pub dry_run: bool,
    /// Job time limit in minutes.
    #[arg(long, default_value_t = 50)]
    pub timeout: u64,
    /// Minutes without output after which a job is stopped.
    #[arg(long = "no-output-timeout", default_value_t = 10)]
    pub no_output_timeout: u64,
    /// Use a local image for a service, e.g. `redis=my/redis:7` (no readiness check).
    #[arg(long = "service-image", value_name = "NAME=IMAGE")]
    pub service_image: Vec<String>,
    /// Do not use or save caches.
    #[arg(long)]
    pub no_cache: bool,
    /// The repository's default branch: the last cache every build may start from (read-only).
    #[arg(long = "default-branch", default_value = "master")]
    pub default_branch: String,
    /// The most jobs the build may have.
    #[arg(long = "max-jobs", default_value_t = slipway_pipelines::DEFAULT_MAX_JOBS)]
    pub max_jobs: u64,
    /// The most a job may write into its container's filesystem, in GiB (volumes excepted).
    #[arg(long = "disk-limit", value_name = "GIB", default_value_t = 20)]
    pub disk_limit: u64,
    /// Run jobs of another `os:` in a Linux image, e.g. `osx=my/macos-tools:1`; without it such
    /// jobs are not run here.
    #[arg(long = "os-image", value_name = "OS=IMAGE")]
    pub os_image: Vec<String>,
    /// A local checkout of a repository `import:` names, `owner/name=DIR` (repeatable).
    #[arg(long = "import-repo", value_name = "OWNER/NAME=DIR")]
    pub import_repo: Vec<String>,
    /// Where jobs run: containers on the local Docker engine, or a pod per job in the
    /// Kubernetes cluster of the current kubeconfig context (see docs/kubernetes.md).
    #[arg(long, value_enum, default_value_t = ExecutorArg::Docker)]
    pub executor: ExecutorArg,
    /// The namespace job pods run in (`--executor kubernetes`).
    #[arg(long = "kubernetes-namespace", default_value = "default")]
    pub kubernetes_namespace: String,
    /// Variables and secrets for this run.
    #[command(flatten)]
    pub vars: VarArgs,
    /// Images mapped to others (a mirror, a local build) without editing the file.
    #[command(flatten)]
    pub images: ImageArgs,
}

/// What the local repository says about the commit built. Read by two `git` processes started
/// together (its branch; everything else in one `git log`), not one process per fact: each one
/// costs a `slipway run` several milliseconds before anything starts, more on a busy machine.
#[derive(Debug, Default)]
struct LocalCommit {
    branch: Option<String>,
    sha: Option<String>,
    message: String,
    people: notify::People,
}

/// The fields of [`LocalCommit`] after the branch, separated by NUL; the message last, as it may
/// hold anything else.
const COMMIT_FORMAT: &str = "--format=%H%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B";

fn local_commit(dir: &Path) -> LocalCommit {
    let spawn = |args: &[&str]| {
        Process::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    };
    let branch = spawn(&["rev-parse", "--abbrev-ref", "HEAD"]);
    let log = spawn(&["log", "-1", COMMIT_FORMAT]);
    let output = |child: Option<std::process::Child>| {
        child
            .and_then(|c| c.wait_with_output().ok())
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let branch = output(branch)
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty() && b != "HEAD");
    parse_commit(branch, &output(log).unwrap_or_default())
}

fn parse_commit(branch: Option<String>, log: &str) -> LocalCommit {
    let mut fields = log.splitn(7, '\0').map(str::trim);
    let mut next = || fields.next().unwrap_or_default().to_string();
    let some = |s: String| (!s.is_empty()).then_some(s);
    let sha = some(next());
    let people = notify::People {
        author_name: next(),
        author_email: next(),
        committer_name: next(),
        committer_email: next(),
        committed_at: some(next()),
    };
    LocalCommit {
        branch,
        sha,
        message: next(),
        people,
    }
}

fn context_of(args: &Args, repo: String, commit: &LocalCommit) -> Context {
    let local_branch = commit.branch.clone();
    let ctx = event_context(
        args.event,
        args.pull_request,
        args.tag.as_ref(),
        args.fork,
        || {
            args.branch
                .clone()
                .or(local_branch.clone())
                .unwrap_or_else(|| "master".into())
        },
        repo,
    );
    let pull_request = ctx.event == EventType::PullRequest;
    Context {
        head_repo: pull_request.then(|| {
            if args.fork {
                format!("fork/{}", ctx.repo.rsplit('/').next().unwrap_or("project"))
            } else {
                ctx.repo.clone()
            }
        }),
        head_branch: pull_request.then_some(local_branch).flatten(),
        commit_message: commit.message.clone(),
        commit: commit.sha.clone(),
        sender: std::env::var("USER").unwrap_or_default(),
        // `--default-branch` reaches the runner's options; the context names none of its own.
        ..ctx
    }
}

/// Keeps only the stages and jobs `--stage` and `--job` select.
fn select(plan: &mut Plan, stage: Option<&str>, job: Option<usize>) -> anyhow::Result<()> {
    if let Some(s) = stage {
        plan.stages.retain(|st| st.name == s);
        if plan.stages.is_empty() {
            bail!("the plan has no stage named {s}");
        }
    }
    if let Some(n) = job {
        for st in &mut plan.stages {
            st.jobs.retain(|j| j.number == n);
        }
        plan.stages.retain(|st| !st.jobs.is_empty());
        if plan.stages.is_empty() {
            bail!("the plan has no job number {n} (see `slipway plan`)");
        }
    }
    Ok(())
}

fn options(args: &Args) -> anyhow::Result<RunnerOptions> {
    let mut overrides = HashMap::new();
    for spec in &args.service_image {
        let (name, image) = spec
            .split_once('=')
            .context("--service-image takes NAME=IMAGE")?;
        overrides.insert(
            name.to_string(),
            ServiceSpec {
                name: name.into(),
                image: image.into(),
                env: slipway_runner::services::default_spec(name)
                    .map(|s| s.env)
                    .unwrap_or_default(),
                cmd: None,
                ready: None,
                aliases: slipway_runner::services::default_spec(name)
                    .map(|s| s.aliases)
                    .unwrap_or_default(),
            },
        );
    }
    let mut os_images = std::collections::BTreeMap::new();
    for spec in &args.os_image {
        let (os, image) = spec
            .split_once('=')
            .filter(|(os, image)| !os.is_empty() && !image.is_empty())
            .with_context(|| {
                format!("--os-image takes OS=IMAGE (e.g. osx=my/tools:1), not {spec}")
            })?;
        os_images.insert(os.to_ascii_lowercase(), image.to_string());
    }
    Ok(RunnerOptions {
        images: args.images.map()?,
        hosting: slipway_runner::hosting::detect(os_images),
        parallel: args.jobs.max(1),
        job_timeout: Duration::from_secs(args.timeout * 60),
        no_output_timeout: Duration::from_secs(args.no_output_timeout * 60),
        // A local run is the developer's own code on their own machine, unless it plays a fork.
        trusted: !args.fork,
        service_overrides: overrides,
        cache: !args.no_cache,
        default_branch: args.default_branch.clone(),
        limits: slipway_runner::ResourceLimits {
            disk_bytes: args.disk_limit.saturating_mul(1 << 30),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn secrets_for(repo: &str) -> Option<Arc<dyn slipway_runner::SecretSource>> {
    let dir = slipway_secrets::default_data_dir().ok()?;
    let store = slipway_secrets::SecretStore::new(dir);
    let slug = slipway_secrets::RepoSlug::parse(repo).ok()?;
    store
        .key_file(&slug)
        .is_file()
        .then(|| Arc::new(StoreSecrets(store)) as Arc<dyn slipway_runner::SecretSource>)
}

/// Runs `slipway run`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let path = match &args.file {
        Some(f) => f.clone(),
        None => find_pipeline_file(&dir).with_context(|| {
            format!(
                "no .slipway.yml or .travis.yml in {}; name the file with -f FILE",
                dir.display()
            )
        })?,
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if args.fork && args.event != Event::PullRequest && args.pull_request.is_none() {
        bail!("--fork describes a pull request: add --event pull_request or --pull-request N");
    }
    let given = args.vars.read()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The engine is reached, swept and guarded while the plan is made: none of it needs the plan.
    let mut engine = (!args.dry_run).then(|| Engine::start(&rt, &args));
    let repo = args
        .repo
        .clone()
        .unwrap_or_else(|| crate::cmd::repo::default_repo(&dir));
    // So is the workspace packed, from as soon as the repository's slug (the build dir) is known,
    // beside reading the commit.
    if let Some(engine) = engine.as_mut() {
        engine.pack(&rt, &dir, &repo);
    }
    let commit = local_commit(&dir);
    let mut ctx = context_of(&args, repo, &commit);
    ctx.env.extend(VarArgs::plain(&given));
    let file = path.display().to_string();
    let planning = slipway_pipelines::PlanOptions {
        max_jobs: args.max_jobs,
        ..Default::default()
    };
    let imports = crate::cmd::imports::LocalImports::new(&dir, &args.import_repo)?;
    let mut fetch = |s: &slipway_pipelines::imports::Source| imports.read(s);
    let planned = slipway_pipelines::plan_imported(&file, &bytes, &ctx, planning, &mut fetch);
    let mut plan = match planned {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            bail!("{file} cannot be planned");
        }
    };
    if !plan.build.included {
        println!("No build for this event: {}", plan.build.reason);
        return Ok(());
    }
    select(&mut plan, args.stage.as_deref(), args.job)?;
    let mut opts = options(&args)?;
    opts.secrets = secrets_for(&ctx.repo);
    opts.run_vars = given.iter().map(|g| g.var.clone()).collect();
    opts.deploy_hook = Some(Arc::new(slipway_providers::ProviderHook::local()));
    opts.artifacts_hook = Some(Arc::new(slipway_providers::ProviderHook::local()));
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random build id: {e}"))?;
    let build = BuildInfo {
        id: format!("l{}", hex::encode(b)),
        number: 1,
    };
    if args.dry_run {
        let vars = RunVars::resolve(&plan.context.repo, &given)?;
        return crate::cmd::dry_run::print(&plan, &build, opts, &dir, &vars);
    }
    let mut facts = notify::facts(&plan, &build.id, commit.people);
    notify::print(&plan, Outcome::Started, None, &facts);
    let whole = args.job.is_none() && args.stage.is_none();
    let engine = engine.context("no engine was started")?;
    let outcome = rt.block_on(run_plan(plan.clone(), build, opts, dir, engine))?;
    let previous = notify::previous(&plan);
    notify::finish(&mut facts, &outcome, previous);
    let result = notify::outcome_of(outcome.result);
    notify::print(&plan, result, previous, &facts);
    // A partial run (`--job`, `--stage`) says nothing about the branch's next build.
    if whole {
        notify::remember(&plan, result)?;
    }
    if outcome.result != BuildResult::Passed {
        std::process::exit(1);
    }
    Ok(())
}

/// Prints logs as they come: raw when one job runs at a time, line-prefixed when several do.
struct Printer {
    prefix: bool,
    build: u64,
    partial: HashMap<usize, Vec<u8>>,
}

impl Printer {
    fn print(&mut self, ev: &BuildEvent) {
        let mut out = std::io::stdout().lock();
        match &ev.event {
            JobEvent::Log(bytes) if !self.prefix => {
                let _ = out.write_all(bytes);
                let _ = out.flush();
            }
            JobEvent::Log(bytes) => {
                let buf = self.partial.entry(ev.job).or_default();
                buf.extend_from_slice(bytes);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    let _ = write!(out, "[{}.{}] ", self.build, ev.job);
                    let _ = out.write_all(&line);
                }
                let _ = out.flush();
            }
            JobEvent::Finished(_) => {
                if let Some(rest) = self.partial.remove(&ev.job)
                    && !rest.is_empty()
                {
                    let _ = write!(out, "[{}.{}] ", self.build, ev.job);
                    let _ = out.write_all(&rest);
                    let _ = writeln!(out);
                }
            }
            _ => {}
        }
    }
}

/// The executor a run uses, being connected to and swept, and the job network rules being put in
/// place, in the background from the start of `slipway run`.
struct Engine {
    ready: tokio::task::JoinHandle<anyhow::Result<(Arc<dyn Executor>, SweepReport)>>,
    guarding: tokio::task::JoinHandle<slipway_runner::netguard::GuardReport>,
    /// The workspace being packed, and for which build dir.
    packing: Option<(String, Packing)>,
}

type Packing = tokio::task::JoinHandle<
    Result<slipway_runner::workspace::Workspace, slipway_runner::workspace::WorkspaceError>,
>;

impl Engine {
    fn start(rt: &tokio::runtime::Runtime, args: &Args) -> Engine {
        let kubernetes = (args.executor == ExecutorArg::Kubernetes).then(|| KubernetesConfig {
            namespace: args.kubernetes_namespace.clone(),
            ..KubernetesConfig::default()
        });
        let ready = rt.spawn(async move {
            let executor: Arc<dyn Executor> = match kubernetes {
                Some(config) => Arc::new(KubernetesExecutor::connect(config).await?),
                None => Arc::new(DockerExecutor::connect().await?),
            };
            let swept = executor.sweep().await?;
            Ok((executor, swept))
        });
        // The job network rules (a few iptables calls) are in force before any job starts.
        let guarding = rt.spawn_blocking(|| slipway_runner::netguard::install(&[]));
        Engine {
            ready,
            guarding,
            packing: None,
        }
    }

    /// Starts packing `dir` for the build dir of `repo` (`git ls-files` and the tar: tens of
    /// milliseconds that need neither the plan nor the engine).
    fn pack(&mut self, rt: &tokio::runtime::Runtime, dir: &Path, repo: &str) {
        let at = build_dir(&RunnerOptions::default().build_root, repo);
        let (dir, build_dir) = (dir.to_path_buf(), at.clone());
        let packing = rt.spawn_blocking(move || slipway_runner::workspace::pack(&dir, &build_dir));
        self.packing = Some((at, packing));
    }
}

async fn run_plan(
    plan: Plan,
    build: BuildInfo,
    opts: RunnerOptions,
    dir: PathBuf,
    mut engine: Engine,
) -> anyhow::Result<BuildOutcome> {
    let build_dir = build_dir(&opts.build_root, &plan.context.repo);
    let packing = match engine.packing.take() {
        Some((at, packing)) if at == build_dir => packing,
        _ => {
            let ws_dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                slipway_runner::workspace::pack(&ws_dir, &build_dir)
            })
        }
    };
    let (executor, swept) = engine.ready.await??;
    let n = swept.containers.len() + swept.networks.len() + swept.volumes.len();
    if n > 0 {
        eprintln!(
            "Removed {n} resource(s) a previous run left behind: {}",
            [swept.containers, swept.networks, swept.volumes]
                .concat()
                .join(", ")
        );
    }
    let workspace = packing.await??;
    eprintln!(
        "Packed {} files ({} KiB) of {} with uncommitted changes.",
        workspace.files,
        workspace.bytes / 1024,
        dir.display()
    );
    for line in &engine.guarding.await?.not_enforced {
        eprintln!("Not enforced: {line}");
    }
    let parallel = opts.parallel;
    let runner = Runner::new(executor, opts);
    let prefix = parallel > 1 && plan.stages.iter().any(|s| s.jobs.len() > 1);
    let mut printer = Printer {
        prefix,
        build: build.number,
        partial: HashMap::new(),
    };
    let (tx, mut rx) = mpsc::channel::<BuildEvent>(256);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nCanceling (Ctrl-C); cleaning up the job containers…");
            c.cancel();
        }
    });
    let print_task = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            printer.print(&ev);
        }
    });
    let outcome = runner
        .run_build(&plan, &build, Some(&workspace), tx, cancel)
        .await;
    print_task.await?;
    print!("{}", summary(&build, &outcome));
    Ok(outcome)
}

fn summary(build: &BuildInfo, outcome: &BuildOutcome) -> String {
    let mut s = String::from("\njob      stage            result    duration  name\n");
    for j in &outcome.jobs {
        s.push_str(&format!(
            "{:<8} {:<16} {:<9} {:>8}  {}{}\n",
            format!("{}.{}", build.number, j.number),
            j.stage,
            j.result.as_str(),
            format!("{:.1}s", j.duration.as_secs_f64()),
            j.name.as_deref().unwrap_or(""),
            if j.allow_failure {
                " (allowed to fail)"
            } else {
                ""
            }
        ));
    }
    s.push_str(&format!(
        "\nBuild {} in {:.1}s.\n",
        outcome.result.as_str(),
        outcome.duration.as_secs_f64()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_git_log_gives_every_fact_of_the_commit() {
        let log = "0123abcd\0Ada Author\0ada@example.invalid\0Cy Committer\0cy@example.invalid\0\
                   2026-01-02T03:04:05+00:00\0Fix the build\n\nIt said: a\0b\n\n";

        let commit = parse_commit(Some("main".into()), log);

        assert_eq!(commit.branch.as_deref(), Some("main"));
        assert_eq!(commit.sha.as_deref(), Some("0123abcd"));
        assert_eq!(commit.message, "Fix the build\n\nIt said: a\0b");
        assert_eq!(
            commit.people,
            notify::People {
                author_name: "Ada Author".into(),
                author_email: "ada@example.invalid".into(),
                committer_name: "Cy Committer".into(),
                committer_email: "cy@example.invalid".into(),
                committed_at: Some("2026-01-02T03:04:05+00:00".into()),
            }
        );
    }

    #[test]
    fn a_repository_without_commits_has_no_facts() {
        let commit = parse_commit(None, "");

        assert_eq!(commit.sha, None);
        assert_eq!(commit.message, "");
        assert_eq!(commit.people, notify::People::default());
    }
}
