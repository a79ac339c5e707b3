//! `workspaces:` end to end in real containers: files a job of one stage creates reach the job of
//! the next stage that uses them; a workspace never created errors its user, naming it; builds
//! never see each other's workspaces. Under CI=true a missing engine or image fails.

use crate::util::*;
use slipway_runner::{BuildResult, JobResult};

const PIPELINE: &str = r#"
image: "{busybox}"
language: shell
stages: [build, test]
jobs:
  include:
    - stage: build
      script:
        - mkdir -p out/deep && echo "made in build $TRAVIS_JOB_NUMBER" > out/deep/file.txt && echo top > top.txt
      workspaces:
        create:
          name: ws1
          paths: [out, top.txt]
    - stage: test
      workspaces:
        use: ws1
      script:
        - cat out/deep/file.txt top.txt
"#;

#[tokio::test]
async fn a_workspace_created_in_one_stage_is_used_in_the_next() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let plan = plan(PIPELINE, &context("acme/app", "master"));
    let mut options = options();
    // A number no other run uses, so this build's workspace is its own.
    let number = u64::from(std::process::id()) * 1000 + 1;
    let ran = {
        let runner = slipway_runner::Runner::new(exec.clone(), {
            options.parallel = 1;
            options
        });
        let build = slipway_runner::BuildInfo {
            id: build_id("ws"),
            number,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<slipway_runner::BuildEvent>(64);
        let collector = tokio::spawn(async move {
            let mut log = String::new();
            while let Some(e) = rx.recv().await {
                if let slipway_runner::JobEvent::Log(b) = e.event {
                    log.push_str(&String::from_utf8_lossy(&b));
                }
            }
            log
        });
        let outcome = runner
            .run_build(&plan, &build, None, tx, Default::default())
            .await;
        (outcome, collector.await.unwrap())
    };
    let (outcome, log) = ran;
    assert_eq!(outcome.result, BuildResult::Passed, "{log}");
    assert_log_has(
        &log,
        &["workspaces: saving ws1", "workspaces: restoring ws1"],
    );
    assert!(log.contains(&format!("made in build {number}.1")), "{log}");
    assert!(log.contains("\ntop\n"), "{log}");
    // Kept like a cache; this test's own is removed.
    let scope = slipway_runner::scope::CacheScope::for_build(&plan.context, "master");
    let volume = slipway_runner::build_workspaces::volume_name(&scope, number, "ws1");
    exec.client()
        .remove_volume(
            &volume,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn using_a_workspace_that_was_never_created_errors_the_job_naming_it() {
    let yaml = r#"
image: "{busybox}"
workspaces:
  use: nowhere
script: echo must-not-run
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    let log = ran.expect_job(JobResult::Errored, &[]);
    assert!(!log.contains("\nmust-not-run"), "{log}");
    assert!(
        ran.job(1)
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("workspaces: nowhere was not created in this build")),
        "{:?}",
        ran.job(1).reason
    );
}
