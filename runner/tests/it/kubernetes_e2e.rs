//! The Kubernetes executor end to end: pipelines run as pods on the API stand-in (whose pods run
//! on the local Docker engine), or on a real cluster under `scripts/test-kubernetes`. Each case
//! checks that the build's pods are gone afterwards. Under CI=true a missing engine or test
//! image fails.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::util::kube::{Cluster, cluster};
use crate::util::*;
use slipway_pipelines::plan::PhaseName;
use slipway_runner::executor::{Executor, JobSpec, ResourceLimits, owner_label};
use slipway_runner::kubernetes::{KubernetesConfig, pod};
use slipway_runner::runner::RunVar;
use slipway_runner::{BuildResult, JobResult};
use slipway_secrets::Secret;

fn config() -> KubernetesConfig {
    KubernetesConfig {
        namespace: "slipway-test".into(),
        pending_timeout_seconds: 60,
        grace_period_seconds: 1,
        ..Default::default()
    }
}

/// Runs `plan` on `cluster` as a fresh build and checks none of its pods is left.
async fn run_on(
    cluster: &Cluster,
    options: slipway_runner::RunnerOptions,
    plan: &slipway_pipelines::plan::Plan,
    workspace: Option<&slipway_runner::workspace::Workspace>,
    cancel_after: Option<Duration>,
) -> Ran {
    let id = build_id("k");
    let ran = run_as(
        &id,
        cluster.exec.clone(),
        options,
        plan,
        workspace,
        cancel_after,
    )
    .await;
    assert_eq!(
        cluster.left(&id).await,
        Vec::<String>::new(),
        "pods left behind"
    );
    ran
}

#[tokio::test]
async fn a_passing_job_runs_in_a_pod_with_its_workspace_and_output() {
    let Some(cluster) = cluster(&[&debian()], config()).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    git_repo(dir.path());
    let ctx = context("acme/app", "main");
    let build_dir = slipway_runner::runner::build_dir("/home/travis/build", &ctx.repo);
    let ws = slipway_runner::workspace::pack(dir.path(), &build_dir).unwrap();
    let plan = plan(
        r#"
image: "{debian}"
script:
  - echo "job $TRAVIS_JOB_NUMBER of $TRAVIS_REPO_SLUG in $(pwd)"
  - cat hello.txt
  - echo to-stderr >&2
after_script: echo "after script"
"#,
        &ctx,
    );
    let ran = run_on(&cluster, options(), &plan, Some(&ws), None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{log}");
    assert_log_has(
        log,
        &[
            "job 7.1 of acme/app in /home/travis/build/acme/app\n",
            "hello from the workspace\n",
            "to-stderr",
            "after script",
        ],
    );
    assert!(
        !log.contains("slipway:"),
        "markers must not reach the log: {log}"
    );
}

#[tokio::test]
async fn a_failing_command_fails_the_job_with_its_exit_code() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let plan = plan(
        "image: \"{busybox}\"\nscript:\n  - sh -c 'exit 3'\n  - echo still runs\n",
        &context("acme/app", "master"),
    );
    let ran = run_on(&cluster, options(), &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Failed, "{log}");
    let codes: Vec<Option<i32>> = ran
        .job(1)
        .phase(PhaseName::Script)
        .map(|p| p.commands.iter().map(|c| c.exit_code).collect())
        .unwrap_or_default();
    assert_eq!(codes, vec![Some(3), Some(0)], "{log}");
    ran.assert_log_contains(1, "still runs");
}

#[tokio::test]
async fn a_service_is_a_sidecar_reachable_on_localhost_and_by_name() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let mut opts = options();
    opts.service_overrides = redis_standin();
    let plan = plan(REDIS_PIPELINE, &context("acme/app", "master"));
    let ran = run_on(&cluster, opts, &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{log}");
    assert_eq!(log.matches("PONG").count(), 3, "{log}");
}

#[tokio::test]
async fn secrets_are_masked_and_never_sent_to_the_api_server_in_a_request() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let secret = "k8s-s3cr3t-value-42";
    let mut opts = options();
    opts.trusted = true;
    opts.run_vars = vec![RunVar::Secret {
        name: "API_TOKEN".into(),
        value: Secret::new(secret.to_string()),
    }];
    let plan = plan(
        "image: \"{busybox}\"\nscript:\n  - echo \"token=$API_TOKEN\"\n  - test -n \"$API_TOKEN\"\n",
        &context("acme/app", "master"),
    );
    let ran = run_on(&cluster, opts, &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{log}");
    assert!(!log.contains(secret), "{log}");
    ran.assert_log_contains(1, "token=[secure]");
    if let Some(standin) = &cluster.standin {
        assert!(standin.requests_with("pods") > 0);
        assert_eq!(
            standin.requests_with(secret),
            0,
            "a request held the secret"
        );
        let creates = standin.requests.lock().unwrap().clone();
        let create = creates.iter().find(|r| r.starts_with("POST")).unwrap();
        assert!(
            create.contains("\"automountServiceAccountToken\":false"),
            "{create}"
        );
    }
}

#[tokio::test]
async fn a_fork_pull_request_gets_no_secret_in_its_pod() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let secret = "k8s-fork-must-not-see";
    let mut opts = options();
    opts.run_vars = vec![RunVar::Secret {
        name: "API_TOKEN".into(),
        value: Secret::new(secret.to_string()),
    }];
    let ctx = slipway_pipelines::plan::Context {
        event: slipway_pipelines::plan::EventType::PullRequest,
        pull_request: Some(12),
        fork: true,
        head_repo: Some("mallory/app".into()),
        head_branch: Some("patch-1".into()),
        ..context("acme/app", "master")
    };
    let plan = plan(
        "image: \"{busybox}\"\nscript: echo \"token=[$API_TOKEN]\"\n",
        &ctx,
    );
    let ran = run_on(&cluster, opts, &plan, None, None).await;
    ran.assert_log_contains(1, "token=[]");
    ran.assert_log_lacks(1, secret);
}

#[tokio::test]
async fn cancelling_a_build_deletes_its_pod() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let plan = plan(
        "image: \"{busybox}\"\nscript: sleep 60\n",
        &context("acme/app", "master"),
    );
    let started = Instant::now();
    let ran = run_on(
        &cluster,
        options(),
        &plan,
        None,
        Some(Duration::from_secs(3)),
    )
    .await;
    assert_eq!(ran.outcome.result, BuildResult::Canceled);
    assert_eq!(ran.job(1).result, JobResult::Canceled);
    ran.assert_log_contains(1, "The job was canceled.");
    assert!(started.elapsed() < Duration::from_secs(40));
}

#[tokio::test]
async fn a_pod_stuck_pending_errors_the_job_with_its_events() {
    let Some(cluster) = cluster(
        &[&busybox()],
        KubernetesConfig {
            pending_timeout_seconds: 3,
            ..config()
        },
    )
    .await
    else {
        return;
    };
    let plan = plan(
        "image: slipway-test/never-built:latest\nscript: echo must-not-run\n",
        &context("acme/app", "master"),
    );
    let ran = run_on(&cluster, options(), &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.job(1).result, JobResult::Errored, "{log}");
    assert_log_has(
        log,
        &[
            "still pending after 3 s",
            "ImagePullBackOff",
            "events:",
            "Failed to pull image",
        ],
    );
    assert!(!log.contains("must-not-run"), "{log}");
    if let Some(standin) = &cluster.standin {
        standin.assert_the_documented_role_allows_every_request();
    }
}

#[tokio::test]
async fn a_broken_log_stream_resumes_without_losing_or_repeating_a_line() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let Some(standin) = &cluster.standin else {
        return;
    };
    standin.break_logs_after.store(4, Ordering::Relaxed);
    let plan = plan(
        "image: \"{busybox}\"\nscript: for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line-$i-end; sleep 0.2; done\n",
        &context("acme/app", "master"),
    );
    let ran = run_on(&cluster, options(), &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{log}");
    for i in 1..=12 {
        assert_eq!(
            log.matches(&format!("line-{i}-end")).count(),
            1,
            "line {i}: {log}"
        );
    }
}

#[tokio::test]
async fn services_docker_is_refused_on_kubernetes_with_the_way_out() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let mut opts = options();
    opts.trusted = true;
    let plan = plan(
        "image: \"{busybox}\"\nservices: [docker]\nscript: echo must-not-run\n",
        &context("acme/app", "master"),
    );
    let ran = run_on(&cluster, opts, &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.job(1).result, JobResult::Errored, "{log}");
    assert_log_has(
        log,
        &[
            ".slipway.yml asks for `services: docker`",
            "a runner with `executor = \"docker\"`",
        ],
    );
    assert!(!log.contains("must-not-run"), "{log}");
}

/// The course's multi-docker project, its pipeline read from the shared corpus and planned as
/// the product plans a push to master: its test job builds and runs images through
/// `services: docker`, which a pod cannot give. The job errors before any pod exists, naming the
/// file that asks for it and the two ways out, and leaves nothing in the cluster.
#[tokio::test]
async fn the_course_multi_docker_test_job_is_refused_before_any_pod_exists() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let file = shared.join("corpus/course/multi-docker/.travis.yml");
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ctx = context("course/multi-docker", "master");
    let plan = slipway_pipelines::plan(".travis.yml", &bytes, &ctx).unwrap();
    let jobs: Vec<_> = plan.stages.iter().flat_map(|s| &s.jobs).collect();
    assert_eq!(jobs.len(), 1, "{plan:#?}");
    assert_eq!(jobs[0].services, vec!["docker"]);
    // The repository's own push: a trusted build, which the Docker executor would hand the engine.
    let mut opts = options();
    opts.trusted = true;
    let ran = run_on(&cluster, opts, &plan, None, None).await;
    let log = ran.expect_job(
        JobResult::Errored,
        &[
            ".travis.yml asks for `services: docker`",
            "it runs jobs as Kubernetes pods (`executor = \"kubernetes\"`)",
            "run this repository's builds on a runner with `executor = \"docker\"`",
            "remove `docker` from `services:` in .travis.yml",
        ],
    );
    assert_eq!(ran.outcome.result, BuildResult::Errored, "{log}");
    let began: Vec<&str> = ran
        .job(1)
        .phases
        .iter()
        .flat_map(|p| &p.commands)
        .map(|c| c.command.as_str())
        .collect();
    assert!(began.is_empty(), "commands began: {began:?}\n{log}");
    if let Some(standin) = &cluster.standin {
        let requests = standin.requests.lock().unwrap().clone();
        // Teardown's delete finds nothing; nothing was ever created or changed.
        let writes: Vec<&String> = requests
            .iter()
            .filter(|r| ["POST ", "PUT ", "PATCH "].iter().any(|m| r.starts_with(m)))
            .collect();
        assert!(
            writes.is_empty(),
            "the API server was asked to create: {writes:#?}"
        );
        assert_eq!(standin.pod_names(), Vec::<String>::new());
    }
}

fn leftover(job_id: &str, owner: &str) -> JobSpec {
    JobSpec {
        job_id: job_id.into(),
        build_id: "tsweep".into(),
        owner: owner.into(),
        image: busybox(),
        env: vec![],
        working_dir: "/home/travis/build/acme/app".into(),
        cmd: vec!["sleep".into(), "60".into()],
        files: vec![],
        workspace_tar: None,
        services: vec![],
        volumes: vec![],
        docker_socket: false,
        pipeline_file: ".travis.yml".into(),
        own_network: false,
        limits: ResourceLimits::default(),
        open_stdin: false,
        platform: None,
    }
}

#[tokio::test]
async fn the_sweep_removes_pods_of_dead_runners_and_spares_live_ones() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let Some(standin) = &cluster.standin else {
        return;
    };
    let host = owner_label().split(':').next().unwrap().to_string();
    let dead = leftover(&build_id("dead"), &format!("{host}:4194304:1"));
    let live = leftover(&build_id("live"), &owner_label());
    for spec in [&dead, &live] {
        standin
            .plant(pod::job_pod(spec, cluster.exec.config()).unwrap())
            .await;
    }
    let report = cluster.exec.sweep().await.unwrap();
    assert!(
        report.containers.contains(&pod::pod_name(&dead.job_id)),
        "{report:?}"
    );
    assert!(
        !report.containers.contains(&pod::pod_name(&live.job_id)),
        "{report:?}"
    );
    let names = standin.pod_names();
    assert!(!names.contains(&pod::pod_name(&dead.job_id)), "{names:?}");
    assert!(names.contains(&pod::pod_name(&live.job_id)), "{names:?}");
    cluster.exec.teardown(&live.job_id).await.unwrap();
    assert!(!standin.pod_names().contains(&pod::pod_name(&live.job_id)));
    standin.assert_the_documented_role_allows_every_request();
}

#[tokio::test]
async fn the_stand_in_refuses_a_pod_with_a_field_the_api_does_not_know() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let Some(standin) = &cluster.standin else {
        return;
    };
    let body = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"job","image":"x","stdinn":true}]}}"#;
    let url = format!(
        "http://{}/api/v1/namespaces/slipway-test/pods",
        standin.addr
    );
    // The typed client cannot send an unknown field; a raw request can.
    let req = axum::http::Request::post(url)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap();
    let err = cluster.exec.client().request_text(req).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown field(s): spec.containers[0].stdinn"),
        "{err}"
    );
}

#[tokio::test]
async fn a_deploy_reads_the_build_from_the_pod_and_replies_to_the_job() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let mut opts = options();
    opts.deploy_hook = Some(std::sync::Arc::new(BuildingHook));
    let plan = plan(&building_pipeline(""), &context("acme/app", "master"));
    let ran = run_on(&cluster, opts, &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{log}");
    assert_log_has(log, BUILT_AND_DEPLOYED);
    if let Some(standin) = &cluster.standin {
        standin.assert_the_documented_role_allows_every_request();
    }
}

#[tokio::test]
async fn a_pod_left_by_an_earlier_attempt_of_the_job_is_replaced() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let Some(standin) = &cluster.standin else {
        return;
    };
    let id = build_id("again");
    let host = owner_label().split(':').next().unwrap().to_string();
    let earlier = leftover(&format!("{id}-1"), &format!("{host}:4194304:1"));
    standin
        .plant(pod::job_pod(&earlier, cluster.exec.config()).unwrap())
        .await;
    // The earlier attempt got as far as running its job.
    let name = pod::pod_name(&earlier.job_id);
    let started = Instant::now();
    while !standin
        .pods
        .lock()
        .unwrap()
        .get(&name)
        .is_some_and(|p| p.started.contains(pod::JOB_CONTAINER))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plan = plan(
        "image: \"{busybox}\"\nscript: echo second-attempt-ran\n",
        &context("acme/app", "master"),
    );
    let ran = run_as(&id, cluster.exec.clone(), options(), &plan, None, None).await;
    let log = ran.log(1);
    assert_eq!(ran.outcome.result, BuildResult::Passed, "{log}");
    assert_log_has(log, &["left from an earlier attempt", "second-attempt-ran"]);
    assert_eq!(cluster.left(&id).await, Vec::<String>::new());
}

#[test]
fn the_documented_role_refuses_what_the_executor_never_asks_for() {
    use crate::util::kube::rbac::{allows, documented_role};
    let role = documented_role();
    let ns = "/api/v1/namespaces/slipway-jobs";
    for (method, uri) in [
        ("POST", format!("{ns}/pods")),
        (
            "GET",
            format!("{ns}/pods?labelSelector=dev.slipway.managed%3Dtrue"),
        ),
        ("GET", format!("{ns}/pods/slipway-b1-j1")),
        ("DELETE", format!("{ns}/pods/slipway-b1-j1")),
        ("GET", format!("{ns}/pods/slipway-b1-j1/log?follow=true")),
        ("GET", format!("{ns}/pods/slipway-b1-j1/attach?stdin=true")),
        ("GET", format!("{ns}/pods/slipway-b1-j1/exec?command=tar")),
        (
            "GET",
            format!("{ns}/events?fieldSelector=involvedObject.name%3Dx"),
        ),
    ] {
        assert!(allows(&role, method, &uri), "{method} {uri} is refused");
    }
    for (method, uri) in [
        ("GET", format!("{ns}/secrets/slipway")),
        ("POST", format!("{ns}/secrets")),
        ("GET", format!("{ns}/pods?watch=true")),
        ("PATCH", format!("{ns}/pods/slipway-b1-j1")),
        ("DELETE", format!("{ns}/pods")),
        ("GET", format!("{ns}/configmaps")),
        ("GET", format!("{ns}/pods/slipway-b1-j1/portforward")),
    ] {
        assert!(!allows(&role, method, &uri), "{method} {uri} is allowed");
    }
}
