//! Test harness: a real Docker engine, the local test images, and pipelines run end to end.
#![allow(dead_code)]

pub mod kube;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use slipway_pipelines::plan::{Context, Job, Plan};
use slipway_runner::docker::{DockerExecutor, Kind};
use slipway_runner::script::ScriptInputs;
use slipway_runner::workspace::Workspace;
use slipway_runner::workspace::pack;
use slipway_runner::{
    BuildEvent, BuildInfo, BuildOutcome, BuildResult, CancellationToken, Executor, JobEvent,
    JobResult, Runner, RunnerOptions, ServiceSpec,
};
use tokio::sync::mpsc;

/// What the script of `job` is compiled from when nothing surrounds its phases: no variables,
/// cache, deploys, notices, add-ons, workspaces or artifacts. Tests set the fields they need.
pub fn bare_inputs<'a>(job: &'a Job, nonce: &'a str) -> ScriptInputs<'a> {
    ScriptInputs {
        job,
        nonce,
        env: vec![],
        cache_dirs: vec![],
        cache_archive: false,
        deploys: vec![],
        notices: vec![],
        addons: String::new(),
        workspace_restore: String::new(),
        workspace_save: String::new(),
        artifacts: None,
    }
}

/// True when a missing dependency must fail the run.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (or, under CI=true, fails) with a message.
pub fn missing(what: &str) {
    if ci() {
        panic!("{what} (CI=true: required)");
    }
    eprintln!("skipped: {what}");
}

pub fn busybox() -> String {
    std::env::var("SLIPWAY_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "slipway-test/busybox:latest".into())
}

pub fn debian() -> String {
    std::env::var("SLIPWAY_TEST_DEBIAN_IMAGE")
        .unwrap_or_else(|_| "slipway-test/debian:latest".into())
}

/// The engine and the named images, or `None` (skipped) when absent outside CI.
pub async fn engine(images: &[&str]) -> Option<Arc<DockerExecutor>> {
    let exec = match DockerExecutor::connect().await {
        Ok(e) => e,
        Err(e) => {
            missing(&format!("Docker engine: {e}"));
            return None;
        }
    };
    for image in images {
        if exec.client().inspect_image(image).await.is_err() {
            missing(&format!(
                "test image {image} (build it with scripts/test-images.sh)"
            ));
            return None;
        }
    }
    Some(Arc::new(exec))
}

/// The shared third-party material (`$SLIPWAY_SHARED`, else `../shared` next to the workspace),
/// read in place and never copied; `None` (skipped) when absent outside CI.
pub fn shared_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("corpus").is_dir() {
        return Some(dir);
    }
    missing(&format!(
        "the shared corpus at {} (set SLIPWAY_SHARED)",
        dir.display()
    ));
    None
}

/// A unique build id per test run.
pub fn build_id(tag: &str) -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    format!("t{tag}{}", hex::encode(b))
}

pub fn context(repo: &str, branch: &str) -> Context {
    Context {
        branch: branch.into(),
        repo: repo.into(),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        commit_message: "test commit".into(),
        ..Default::default()
    }
}

/// Plans `yaml` (with `{busybox}` and `{debian}` replaced) for `ctx`.
pub fn plan(yaml: &str, ctx: &Context) -> Plan {
    let yaml = yaml
        .replace("{busybox}", &busybox())
        .replace("{debian}", &debian());
    slipway_pipelines::plan(".slipway.yml", yaml.as_bytes(), ctx)
        .unwrap_or_else(|d| panic!("plan failed: {d:?}"))
}

/// What a build produced: the outcome and each job's log.
pub struct Ran {
    pub outcome: BuildOutcome,
    pub logs: BTreeMap<usize, String>,
    pub events: Vec<BuildEvent>,
}

impl Ran {
    pub fn log(&self, job: usize) -> &str {
        self.logs.get(&job).map(String::as_str).unwrap_or("")
    }
    pub fn job(&self, n: usize) -> &slipway_runner::JobOutcome {
        self.outcome
            .jobs
            .iter()
            .find(|j| j.number == n)
            .expect("job in outcome")
    }
    /// Fails, showing the whole log, unless job `job`'s log holds `needle`.
    #[track_caller]
    pub fn assert_log_contains(&self, job: usize, needle: &str) {
        assert_log_has(self.log(job), &[needle]);
    }
    /// Fails, showing job 1's log, unless the build ended `result` and that log holds every one
    /// of `needles`; returns the log for what else the test checks.
    #[track_caller]
    pub fn expect(&self, result: BuildResult, needles: &[&str]) -> &str {
        let log = self.log(1);
        assert_eq!(self.outcome.result, result, "{log}");
        assert_log_has(log, needles);
        log
    }
    /// As [`Ran::expect`], for job 1's own result.
    #[track_caller]
    pub fn expect_job(&self, result: JobResult, needles: &[&str]) -> &str {
        let log = self.log(1);
        assert_eq!(self.job(1).result, result, "{log}");
        assert_log_has(log, needles);
        log
    }
    /// Fails, showing the logs, unless the build ended `build` and its jobs, in order, `jobs`.
    #[track_caller]
    pub fn assert_results(&self, build: BuildResult, jobs: &[JobResult]) {
        let got: Vec<JobResult> = self.outcome.jobs.iter().map(|j| j.result).collect();
        assert_eq!(
            (self.outcome.result, got.as_slice()),
            (build, jobs),
            "{:#?}",
            self.logs
        );
    }
    /// Fails, showing the whole log, if job `job`'s log holds `needle`.
    #[track_caller]
    pub fn assert_log_lacks(&self, job: usize, needle: &str) {
        let log = self.log(job);
        assert!(
            !log.contains(needle),
            "{needle:?} in job {job}'s log: {log}"
        );
    }
}

/// Fails, showing the whole log, unless `log` holds every one of `needles`.
#[track_caller]
pub fn assert_log_has(log: &str, needles: &[&str]) {
    for needle in needles {
        assert!(log.contains(needle), "{needle:?} missing from log: {log}");
    }
}

pub fn options() -> RunnerOptions {
    RunnerOptions {
        parallel: 2,
        limits: slipway_runner::ResourceLimits {
            memory_bytes: 512 << 20,
            nano_cpus: 1_000_000_000,
            pids: 512,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Plans `yaml` for a push to `acme/app`'s master and runs it without a workspace; `None`
/// (skipped) when the engine or an image the pipeline names (`{busybox}`, `{debian}`) is missing.
pub async fn run_yaml(yaml: &str, options: RunnerOptions) -> Option<Ran> {
    let images: Vec<String> = [("{busybox}", busybox()), ("{debian}", debian())]
        .into_iter()
        .filter(|(placeholder, _)| yaml.contains(placeholder))
        .map(|(_, image)| image)
        .collect();
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    let exec = engine(&images).await?;
    Some(run_yaml_on(exec, options, yaml).await)
}

/// [`run_yaml`] on an engine the test already holds.
pub async fn run_yaml_on(exec: Arc<dyn Executor>, options: RunnerOptions, yaml: &str) -> Ran {
    run(
        exec,
        options,
        &plan(yaml, &context("acme/app", "master")),
        None,
        None,
    )
    .await
}

/// A job workspace packed from a one-commit repository ([`git_repo`]) for `ctx`'s build dir.
pub struct GitWorkspace {
    pub workspace: Workspace,
    /// The commit's id.
    pub head: String,
    _dir: tempfile::TempDir,
}

pub fn git_workspace(ctx: &Context) -> GitWorkspace {
    let dir = tempfile::tempdir().unwrap();
    let head = git_repo(dir.path());
    let build_dir = slipway_runner::runner::build_dir("/home/travis/build", &ctx.repo);
    let workspace = pack(dir.path(), &build_dir).unwrap();
    GitWorkspace {
        workspace,
        head,
        _dir: dir,
    }
}

/// Runs `plan` to its end, collecting events; `cancel_after` cancels the build after a delay.
pub async fn run(
    exec: Arc<dyn Executor>,
    options: RunnerOptions,
    plan: &Plan,
    workspace: Option<&Workspace>,
    cancel_after: Option<Duration>,
) -> Ran {
    run_as(&build_id(""), exec, options, plan, workspace, cancel_after).await
}

/// [`run`] as build `id` (tests that look for what the build left behind by its id).
pub async fn run_as(
    id: &str,
    exec: Arc<dyn Executor>,
    options: RunnerOptions,
    plan: &Plan,
    workspace: Option<&Workspace>,
    cancel_after: Option<Duration>,
) -> Ran {
    let runner = Runner::new(exec.clone(), options);
    let build = BuildInfo {
        id: id.to_string(),
        number: 7,
    };
    let (tx, mut rx) = mpsc::channel(64);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    let token = CancellationToken::new();
    if let Some(d) = cancel_after {
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            t.cancel();
        });
    }
    let outcome = runner.run_build(plan, &build, workspace, tx, token).await;
    let events = collector.await.unwrap();
    // Nothing of the build may be left: no container, network or job volume.
    if let Ok(docker) = DockerExecutor::connect().await {
        let left = labelled(&docker, &format!("dev.slipway.build={}", build.id)).await;
        assert_eq!(left, (vec![], vec![], vec![]), "resources left behind");
    }
    let mut logs: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    for e in &events {
        if let JobEvent::Log(b) = &e.event {
            logs.entry(e.job).or_default().extend_from_slice(b);
        }
    }
    let logs = logs
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    Ran {
        outcome,
        logs,
        events,
    }
}

/// A git repository with one commit, for jobs that need `.git`.
pub fn git_repo(dir: &Path) -> String {
    // The identity as configuration: the machine may have none.
    let git = |args: &[&str]| {
        let identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"];
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(identity)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "git {args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("hello.txt"), "hello from the workspace\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "ignored.txt\n").unwrap();
    std::fs::write(dir.join("ignored.txt"), "should not be copied\n").unwrap();
    git(&["add", "hello.txt", ".gitignore"]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(dir.join("uncommitted.txt"), "local edit\n").unwrap();
    git(&["rev-parse", "HEAD"])
}

/// Resources carrying the Slipway label, as the executor finds them for teardown (names).
pub async fn labelled(
    exec: &DockerExecutor,
    label: &str,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let filters = std::collections::HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let names = async |kind| {
        let found = exec.labelled(kind, &filters).await.unwrap();
        found.into_iter().map(|o| o.name).collect()
    };
    (
        names(Kind::Container).await,
        names(Kind::Network).await,
        names(Kind::Volume).await,
    )
}

/// `redis` replaced by a stand-in built from the busybox image: an HTTP server on redis's port,
/// also known as `redis-server`.
pub fn redis_standin() -> std::collections::HashMap<String, ServiceSpec> {
    std::collections::HashMap::from([(
        "redis".to_string(),
        ServiceSpec {
            name: "redis".into(),
            image: busybox(),
            env: vec![],
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "mkdir -p /www && echo PONG > /www/index.html && exec httpd -f -p 6379 -h /www"
                    .into(),
            ]),
            ready: Some(vec![
                "wget".into(),
                "-q".into(),
                "-O".into(),
                "/dev/null".into(),
                "http://127.0.0.1:6379/".into(),
            ]),
            aliases: vec!["redis-server".into()],
        },
    )])
}

/// A job asking [`redis_standin`] for `PONG` on localhost, by its name and by its alias.
pub const REDIS_PIPELINE: &str = r#"
image: "{busybox}"
services: [redis]
script:
  - wget -q -O- http://localhost:6379/
  - wget -q -O- http://redis:6379/
  - wget -q -O- http://redis-server:6379/
"#;

/// A provider whose job step builds `pkg/built.txt` (or fails when the deploy's options say
/// `fail`), and whose deploy succeeds only when it reads back out of the job container what the
/// step built.
pub struct BuildingHook;

#[async_trait::async_trait]
impl slipway_runner::DeployHook for BuildingHook {
    async fn deploy(
        &self,
        request: slipway_runner::DeployRequest<'_>,
    ) -> slipway_runner::DeployReport {
        let tar = request.files.tar("pkg").await.unwrap_or_default();
        let found = String::from_utf8_lossy(&tar).contains("built from version 3");
        slipway_runner::DeployReport {
            success: found,
            log: vec![format!("hook saw the built package: {found}")],
        }
    }

    fn job_step(&self, deploy: &slipway_pipelines::plan::Deploy) -> Option<String> {
        let fail = deploy.options.get("fail").is_some();
        Some(if fail {
            "echo building; exit 3".into()
        } else {
            "mkdir -p pkg && echo \"built from version $(cat VERSION)\" > pkg/built.txt && echo job-step-built".into()
        })
    }
}

/// A pipeline deploying through [`BuildingHook`], with `options` added to the deploy's.
pub fn building_pipeline(options: &str) -> String {
    format!(
        r#"
image: "{{busybox}}"
language: shell
script: echo 3 > VERSION
deploy:
  provider: pypi
  {options}
  skip_cleanup: true
  on:
    branch: master
after_deploy: echo after-deploy-ran
"#
    )
}

/// What job 1's log holds when [`BuildingHook`]'s step built and its deploy saw the build.
pub const BUILT_AND_DEPLOYED: &[&str] = &[
    "job-step-built",
    "hook saw the built package: true",
    "after-deploy-ran",
];
