//! End-to-end cases against the real Docker engine: a pipeline file in, the outcome, phase
//! results and key log lines out. Under CI=true a missing engine or test image fails.
//! Every run also checks that no labelled container, network or job volume is left behind.

use std::time::{Duration, Instant};

use crate::util::*;
use slipway_pipelines::plan::PhaseName;
use slipway_runner::{BuildResult, JobResult};

fn codes(ran: &Ran, job: usize, phase: PhaseName) -> Vec<Option<i32>> {
    ran.job(job)
        .phase(phase)
        .map(|p| p.commands.iter().map(|c| c.exit_code).collect())
        .unwrap_or_default()
}

fn ran_phases(ran: &Ran, job: usize) -> Vec<PhaseName> {
    ran.job(job).phases.iter().map(|p| p.phase).collect()
}

#[tokio::test]
async fn a_passing_job_passes_runs_after_success_and_after_script() {
    let yaml = r#"
image: "{busybox}"
env:
  global:
    - GREETING=hello
    - DERIVED="$GREETING world"
install: echo installing
script:
  - echo "$DERIVED from $TRAVIS_REPO_SLUG job $TRAVIS_JOB_NUMBER on $TRAVIS_BRANCH pr=$TRAVIS_PULL_REQUEST"
  - printf '\033[31mred\033[0m\n'
  - echo to-stderr >&2
after_success: echo "after success, TRAVIS_TEST_RESULT=$TRAVIS_TEST_RESULT"
after_failure: echo must-not-run
after_script: echo "after script"
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    let log = ran.expect(
        BuildResult::Passed,
        &[
            "hello world from acme/app job 7.1 on master pr=false",
            "$ echo installing",
            "after success, TRAVIS_TEST_RESULT=0",
            "Running commands in POSIX sh",
        ],
    );
    assert!(
        log.contains("\x1b[31mred\x1b[0m"),
        "ANSI colours kept: {log}"
    );
    assert!(log.contains("to-stderr"), "stderr merged: {log}");
    assert!(!log.contains("must-not-run"), "{log}");
    assert!(
        !log.contains("slipway:"),
        "markers must not reach the log: {log}"
    );
    assert_eq!(codes(&ran, 1, PhaseName::Script), vec![Some(0); 3]);
    assert_eq!(
        ran_phases(&ran, 1),
        vec![
            PhaseName::Install,
            PhaseName::Script,
            PhaseName::AfterSuccess,
            PhaseName::AfterScript
        ]
    );
}

#[tokio::test]
async fn a_failing_script_command_fails_the_job_but_later_commands_still_run() {
    let yaml = r#"
image: "{busybox}"
script:
  - echo first
  - "false"
  - echo third ran
after_success: echo must-not-run
after_failure: echo "after failure, TRAVIS_TEST_RESULT=$TRAVIS_TEST_RESULT"
after_script: echo after script ran
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    let log = ran.expect(
        BuildResult::Failed,
        &[
            "third ran",
            "The command \"false\" exited with 1.",
            "after failure, TRAVIS_TEST_RESULT=1",
            "after script ran",
        ],
    );
    assert_eq!(ran.job(1).result, JobResult::Failed);
    assert_eq!(
        codes(&ran, 1, PhaseName::Script),
        vec![Some(0), Some(1), Some(0)]
    );
    assert!(!log.contains("must-not-run"), "{log}");
}

#[tokio::test]
async fn a_failing_install_errors_the_job_and_nothing_after_runs() {
    let yaml = r#"
image: "{busybox}"
before_install: echo before install
install:
  - exit 3
  - echo second-install-must-not-run
script: echo script-must-not-run
after_failure: echo after-failure-must-not-run
after_script: echo after-script-must-not-run
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    let log = ran.expect(BuildResult::Errored, &[]);
    assert_eq!(ran.job(1).result, JobResult::Errored);
    assert_eq!(ran.job(1).reason.as_deref(), Some("install failed"));
    assert_eq!(codes(&ran, 1, PhaseName::Install), vec![Some(3)]);
    assert_eq!(
        ran_phases(&ran, 1),
        vec![PhaseName::BeforeInstall, PhaseName::Install]
    );
    assert!(!log.contains("must-not-run"), "{log}");
}

#[tokio::test]
async fn allow_failures_and_env_matrix_expansion() {
    let yaml = r#"
image: "{busybox}"
env:
  - FLAVOUR=one
  - FLAVOUR=two
script:
  - echo "flavour $FLAVOUR"
  - test "$FLAVOUR" = one
jobs:
  allow_failures:
    - env: FLAVOUR=two
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    assert_eq!(ran.outcome.jobs.len(), 2);
    ran.assert_log_contains(1, "flavour one");
    ran.assert_log_contains(2, "flavour two");
    assert_eq!(ran.job(1).result, JobResult::Passed);
    assert_eq!(ran.job(2).result, JobResult::Failed);
    assert!(ran.job(2).allow_failure);
    assert_eq!(ran.outcome.result, BuildResult::Passed);
}

#[tokio::test]
async fn fast_finish_does_not_wait_for_allowed_failures() {
    let started = Instant::now();
    let yaml = r#"
image: "{busybox}"
env:
  - SLOW=no
  - SLOW=yes
script: if [ "$SLOW" = yes ]; then sleep 60; fi
jobs:
  fast_finish: true
  allow_failures:
    - env: SLOW=yes
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    ran.assert_results(
        BuildResult::Passed,
        &[JobResult::Passed, JobResult::Canceled],
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failed_stage_cancels_the_next() {
    let yaml = r#"
image: "{busybox}"
jobs:
  include:
    - stage: test
      script: "false"
    - stage: deploy
      script: echo deploy-must-not-run
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    ran.assert_results(
        BuildResult::Failed,
        &[JobResult::Failed, JobResult::Canceled],
    );
    assert!(
        ran.job(2)
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("stage test did not pass"),
        "{:?}",
        ran.job(2).reason
    );
    ran.assert_log_lacks(2, "deploy-must-not-run");
}

#[tokio::test]
async fn a_service_is_reachable_on_localhost_and_by_name() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let mut opts = options();
    opts.service_overrides = redis_standin();
    let ran = run_yaml_on(exec, opts, REDIS_PIPELINE).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert_eq!(log.matches("PONG").count(), 3, "{log}");
    assert!(log.contains("service redis is ready"), "{log}");
}

#[tokio::test]
async fn a_cache_is_restored_on_the_second_run_and_a_new_branch_starts_from_the_default_one() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let repo = format!("acme/cache-{}", build_id(""));
    let _cleanup = CacheCleanup(repo.clone());
    let yaml = r#"
image: "{busybox}"
cache:
  directories: [deps]
install: if [ -f deps/stamp ]; then echo "restored $(cat deps/stamp)"; else mkdir -p deps && echo built-once > deps/stamp; fi
script: echo ok
"#;
    let run_on = |branch: &str| {
        let plan = plan(yaml, &context(&repo, branch));
        let exec = exec.clone();
        async move { run(exec, options(), &plan, None, None).await }
    };
    run_on("master").await.expect(
        BuildResult::Passed,
        &["nothing cached yet", "cache: saved deps"],
    );
    let second = run_on("master").await;
    second.assert_log_contains(1, "restored built-once");
    let branch = run_on("feature").await;
    branch.assert_log_contains(1, "restored built-once");
    // The kept cache volumes are labelled as caches; remove this test's.
    let (_, _, volumes) = labelled(&exec, &format!("dev.slipway.cache.repo={repo}")).await;
    assert_eq!(volumes.len(), 2, "{volumes:?}");
}

/// Removes a test repository's kept cache volumes, even when the test fails.
struct CacheCleanup(String);

impl Drop for CacheCleanup {
    fn drop(&mut self) {
        let filter = format!("label=dev.slipway.cache.repo={}", self.0);
        if let Ok(out) = std::process::Command::new("docker")
            .args(["volume", "ls", "-q", "--filter", &filter])
            .output()
        {
            for v in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = std::process::Command::new("docker")
                    .args(["volume", "rm", v])
                    .output();
            }
        }
    }
}

#[tokio::test]
async fn the_job_timeout_stops_the_job_and_says_why() {
    let mut opts = options();
    opts.job_timeout = Duration::from_secs(3);
    let yaml = "image: \"{busybox}\"\nscript: while true; do echo tick; sleep 1; done\n";
    let Some(ran) = run_yaml(yaml, opts).await else {
        return;
    };
    ran.expect_job(
        JobResult::Errored,
        &["The job exceeded its time limit of 3.00s", "tick"],
    );
}

#[tokio::test]
async fn the_no_output_timeout_stops_a_silent_job() {
    let mut opts = options();
    opts.no_output_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let yaml = "image: \"{busybox}\"\nscript:\n  - echo started\n  - sleep 60\n";
    let Some(ran) = run_yaml(yaml, opts).await else {
        return;
    };
    ran.expect_job(
        JobResult::Errored,
        &["No output has been received in the last 2.00s"],
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // The command that was running is recorded without an exit code.
    assert_eq!(codes(&ran, 1, PhaseName::Script), vec![Some(0), None]);
}

#[tokio::test]
async fn cancelling_a_build_stops_its_job() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let plan = plan(
        "image: \"{busybox}\"\nscript: sleep 60\nafter_script: echo x\n",
        &context("acme/app", "master"),
    );
    let started = Instant::now();
    let ran = run(exec, options(), &plan, None, Some(Duration::from_secs(2))).await;
    ran.assert_results(BuildResult::Canceled, &[JobResult::Canceled]);
    ran.assert_log_contains(1, "The job was canceled.");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn git_clone_false_starts_the_job_in_an_empty_build_dir() {
    let Some(exec) = engine(&[&debian()]).await else {
        return;
    };
    let ctx = context("acme/app", "main");
    let ws = git_workspace(&ctx);
    let plan = plan(
        r#"
image: "{debian}"
git:
  clone: false
script:
  - pwd
  - echo "entries=$(ls -A | wc -l)"
"#,
        &ctx,
    );
    let ran = run(exec, options(), &plan, Some(&ws.workspace), None).await;
    ran.expect(
        BuildResult::Passed,
        &[
            "Skipping the clone (git: clone: false)",
            "/home/travis/build/acme/app\n",
            "entries=0",
        ],
    );
}

#[tokio::test]
async fn env_values_are_evaluated_in_order_by_bash_in_the_checked_out_workspace() {
    let Some(exec) = engine(&[&debian()]).await else {
        return;
    };
    let ctx = context("acme/app", "main");
    let ws = git_workspace(&ctx);
    let head = &ws.head;
    let plan = plan(
        r#"
image: "{debian}"
env:
  global:
    - SHA=$(git rev-parse HEAD)
    - SHORT=${SHA:0:7}
script:
  - echo "sha=$SHA short=$SHORT"
  - pwd
  - cat hello.txt uncommitted.txt
  - test ! -e ignored.txt && echo ignored-not-copied
"#,
        &ctx,
    );
    let ran = run(exec, options(), &plan, Some(&ws.workspace), None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert!(
        log.contains(&format!("sha={head} short={}", &head[..7])),
        "{log}"
    );
    assert!(log.contains("/home/travis/build/acme/app\n"), "{log}");
    assert!(
        log.contains("hello from the workspace") && log.contains("local edit"),
        "{log}"
    );
    assert_log_has(log, &["ignored-not-copied", "Running commands in bash"]);
}

struct RecordingHook;

#[async_trait::async_trait]
impl slipway_runner::DeployHook for RecordingHook {
    async fn deploy(
        &self,
        request: slipway_runner::DeployRequest<'_>,
    ) -> slipway_runner::DeployReport {
        let tar = request.files.tar("out.txt").await.unwrap_or_default();
        let found = String::from_utf8_lossy(&tar).contains("artifact-contents");
        slipway_runner::DeployReport {
            success: found,
            log: vec![format!(
                "hook deploy of {} saw the artifact: {found}",
                request.deploy.provider
            )],
        }
    }
}

const DEPLOY_PIPELINE: &str = r#"
image: "{busybox}"
language: shell
script: echo artifact-contents > out.txt
before_deploy: echo before-deploy-ran
deploy:
  - provider: script
    script: echo "script deploy of $TRAVIS_BRANCH"
    skip_cleanup: true
    on:
      branch: master
  - provider: s3
    bucket: b
    skip_cleanup: true
    on:
      branch: master
after_deploy: echo after-deploy-ran
after_script: echo after-script-ran
"#;

#[tokio::test]
async fn deploys_run_on_a_push_through_the_script_provider_and_the_hook() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let mut opts = options();
    opts.deploy_hook = Some(std::sync::Arc::new(RecordingHook));
    let ran = run_yaml_on(exec, opts, DEPLOY_PIPELINE).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    for line in [
        "before-deploy-ran",
        "script deploy of master",
        "hook deploy of s3 saw the artifact: true",
        "after-deploy-ran",
        "after-script-ran",
    ] {
        assert!(log.contains(line), "missing {line:?}: {log}");
    }
    let deploys: Vec<_> = ran
        .job(1)
        .deploys
        .iter()
        .map(|d| (d.provider.as_str(), d.exit_code))
        .collect();
    assert_eq!(deploys, vec![("script", Some(0)), ("s3", Some(0))]);
    // As dpl v1 does for every provider: before_deploy and after_deploy around each deploy.
    assert_eq!(log.matches("\nbefore-deploy-ran\n").count(), 2, "{log}");
    assert_eq!(log.matches("\nafter-deploy-ran\n").count(), 2, "{log}");
    assert_eq!(codes(&ran, 1, PhaseName::BeforeDeploy), vec![Some(0); 2]);
}

#[tokio::test]
async fn a_failing_deploy_errors_the_job_and_pull_requests_never_deploy() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    // No hook: the s3 deploy cannot happen, which errors the job; after_script still runs.
    let ran = run_yaml_on(exec.clone(), options(), DEPLOY_PIPELINE).await;
    let log = ran.expect_job(
        JobResult::Errored,
        &["Deploy provider s3 is not available", "after-script-ran"],
    );
    // after_deploy follows the script deploy that worked, not the one that failed.
    assert_eq!(log.matches("\nafter-deploy-ran\n").count(), 1, "{log}");

    let mut pr = context("acme/app", "master");
    pr.event = slipway_pipelines::plan::EventType::PullRequest;
    pr.pull_request = Some(5);
    let ran = run(exec, options(), &plan(DEPLOY_PIPELINE, &pr), None, None).await;
    let log = ran.expect_job(JobResult::Passed, &[]);
    assert!(
        !log.contains("before-deploy-ran") && !log.contains("script deploy"),
        "{log}"
    );
}

#[tokio::test]
async fn a_providers_job_step_builds_in_the_job_before_the_request_and_its_failure_fails_the_deploy()
 {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let mut opts = options();
    opts.deploy_hook = Some(std::sync::Arc::new(BuildingHook));
    let ctx = context("acme/app", "master");
    let ran = run(
        exec.clone(),
        opts.clone(),
        &plan(&building_pipeline(""), &ctx),
        None,
        None,
    )
    .await;
    ran.expect(BuildResult::Passed, BUILT_AND_DEPLOYED);

    let ran = run(
        exec,
        opts,
        &plan(&building_pipeline("fail: true"), &ctx),
        None,
        None,
    )
    .await;
    let log = ran.expect_job(
        JobResult::Errored,
        &[
            "building",
            "The pypi deploy's build step failed; nothing was deployed.",
        ],
    );
    assert!(!log.contains("hook saw"), "the request was made: {log}");
    assert_eq!(
        ran.job(1)
            .deploys
            .iter()
            .map(|d| d.exit_code)
            .collect::<Vec<_>>(),
        vec![Some(3)]
    );
}

/// Lists what a provider deploy would see of the build dir: file names (without `.git`) and the
/// text of `hello.txt`.
struct TreeProbe;

#[async_trait::async_trait]
impl slipway_runner::DeployHook for TreeProbe {
    async fn deploy(
        &self,
        request: slipway_runner::DeployRequest<'_>,
    ) -> slipway_runner::DeployReport {
        let tar = request.files.tar(".").await.unwrap_or_default();
        let mut names = Vec::new();
        let mut hello = String::new();
        for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            // Paths start with the build dir's own name.
            let rel = path.split_once('/').map_or(path.as_str(), |(_, r)| r);
            if rel.starts_with(".git/") {
                continue;
            }
            if rel == "hello.txt" {
                std::io::Read::read_to_string(&mut entry, &mut hello).unwrap();
            }
            names.push(rel.to_string());
        }
        names.sort();
        let bucket = request.deploy.options["bucket"]
            .as_str()
            .unwrap_or_default();
        slipway_runner::DeployReport {
            success: true,
            log: vec![format!(
                "deploy to {bucket} sees [{}] hello={:?}",
                names.join(" "),
                hello.trim()
            )],
        }
    }
}

#[tokio::test]
async fn a_deploy_cleans_the_build_dir_back_to_how_the_job_started_unless_skip_cleanup() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let ctx = context("acme/app", "master");
    let ws = git_workspace(&ctx);
    let plan = plan(
        r#"
image: "{busybox}"
language: shell
script:
  - echo built > artifact.txt
  - mkdir -p dist && echo bundle > dist/app.js
  - echo changed-by-the-job > hello.txt
  - rm uncommitted.txt
before_deploy: echo from-before-deploy > before-deploy.txt
deploy:
  - provider: s3
    bucket: kept
    skip_cleanup: true
  - provider: s3
    bucket: cleaned
  - provider: script
    script: test ! -e artifact.txt && test ! -e dist && test -d .git && cat hello.txt uncommitted.txt
  - provider: s3
    bucket: edge-kept
    edge: true
after_deploy: test -e before-deploy.txt || echo after-deploy-sees-no-before-deploy-file
"#,
        &ctx,
    );
    let mut opts = options();
    opts.deploy_hook = Some(std::sync::Arc::new(TreeProbe));
    let ran = run(exec, opts, &plan, Some(&ws.workspace), None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    // skip_cleanup: the deploy sees the build dir as the job and before_deploy left it.
    assert!(
        log.contains(
            r#"deploy to kept sees [.gitignore artifact.txt before-deploy.txt dist/app.js hello.txt] hello="changed-by-the-job""#
        ),
        "{log}"
    );
    // The default (dpl v1): put back as the job started — build output and before_deploy's file
    // gone, the changed file restored, the deleted one back, .git kept.
    assert!(
        log.contains(
            r#"deploy to cleaned sees [.gitignore hello.txt uncommitted.txt] hello="hello from the workspace""#
        ),
        "{log}"
    );
    assert!(
        log.contains("hello from the workspace\nlocal edit\n"),
        "the script deploy after a cleanup: {log}"
    );
    assert_eq!(
        log.matches("Cleaning up the build dir for the").count(),
        2,
        "{log}"
    );
    // edge (dpl v2): no cleanup, so before_deploy's file is there again.
    assert!(
        log.contains(
            r#"deploy to edge-kept sees [.gitignore before-deploy.txt hello.txt uncommitted.txt] hello="hello from the workspace""#
        ),
        "{log}"
    );
    assert_eq!(
        log.matches("\nafter-deploy-sees-no-before-deploy-file\n")
            .count(),
        2,
        "{log}"
    );
}

#[tokio::test]
async fn the_cleanup_copy_works_with_tar_and_in_images_without_it() {
    // Debian's tools are separate programs that PATH can hide (busybox's shell finds its own
    // applets whatever PATH says).
    if engine(&[&debian()]).await.is_none() {
        return;
    }
    // The helper functions exactly as a job script defines them (everything before `exec`).
    let plan = plan(
        "language: shell\nscript: x\n",
        &context("acme/app", "master"),
    );
    let inputs = bare_inputs(&plan.stages[0].jobs[0], "n");
    let text = slipway_runner::script::compile(&inputs, false)
        .text
        .into_exposed();
    let helpers = &text[..text
        .find("\nexec ")
        .expect("the script redirects its streams")];
    for (tools, copy) in [
        ("tar cp rm mkdir cat ls", "archive"),
        ("cp rm mkdir cat ls", "tree"),
    ] {
        let test = format!(
            r#"{helpers}
mkdir -p /tools /slipway && for t in {tools}; do ln -s "$(command -v $t)" /tools/$t; done
export PATH=/tools
mkdir -p /w/d /w/.git && cd /w && echo start > a && echo x > d/b && echo head > .git/HEAD
TRAVIS_BUILD_DIR=/w
slipway_snapshot && slipway_pristine=1
echo changed > a && echo new > n && rm d/b && mkdir -p out && echo o > out/o && echo moved > .git/HEAD
cd /w/out && slipway_cleanup test && pwd
cat /w/a /w/d/b /w/.git/HEAD; ls -A /w
if [ -f /slipway/pristine.tar ]; then echo copy=archive; else echo copy=tree; fi
"#
        );
        let out = std::process::Command::new("docker")
            .args(["run", "--rm", &debian(), "/bin/sh", "-c", &test])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Back as it started (`out` gone, so the shell lands in the build dir), `.git` untouched.
        let expected = format!("/w\nstart\nx\nmoved\n.git\na\nd\ncopy={copy}\n");
        assert!(stdout.ends_with(&expected), "{tools}: {stdout}");
    }
}

#[tokio::test]
async fn deploys_that_do_not_run_say_why_in_the_log_in_sh_and_bash() {
    let Some(exec) = engine(&[&busybox(), &debian()]).await else {
        return;
    };
    for image in [busybox(), debian()] {
        let yaml = format!(
            r#"
image: "{image}"
language: shell
env:
  global:
    - TARGET=staging
script: "true"
before_deploy: echo before-deploy-ran
deploy:
  - provider: script
    script: echo deployed-to-production
    on:
      branch: master
      condition: $TARGET = production
  - provider: script
    script: echo deployed-to-staging
    on:
      branch: master
      condition: ["$TARGET = staging", '-n "$TRAVIS_BRANCH"']
  - provider: script
    script: echo deployed-release
    on:
      branch: release
"#
        );
        let ran = run_yaml_on(exec.clone(), options(), &yaml).await;
        // The log names the shell, so a failure says which image it was.
        let log = ran.expect(
            BuildResult::Passed,
            &[
                "Deploy skipped: on.condition `$TARGET = production` does not hold (provider script)",
                "deployed-to-staging",
                "Deploy skipped: branch master is not on.branch (release) (provider script)",
            ],
        );
        assert!(!log.contains("deployed-to-production"), "{image}: {log}");
        assert!(!log.contains("deployed-release"), "{image}: {log}");
        assert_eq!(
            log.matches("\nbefore-deploy-ran\n").count(),
            1,
            "before_deploy runs only for the deploy that runs: {image}: {log}"
        );
    }

    // A deploy that fails errors the job, and no later deploy runs. The script provider's command
    // runs in a child shell, as dpl runs it: its `exit` ends the deploy, not the job.
    let ran = run_yaml_on(
        exec,
        options(),
        r#"
image: "{busybox}"
language: shell
script: "true"
deploy:
  - provider: script
    script: exit 3
  - provider: script
    script: echo second-deploy-must-not-run
after_deploy: echo after-deploy-must-not-run
after_script: echo after-script-ran
"#,
    )
    .await;
    let log = ran.expect_job(JobResult::Errored, &[]);
    assert!(
        log.contains("Deploy with provider script failed (exit 3)."),
        "{log}"
    );
    assert!(!log.contains("second-deploy-must-not-run"), "{log}");
    assert!(!log.contains("after-deploy-must-not-run"), "{log}");
    assert!(log.contains("after-script-ran"), "{log}");
}

#[tokio::test]
async fn an_image_is_built_tagged_and_pushed_with_its_digest() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let Ok(registry) = std::env::var("SLIPWAY_TEST_REGISTRY") else {
        missing("SLIPWAY_TEST_REGISTRY (start it with scripts/services.sh start)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nRUN echo built > /built.txt\n", busybox()),
    )
    .unwrap();
    let name = format!("{registry}/slipway-test/runner-push");
    let commit_tag = format!("{name}:{}", build_id("c"));
    let spec = slipway_runner::images::BuildSpec {
        context: dir.path().into(),
        dockerfile: "Dockerfile".into(),
        tags: vec![format!("{name}:latest"), commit_tag.clone()],
        build_args: vec![],
    };
    let quiet = |_: &str| {};
    let id = slipway_runner::images::build(exec.client(), &spec, &quiet)
        .await
        .unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    for tag in &spec.tags {
        let pushed = slipway_runner::images::push(exec.client(), tag, None, &quiet)
            .await
            .unwrap();
        assert_eq!(&pushed.reference, tag);
        assert!(
            pushed
                .digest
                .as_deref()
                .unwrap_or("")
                .starts_with("sha256:"),
            "{pushed:?}"
        );
        exec.client()
            .remove_image(
                tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn services_docker_lets_a_trusted_job_build_and_push_an_image() {
    let Some(exec) = engine(&[&debian(), &busybox()]).await else {
        return;
    };
    let Ok(registry) = std::env::var("SLIPWAY_TEST_REGISTRY") else {
        missing("SLIPWAY_TEST_REGISTRY (start it with scripts/services.sh start)");
        return;
    };
    let mut opts = options();
    opts.trusted = true;
    let tag = format!("{registry}/slipway-test/in-job:{}", build_id(""));
    let yaml = format!(
        r#"
image: "{{debian}}"
language: shell
services: [docker]
env: TAG={tag}
script:
  - printf 'FROM {busybox}\nRUN echo built-in-job > /x\n' > Dockerfile
  - docker build -q -t "$TAG" .
  - docker push "$TAG" | tail -n 1
  - docker rmi "$TAG" >/dev/null && echo removed
"#,
        busybox = busybox()
    );
    let ran = run_yaml_on(exec, opts, &yaml).await;
    ran.expect(
        BuildResult::Passed,
        &[
            "can use the host's Docker engine",
            "digest: sha256:",
            "removed",
        ],
    );
}

#[tokio::test]
async fn services_docker_brings_the_docker_cli_into_an_image_without_one() {
    let mut opts = options();
    opts.trusted = true;
    let yaml = r#"
image: "{busybox}"
language: shell
services: [docker]
script:
  - command -v docker
  - docker version --format 'engine {{.Server.Version}}'
"#;
    let Some(ran) = run_yaml(yaml, opts).await else {
        return;
    };
    ran.expect(BuildResult::Passed, &["/usr/local/bin/docker", "engine "]);
}

#[tokio::test]
async fn the_travis_helpers_exist_in_the_job_shell() {
    let yaml = r#"
image: "{busybox}"
language: shell
script:
  - travis_retry sh -c 'test -f /tmp/once || { touch /tmp/once; exit 1; }'
  - travis_wait 1 sh -c 'sleep 1; echo waited'
  - travis_fold start deps && echo folded && travis_fold end deps
  - travis_terminate 0
  - echo must-not-run
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    let log = ran.expect(
        BuildResult::Passed,
        &[
            "failed. Retrying, 2 of 3.",
            "waited",
            "travis_fold:start:deps",
            "travis_terminate 0",
        ],
    );
    assert!(!log.contains("must-not-run"), "{log}");
}
