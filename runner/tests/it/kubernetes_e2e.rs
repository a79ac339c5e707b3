//! The Kubernetes executor end to end: pipelines run as pods on the API stand-in (whose pods run
//! on the local Docker engine), or on a real cluster under `scripts/test-kubernetes`. Each case
//! checks that the build's pods are gone afterwards. Under CI=true a missing engine or test
//! image fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::util::kube::{Cluster, cluster};
use crate::util::*;
use slipway_pipelines::plan::PhaseName;
use slipway_runner::executor::{Executor, JobSpec, ResourceLimits, owner_label};
use slipway_runner::kubernetes::{KubernetesConfig, pod};
use slipway_runner::runner::{RunVar, StoreSecrets};
use slipway_runner::{BuildResult, JobResult};
use slipway_secrets::{RepoSlug, Secret, SecretStore};

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

/// Standard base64 of `value`'s full 3-byte groups: how a leak through a base64 field shows.
fn base64_core(value: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in value.as_bytes().chunks_exact(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for i in 0..4 {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// The files of the Secret's tar, by path.
fn secret_files(secret: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    let data = secret.data.as_ref().expect("the Secret has data");
    let tar = &data[slipway_runner::kubernetes::secret::SECRET_KEY].0;
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    files
}

#[tokio::test]
async fn secrets_go_in_a_secret_owned_by_the_pod_and_never_in_the_pod_or_its_events() {
    let Some(cluster) = cluster(&[&busybox()], config()).await else {
        return;
    };
    let token = "k8s-s3cr3t-value-42";
    let line = "k8s-file-line-7c1e9a";
    // The repository's key, and a file encrypted to it: only `creds.txt.age` is in the workspace.
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = SecretStore::new(data.path());
    let slug = RepoSlug::parse("acme/app").unwrap();
    let plain = work.path().join("creds.txt");
    std::fs::write(&plain, format!("{line}\n")).unwrap();
    slipway_secrets::encrypt_file(&plain, &store.recipient(&slug).unwrap()).unwrap();
    std::fs::remove_file(&plain).unwrap();
    let ws = slipway_runner::workspace::pack(work.path(), "/home/travis/build/acme/app").unwrap();
    let mut opts = options();
    opts.trusted = true;
    opts.secrets = Some(Arc::new(StoreSecrets(store)));
    opts.run_vars = vec![RunVar::Secret {
        name: "API_TOKEN".into(),
        value: Secret::new(token.to_string()),
    }];
    let plan = plan(
        r#"
image: "{busybox}"
secrets:
  files: [creds.txt.age]
script:
  - echo "token=$API_TOKEN"
  - test -n "$API_TOKEN"
  - echo "creds mode $(stat -c %a creds.txt), starts $(cut -c1-8 creds.txt), $(wc -c < creds.txt) bytes"
  - touch /run/slipway/secret/x 2>/dev/null && echo secret-dir-writable || echo secret-dir-read-only
"#,
        &context("acme/app", "master"),
    );
    let ran = run_on(&cluster, opts, &plan, Some(&ws), None).await;
    let log = ran.expect(
        BuildResult::Passed,
        &[
            "token=[secure]",
            "creds mode 600, starts k8s-file, 21 bytes",
            "secret-dir-read-only",
        ],
    );
    let needles = [token, line]
        .map(|v| [v.to_string(), base64_core(v)])
        .concat();
    for needle in &needles {
        assert!(!log.contains(needle.as_str()), "{needle}: {log}");
    }
    let Some(standin) = &cluster.standin else {
        return;
    };
    // Nothing of them in any request about the pod (its create body included) nor in its events.
    for request in standin.pod_requests() {
        for needle in &needles {
            assert!(!request.contains(needle.as_str()), "{needle} in {request}");
        }
    }
    let events = serde_json::to_string(&standin.all_events()).unwrap();
    for needle in &needles {
        assert!(
            !events.contains(needle.as_str()),
            "{needle} in the events: {events}"
        );
    }
    // One Secret, holding the script (with the token) and the decrypted file at its path.
    let sent = standin.secrets_received();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let secret = &sent[0];
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let files = secret_files(secret);
    assert_eq!(
        files
            .get("home/travis/build/acme/app/creds.txt")
            .map(Vec::as_slice),
        Some(format!("{line}\n").as_bytes()),
        "{:?}",
        files.keys()
    );
    let script = String::from_utf8_lossy(
        &files[slipway_runner::script::SCRIPT_PATH.trim_start_matches('/')],
    );
    assert!(
        script.contains(token),
        "the script in the Secret holds the token"
    );
    // Owned by the pod (its uid), labelled like it, mounted by it; gone with it.
    let pods = standin.past_pods();
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (
            owners[0].kind.as_str(),
            Some(&owners[0].name),
            Some(&owners[0].uid)
        ),
        ("Pod", pod.metadata.name.as_ref(), pod.metadata.uid.as_ref())
    );
    assert_eq!(secret.metadata.labels, pod.metadata.labels);
    let mounted: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect();
    assert_eq!(mounted, vec![secret.metadata.name.clone().unwrap()]);
    assert_eq!(standin.secret_names(), Vec::<String>::new());
    standin.assert_the_documented_role_allows_every_request();
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
    if let Some(standin) = &cluster.standin {
        // No Secret at all: its script, without secrets, came with the workspace.
        assert_eq!(standin.requests_with("/secrets"), 0);
        let pods = standin.past_pods();
        assert_eq!(pods.len(), 1);
        let volumes = pods[0].spec.iter().flat_map(|s| s.volumes.iter().flatten());
        assert!(volumes.clone().all(|v| v.secret.is_none()), "{pods:#?}");
        assert_eq!(standin.requests_with(secret), 0);
    }
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
            .plant(pod::job_pod(spec, cluster.exec.config(), "unused").unwrap())
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
        .plant(pod::job_pod(&earlier, cluster.exec.config(), "unused").unwrap())
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
    assert!(allows(&role, "POST", &format!("{ns}/secrets")));
    for (method, uri) in [
        ("GET", format!("{ns}/secrets/slipway")),
        ("GET", format!("{ns}/secrets")),
        ("DELETE", format!("{ns}/secrets/slipway-b1-j1-0a1b2c3d")),
        ("PATCH", format!("{ns}/secrets/slipway-b1-j1-0a1b2c3d")),
        ("GET", format!("{ns}/pods?watch=true")),
        ("PATCH", format!("{ns}/pods/slipway-b1-j1")),
        ("DELETE", format!("{ns}/pods")),
        ("GET", format!("{ns}/configmaps")),
        ("GET", format!("{ns}/pods/slipway-b1-j1/portforward")),
    ] {
        assert!(!allows(&role, method, &uri), "{method} {uri} is allowed");
    }
}
