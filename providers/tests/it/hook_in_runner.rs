//! `ProviderHook` as the runner's deploy hook, with the runner's fake executor (no engine, no
//! network): secure option values that a provider writes into its progress or its error reach the
//! job's log as `[secure]`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use slipway_pipelines::plan::Context;
use slipway_providers::{Endpoints, ProviderHook};
use slipway_runner::fake::{FakeExecutor, FakeRun, PrefixSecrets, marker};
use slipway_runner::{BuildInfo, CancellationToken, JobEvent, JobResult, Runner, RunnerOptions};

const PIPELINE: &str = "
language: shell
script: make
deploy:
  - provider: s3
    bucket: site
    upload_dir:
      secure: PREFIX
    on:
      branch: master
  - provider: s3
    bucket: site
    acl:
      secure: ACL
    allow_failure: true
    on:
      branch: master
";

#[tokio::test]
async fn secure_options_in_provider_progress_and_errors_are_masked() {
    let ctx = Context {
        branch: "master".into(),
        repo: "acme/site".into(),
        commit: Some("c0ffee".into()),
        ..Context::default()
    };
    let plan = slipway_pipelines::plan(".slipway.yml", PIPELINE.as_bytes(), &ctx).unwrap();
    // The job's side of both deploys: ask the runner, report what it answered (0 when a failure
    // is allowed; the fake has no standard input, so the answer itself is not read back).
    let exec = FakeExecutor::new(|spec| FakeRun {
        output: vec![
            marker(spec, "deploy-start 0"),
            marker(spec, "deploy-request 0"),
            marker(spec, "deploy-end 0 0"),
            marker(spec, "deploy-start 1"),
            marker(spec, "deploy-request 1"),
            marker(spec, "deploy-end 1 0"),
            Bytes::from_static(b"after_deploy echoed plain-PREFIX\n"),
            marker(spec, "result passed"),
        ],
        ..Default::default()
    });
    let hook = ProviderHook {
        // Nothing is uploaded (the fake's build dir is empty); a request would fail here.
        endpoints: Endpoints::all_aws("http://127.0.0.1:9"),
        poll_interval: Duration::from_millis(10),
        machine: slipway_providers::hook::Machine::Local,
        github: None,
    };
    let options = RunnerOptions {
        secrets: Some(Arc::new(PrefixSecrets {
            name: "VALUE",
            prefix: "plain-",
        })),
        deploy_hook: Some(Arc::new(hook)),
        ..Default::default()
    };
    let runner = Runner::new(exec, options);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let build = BuildInfo {
        id: "b1".into(),
        number: 1,
    };
    let outcome = runner
        .run_build(&plan, &build, None, tx, CancellationToken::new())
        .await;
    let mut log = Vec::new();
    while let Some(event) = rx.recv().await {
        if let JobEvent::Log(bytes) = event.event {
            log.extend_from_slice(&bytes);
        }
    }
    let log = String::from_utf8_lossy(&log);
    assert_eq!(outcome.jobs[0].result, JobResult::Passed, "{log}");
    for line in [
        // Progress: the secure upload_dir is part of the destination.
        "s3: uploading 0 file(s) from . to s3://site/[secure]",
        // Error: the secure acl is quoted in the option's error.
        "Deploy failed (allowed to fail): s3: option `acl`: `[secure]` is not one of",
        // And anything else in the job that prints it.
        "after_deploy echoed [secure]",
    ] {
        assert!(log.contains(line), "missing {line:?}: {log}");
    }
    assert!(!log.contains("plain-"), "{log}");
}
