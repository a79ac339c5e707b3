//! Scheduling and lifecycle logic with the scriptable fake executor (no engine needed).

use std::sync::Arc;

use bytes::Bytes;
use slipway_pipelines::plan::{Context, PhaseName, Plan};
use slipway_runner::fake::{FakeExecutor, FakeRun, PrefixSecrets, marker};
use slipway_runner::{
    BuildEvent, BuildInfo, BuildOutcome, BuildResult, CancellationToken, DeployHook, DeployReport,
    DeployRequest, JobEvent, JobResult, JobSpec, Runner, RunnerOptions,
};
use tokio::sync::mpsc;

use crate::util::assert_log_has;

fn plan(yaml: &str) -> Plan {
    let ctx = Context {
        branch: "master".into(),
        repo: "acme/app".into(),
        ..Default::default()
    };
    slipway_pipelines::plan(".slipway.yml", yaml.as_bytes(), &ctx).unwrap()
}

/// Output of a job whose script phase runs `codes.len()` commands with these exit codes.
fn script_output(spec: &JobSpec, codes: &[i32]) -> Vec<Bytes> {
    let mut out = vec![marker(spec, "phase-start script")];
    for (i, c) in codes.iter().enumerate() {
        out.push(marker(spec, &format!("cmd-start script {i}")));
        out.push(Bytes::from(format!("output of command {i}\n")));
        out.push(marker(spec, &format!("cmd-end script {i} {c}")));
    }
    out.push(marker(spec, "phase-end script"));
    let result = if codes.iter().all(|c| *c == 0) {
        "passed"
    } else {
        "failed"
    };
    out.push(marker(spec, &format!("result {result}")));
    out
}

async fn run(
    exec: Arc<FakeExecutor>,
    options: RunnerOptions,
    plan: &Plan,
) -> (BuildOutcome, Vec<BuildEvent>) {
    let runner = Runner::new(exec, options);
    let (tx, mut rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let build = BuildInfo {
        id: "b1".into(),
        number: 3,
    };
    let outcome = runner
        .run_build(plan, &build, None, tx, CancellationToken::new())
        .await;
    (outcome, collect.await.unwrap())
}

fn log_of(events: &[BuildEvent], job: usize) -> String {
    let mut s = Vec::new();
    for e in events.iter().filter(|e| e.job == job) {
        if let JobEvent::Log(b) = &e.event {
            s.extend_from_slice(b);
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

#[tokio::test]
async fn markers_become_command_records_and_events_in_order() {
    let exec = FakeExecutor::new(|spec| FakeRun {
        output: script_output(spec, &[0, 2, 0]),
        ..Default::default()
    });
    let plan = plan("language: shell\nscript: [a, b, c]\n");
    let (outcome, events) = run(exec, RunnerOptions::default(), &plan).await;
    let job = &outcome.jobs[0];
    assert_eq!(job.result, JobResult::Failed);
    let script = job.phase(PhaseName::Script).unwrap();
    let recorded: Vec<(&str, Option<i32>)> = script
        .commands
        .iter()
        .map(|c| (c.command.as_str(), c.exit_code))
        .collect();
    assert_eq!(
        recorded,
        vec![("a", Some(0)), ("b", Some(2)), ("c", Some(0))]
    );
    let log = log_of(&events, 1);
    assert_log_has(
        &log,
        &[
            "$ a\noutput of command 0\n$ b\noutput of command 1\n",
            "The command \"b\" exited with 2.",
        ],
    );
    assert!(matches!(
        events.last().unwrap().event,
        JobEvent::Finished(_)
    ));
    assert_eq!(outcome.result, BuildResult::Failed);
}

#[tokio::test]
async fn teardown_runs_after_a_failed_setup_and_nothing_starts() {
    let exec = FakeExecutor::new(|_| FakeRun {
        setup_error: Some("no space left".into()),
        ..Default::default()
    });
    let (outcome, events) = run(
        exec.clone(),
        RunnerOptions::default(),
        &plan("language: shell\nscript: x\n"),
    )
    .await;
    assert_eq!(outcome.jobs[0].result, JobResult::Errored);
    assert!(log_of(&events, 1).contains("no space left"));
    let calls = exec.calls();
    assert!(calls.contains(&"setup b1-1".to_string()), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("start")), "{calls:?}");
    assert_eq!(calls.last().unwrap(), "teardown b1-1");
}

#[tokio::test]
async fn jobs_of_a_stage_respect_the_parallelism_limit() {
    let exec = FakeExecutor::new(|spec| FakeRun {
        output: script_output(spec, &[0]),
        ..Default::default()
    });
    let plan = plan("language: shell\nenv: [A=1, A=2, A=3]\nscript: x\n");
    let options = RunnerOptions {
        parallel: 1,
        ..Default::default()
    };
    let (outcome, _) = run(exec.clone(), options, &plan).await;
    assert_eq!(outcome.result, BuildResult::Passed);
    let order: Vec<String> = exec
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("start") || c.starts_with("teardown"))
        .collect();
    assert_eq!(
        order,
        [
            "start b1-1",
            "teardown b1-1",
            "start b1-2",
            "teardown b1-2",
            "start b1-3",
            "teardown b1-3"
        ]
    );
}

#[tokio::test]
async fn fast_finish_kills_a_running_allowed_failure() {
    let exec = FakeExecutor::new(|spec| {
        if spec.job_id.ends_with("-2") {
            FakeRun {
                hang: true,
                ..Default::default()
            }
        } else {
            FakeRun {
                output: script_output(spec, &[0]),
                delay: std::time::Duration::from_millis(50),
                ..Default::default()
            }
        }
    });
    let plan = plan(
        "language: shell\nenv: [A=1, A=2]\nscript: x\njobs:\n  fast_finish: true\n  allow_failures:\n    - env: A=2\n",
    );
    let (outcome, _) = run(exec.clone(), RunnerOptions::default(), &plan).await;
    assert_eq!(outcome.result, BuildResult::Passed);
    assert_eq!(outcome.jobs[1].result, JobResult::Canceled);
    assert!(exec.calls().contains(&"kill b1-2".to_string()));
    assert!(exec.calls().contains(&"teardown b1-2".to_string()));
}

#[tokio::test]
async fn the_log_cap_truncates_visibly() {
    let exec = FakeExecutor::new(|spec| {
        let mut out = script_output(spec, &[0]);
        out.insert(2, Bytes::from(vec![b'x'; 5000]));
        FakeRun {
            output: out,
            ..Default::default()
        }
    });
    let options = RunnerOptions {
        log_cap: 1000,
        ..Default::default()
    };
    let (outcome, events) = run(exec, options, &plan("language: shell\nscript: x\n")).await;
    assert!(outcome.jobs[0].log_truncated);
    assert_eq!(
        outcome.jobs[0].result,
        JobResult::Passed,
        "the cap never changes the result"
    );
    let log = log_of(&events, 1);
    assert!(
        log.contains("reached its size limit of 1000 bytes"),
        "{log}"
    );
    assert!(log.len() < 1300, "{}", log.len());
}

#[tokio::test]
async fn secure_values_are_exported_and_masked_in_the_log() {
    let exec = FakeExecutor::new(|spec| {
        let script = String::from_utf8_lossy(spec.files[0].contents.expose()).into_owned();
        assert!(
            script.contains("export API_TOKEN='s3cr3t-abcdef'"),
            "{script}"
        );
        let mut out = script_output(spec, &[0]);
        out.insert(2, Bytes::from_static(b"token is s3cr3t-abcdef, ok\n"));
        FakeRun {
            output: out,
            ..Default::default()
        }
    });
    let options = RunnerOptions {
        secrets: Some(Arc::new(PrefixSecrets {
            name: "API_TOKEN",
            prefix: "s3cr3t-",
        })),
        ..Default::default()
    };
    let (outcome, events) = run(
        exec,
        options,
        &plan("language: shell\nenv:\n  - secure: abcdef\nscript: x\n"),
    )
    .await;
    assert_eq!(outcome.jobs[0].result, JobResult::Passed);
    let log = log_of(&events, 1);
    assert!(log.contains("token is [secure], ok"), "{log}");
    assert!(
        log.contains("$ export API_TOKEN=[secure]") || !log.contains("s3cr3t"),
        "{log}"
    );
    assert!(!log.contains("s3cr3t-abcdef"), "{log}");
}

/// A provider that shows the option it decrypted: in its progress and in its error.
struct Leaky;

#[async_trait::async_trait]
impl DeployHook for Leaky {
    async fn deploy(&self, request: DeployRequest<'_>) -> DeployReport {
        let cipher = request.deploy.options["secret_access_key"]["secure"]
            .as_str()
            .unwrap();
        let secrets = request
            .secrets
            .as_ref()
            .expect("a trusted job gets secrets");
        let (_, key) = secrets.decrypt_env(&request.context.repo, cipher).unwrap();
        request.log.line(&format!("progress: signing with {key}"));
        DeployReport {
            success: false,
            log: vec![format!("error: the API refused key {key}")],
        }
    }
}

#[tokio::test]
async fn decrypted_deploy_options_are_masked_from_the_start_of_the_job() {
    let exec = FakeExecutor::new(|spec| FakeRun {
        output: vec![
            marker(spec, "phase-start script"),
            marker(spec, "cmd-start script 0"),
            Bytes::from_static(b"a script printed s3cr3t-k3y before any deploy\n"),
            marker(spec, "cmd-end script 0 0"),
            marker(spec, "phase-end script"),
            marker(spec, "deploy-start 0"),
            marker(spec, "deploy-request 0"),
            marker(spec, "deploy-end 0 1"),
            Bytes::from_static(b"after_deploy printed s3cr3t-k3y too\n"),
            marker(spec, "result errored"),
        ],
        ..Default::default()
    });
    let options = RunnerOptions {
        secrets: Some(Arc::new(PrefixSecrets {
            name: "API_TOKEN",
            prefix: "s3cr3t-",
        })),
        deploy_hook: Some(Arc::new(Leaky)),
        ..Default::default()
    };
    let (outcome, events) = run(
        exec,
        options,
        &plan(
            "language: shell\nscript: x\ndeploy:\n  provider: s3\n  bucket: b\n  secret_access_key:\n    secure: k3y\n",
        ),
    )
    .await;
    assert_eq!(outcome.jobs[0].result, JobResult::Errored);
    let log = log_of(&events, 1);
    for line in [
        "a script printed [secure] before any deploy",
        "progress: signing with [secure]",
        "error: the API refused key [secure]",
        "after_deploy printed [secure] too",
    ] {
        assert!(log.contains(line), "missing {line:?}: {log}");
    }
    assert!(!log.contains("s3cr3t-k3y"), "{log}");
}

#[tokio::test]
async fn services_docker_is_refused_to_untrusted_builds() {
    let exec = FakeExecutor::new(|spec| FakeRun {
        output: script_output(spec, &[0]),
        ..Default::default()
    });
    let plan = plan("language: shell\nservices: [docker]\nscript: x\n");
    let (outcome, events) = run(exec.clone(), RunnerOptions::default(), &plan).await;
    assert_eq!(outcome.jobs[0].result, JobResult::Errored);
    assert!(log_of(&events, 1).contains("only trusted builds get"));
    let trusted = RunnerOptions {
        trusted: true,
        ..Default::default()
    };
    let (outcome, events) = run(exec, trusted, &plan).await;
    assert_eq!(outcome.jobs[0].result, JobResult::Passed);
    assert!(log_of(&events, 1).contains("can use the host's Docker engine"));
}
