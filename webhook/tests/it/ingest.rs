//! Webhook ingestion against a running server: GitHub's own payloads, signature failures,
//! de-duplication across a restart, the allow-list and the body limit.

use crate::util::*;
use serde_json::Value;
use slipway_webhook::testing::ScriptedJobRunner;
use std::sync::Arc;

fn idle_config() -> slipway_webhook::Config {
    let mut c = config(None);
    c.workers = 0; // builds stay queued: these tests look at what was accepted, not at runs
    c
}

#[test]
fn githubs_example_payloads_start_the_right_builds() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    let mut expected: Vec<(String, Option<u64>, String)> = Vec::new();
    let mut n = 0;
    for event in ["ping", "pull_request", "push", "check_run", "check_suite"] {
        let mut files: Vec<_> = std::fs::read_dir(shared.join("fixtures/github").join(event))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let body = std::fs::read(&file).unwrap();
            let payload: Value = serde_json::from_slice(&body).unwrap();
            n += 1;
            let (status, text) = h.deliver(event, &format!("fixture-{n}"), &body);
            let builds = match event {
                "pull_request" => matches!(
                    payload["action"].as_str(),
                    Some("opened" | "synchronize" | "reopened")
                ),
                "push" => !payload["deleted"].as_bool().unwrap(),
                _ => false,
            };
            let want = if event == "ping" { 200 } else { 202 };
            assert_eq!(status, want, "{}: {text}", file.display());
            let reply: Value = serde_json::from_str(&text).unwrap();
            if builds {
                assert!(
                    reply["build"].is_i64(),
                    "{} should build: {text}",
                    file.display()
                );
                let (pr, sha) = if event == "pull_request" {
                    (
                        payload["number"].as_u64(),
                        payload["pull_request"]["head"]["sha"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    )
                } else {
                    (None, payload["after"].as_str().unwrap().to_string())
                };
                expected.push((
                    payload["repository"]["full_name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    pr,
                    sha,
                ));
            } else {
                assert!(
                    reply.get("build").is_none_or(Value::is_null),
                    "{} should not build: {text}",
                    file.display()
                );
            }
        }
    }
    let builds = h.json("/api/builds?limit=1000");
    let mut got: Vec<(String, Option<u64>, String)> = builds["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["repo"].as_str().unwrap().to_string(),
                b["spec"]["context"]["pull_request"].as_u64(),
                b["spec"]["head_sha"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.reverse();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    // Every PR build fetches refs/pull/N/head and merges into the base branch.
    for b in builds["builds"].as_array().unwrap() {
        if let Some(pr) = b["spec"]["context"]["pull_request"].as_u64() {
            assert_eq!(b["spec"]["head_ref"], format!("refs/pull/{pr}/head"));
            assert_eq!(
                b["spec"]["base_ref"],
                format!(
                    "refs/heads/{}",
                    b["spec"]["context"]["branch"].as_str().unwrap()
                )
            );
        }
    }
    h.stop();
}

#[test]
fn each_signature_failure_is_401_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    let body = push_payload(
        "acme/app",
        "file:///nowhere",
        "refs/heads/master",
        &"a".repeat(40),
    );
    let url = format!("{}/webhooks/github", h.url());
    let good = slipway_webhook::signature::sign(SECRET.as_bytes(), &body);
    let wrong_key = slipway_webhook::signature::sign(b"not the secret", &body);
    let other_body = slipway_webhook::signature::sign(SECRET.as_bytes(), b"{}");
    let upper = good.replace("sha256=", "SHA256=");
    let sha1 = "sha1=5d61605c3feea9799210ddcb71307d4ba264225f";
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("missing", vec![]),
        ("sha1 only", vec![("X-Hub-Signature", sha1)]),
        (
            "sha1 in the sha256 header",
            vec![("X-Hub-Signature-256", sha1)],
        ),
        ("wrong secret", vec![("X-Hub-Signature-256", &wrong_key)]),
        (
            "signature of another body",
            vec![("X-Hub-Signature-256", &other_body)],
        ),
        ("not hex", vec![("X-Hub-Signature-256", "sha256=xyz")]),
        ("upper-case prefix", vec![("X-Hub-Signature-256", &upper)]),
    ];
    for (i, (name, sig)) in cases.into_iter().enumerate() {
        let id = format!("bad-{i}");
        let mut headers = vec![
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", id.as_str()),
        ];
        headers.extend(sig);
        let (status, text) = http("POST", &url, &headers, &body);
        assert_eq!(status, 401, "{name}: {text}");
    }
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM deliveries"), 0);
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM builds"), 0);
    // The same body with the right signature is accepted: the failures above were the signatures.
    assert_eq!(h.deliver("push", "good", &body).0, 202);
    h.stop();
}

#[test]
fn one_delivery_sent_100_times_across_a_restart_makes_one_build() {
    let tmp = tempfile::tempdir().unwrap();
    let body = pr_payload(
        "acme/app",
        "file:///nowhere",
        "opened",
        3,
        &"b".repeat(40),
        &"c".repeat(40),
    );
    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| h.deliver("pull_request", "same-id", &body).0))
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        49,
        "{statuses:?}"
    );
    h.stop();

    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    for _ in 0..50 {
        assert_eq!(h.deliver("pull_request", "same-id", &body).0, 200);
    }
    assert_eq!(h.json("/api/builds")["builds"].as_array().unwrap().len(), 1);
    h.stop();
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM builds"), 1);
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM deliveries"), 1);
}

#[test]
fn a_replayed_body_under_a_new_delivery_id_is_a_duplicate_also_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let body = push_payload(
        "acme/app",
        "file:///nowhere",
        "refs/heads/master",
        &"d".repeat(40),
    );
    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    assert_eq!(h.deliver("push", "original", &body).0, 202);
    let (status, text) = h.deliver("push", "replayed-1", &body);
    assert_eq!((status, text.as_str()), (200, "{\"duplicate\":true}"));
    // One byte more is another delivery.
    let mut other = body.clone();
    other.push(b' ');
    assert_eq!(h.deliver("push", "another", &other).0, 202);
    h.stop();
    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    assert_eq!(h.deliver("push", "replayed-2", &body).0, 200);
    h.stop();
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM builds"), 2);
}

#[test]
fn repositories_outside_the_allow_list_get_404_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = idle_config();
    c.repos = vec![slipway_webhook::config::Repo {
        name: "acme/app".into(),
        clone_url: None,
        token: None,
        deploy: None,
    }];
    let h = Harness::start(tmp.path(), c, Arc::new(ScriptedJobRunner));
    let other = push_payload(
        "eve/other",
        "file:///nowhere",
        "refs/heads/master",
        &"a".repeat(40),
    );
    assert_eq!(h.deliver("push", "d1", &other).0, 404);
    let ours = push_payload(
        "acme/app",
        "file:///nowhere",
        "refs/heads/master",
        &"a".repeat(40),
    );
    assert_eq!(h.deliver("push", "d2", &ours).0, 202);
    h.stop();
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM deliveries"), 1);
}

#[test]
fn a_body_over_the_limit_is_413() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = idle_config();
    c.max_body_bytes = 1024;
    let h = Harness::start(tmp.path(), c, Arc::new(ScriptedJobRunner));
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    assert_eq!(h.deliver("push", "big", big.as_bytes()).0, 413);
    h.stop();
    assert_eq!(count(tmp.path(), "SELECT count(*) FROM deliveries"), 0);
}

#[test]
fn health_and_metrics_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness::start(tmp.path(), idle_config(), Arc::new(ScriptedJobRunner));
    assert_eq!(h.get("/healthz"), (200, "ok\n".to_string()));
    let body = push_payload(
        "acme/app",
        "file:///nowhere",
        "refs/heads/master",
        &"a".repeat(40),
    );
    h.deliver("push", "m1", &body);
    h.deliver("push", "m1", &body);
    // Not for strangers: only an API token reads it on the public address.
    assert_eq!(h.get("/metrics").0, 404);
    let (status, text) = http(
        "GET",
        &format!("{}/metrics", h.url()),
        &[("Authorization", "Bearer ui-token")],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        text.contains("slipway_deliveries_accepted_total 1"),
        "{text}"
    );
    assert!(
        text.contains("slipway_deliveries_duplicate_total 1"),
        "{text}"
    );
    assert!(
        text.contains("slipway_builds{state=\"queued\"} 1"),
        "{text}"
    );
    h.stop();
}

/// Travis's `compare_url` rides with each build GitHub's example deliveries start: a push's
/// `compare`, a pull request's page.
#[test]
fn githubs_example_payloads_name_where_their_changes_are_seen() {
    let Some(shared) = shared_dir() else { return };
    for (event, file, field) in [
        ("push", "with-new-branch.payload.json", "/compare"),
        (
            "push",
            "with-no-username-committer.payload.json",
            "/compare",
        ),
        (
            "pull_request",
            "opened.payload.json",
            "/pull_request/html_url",
        ),
        (
            "pull_request",
            "synchronize.payload.json",
            "/pull_request/html_url",
        ),
    ] {
        let path = shared.join("fixtures/github").join(event).join(file);
        let Ok(body) = std::fs::read(&path) else {
            panic!("{} is missing", path.display())
        };
        let payload: Value = serde_json::from_slice(&body).unwrap();
        let want = payload.pointer(field).and_then(Value::as_str).unwrap();
        let slipway_webhook::event::Event::Build(build) =
            slipway_webhook::event::parse(event, &body).unwrap()
        else {
            panic!("{file}: no build")
        };
        assert_eq!(build.context.compare_url.as_deref(), Some(want), "{file}");
    }
}
