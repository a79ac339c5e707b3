//! Builds from delivery to final status with a scripted executor: local merges of pull requests,
//! merge conflicts, stages, cancellation, superseding pushes and a GitHub outage.

use crate::util::*;
use slipway_webhook::testing::ScriptedJobRunner;
use slipway_webhook::testing::git_hosts::Trickle;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPO: &str = "acme/app";

struct Setup {
    _tmp: tempfile::TempDir,
    origin: Origin,
    github: FakeGitHub,
    h: Harness,
}

fn setup(pipeline: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), pipeline);
    let github = FakeGitHub::default();
    // The stand-in runs on its own runtime so it outlives server restarts.
    let gh_rt = Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
    let api = github.start(gh_rt);
    let h = Harness::start(
        &tmp.path().join("data"),
        config(Some(&api)),
        Arc::new(ScriptedJobRunner),
    );
    Setup {
        _tmp: tmp,
        origin,
        github,
        h,
    }
}

/// Delivers a push of master, the first build, and waits for it to end; the API's view of it.
fn push_master(s: &Setup) -> serde_json::Value {
    let sha = git(&s.origin.work, &["rev-parse", "master"]);
    let body = push_payload(REPO, &s.origin.url(), "refs/heads/master", &sha);
    let (status, text) = s.h.deliver("push", "p1", &body);
    assert_eq!(status, 202, "{text}");
    s.h.wait_final(1, 30)
}

fn open_pr(s: &Setup, n: u64, head: &str, id: &str) -> i64 {
    let base = git(&s.origin.work, &["rev-parse", "master"]);
    let body = pr_payload(REPO, &s.origin.url(), "opened", n, head, &base);
    let (status, text) = s.h.deliver("pull_request", id, &body);
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["build"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_pull_request_is_merged_built_and_reported_with_a_link() {
    let s = setup("script:\n  - echo hello\n");
    s.origin.push_master("base.txt", "master moved on\n");
    let head = s.origin.pull_request(1, "master~1", "feature.txt", "new\n");
    let id = open_pr(&s, 1, &head, "pr-1");
    let v = s.h.wait_final(id, 30);
    assert_eq!(v["build"]["state"], "passed", "{v}");
    // The build ran the merge of the head into the current base: both changes are in it.
    let merge = v["build"]["merge_sha"].as_str().unwrap().to_string();
    let mirror = s.h.data.join("mirrors/acme/app.git");
    let parents = git(&mirror, &["rev-list", "--parents", "-n1", &merge]);
    assert_eq!(
        parents.split(' ').count(),
        3,
        "a merge commit has two parents: {parents}"
    );
    assert!(parents.contains(&head));
    let files = git(&mirror, &["ls-tree", "--name-only", &merge]);
    assert!(
        files.contains("base.txt") && files.contains("feature.txt"),
        "{files}"
    );
    // The job's log holds the scripted output.
    let job = v["jobs"][0]["id"].as_i64().unwrap();
    let (_, log) = s.h.get(&format!("/jobs/{job}/log.txt"));
    assert!(log.contains("echo hello"), "{log}");
    wait_for("the final status", 10, || {
        s.github.statuses().iter().any(|st| st.1 == "success")
    });
    let statuses = s.github.statuses();
    assert_eq!(statuses.first().unwrap().1, "pending");
    let last = statuses.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        (head.as_str(), "success")
    );
    assert!(last.2.ends_with(&format!("/builds/{id}")), "{last:?}");
    let requests = s.github.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|r| r.path == format!("/repos/{REPO}/statuses/{head}")),
        "{requests:?}"
    );
    assert!(requests.iter().all(|r| r.body["context"] == "slipway"));
}

#[test]
fn a_conflicting_pull_request_errors_with_the_conflicting_paths() {
    let s = setup("script:\n  - echo hello\n");
    let head = s
        .origin
        .pull_request(2, "master", "README", "one\nTWO from the PR\nthree\n");
    s.origin
        .push_master("README", "one\ntwo from master\nthree\n");
    let id = open_pr(&s, 2, &head, "pr-2");
    let v = s.h.wait_final(id, 30);
    assert_eq!(v["build"]["state"], "errored", "{v}");
    assert!(
        v["build"]["reason"].as_str().unwrap().contains("README"),
        "{v}"
    );
    assert!(
        v["build"]["log"].as_str().unwrap().contains("  README\n"),
        "{v}"
    );
    assert!(v["jobs"].as_array().unwrap().is_empty());
    wait_for("the error status", 10, || {
        s.github.statuses().iter().any(|st| st.1 == "error")
    });
    let last = s.github.statuses().last().unwrap().clone();
    assert_eq!(last.1, "error");
    assert!(last.3.contains("merge conflict in README"), "{last:?}");
    let (_, page) = s.h.get(&format!("/builds/{id}"));
    assert!(page.contains("README"), "the build page shows the paths");
}

#[test]
fn a_failed_stage_cancels_the_later_stages() {
    let s = setup(
        "jobs:\n  include:\n    - stage: test\n      script: fail\n    - stage: test\n      script: echo ok\n    - stage: deploy\n      script: echo never\n",
    );
    let v = push_master(&s);
    assert_eq!(v["build"]["state"], "failed", "{v}");
    let states: Vec<(&str, &str)> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["stage"].as_str().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("test", "failed"),
            ("test", "passed"),
            ("deploy", "canceled")
        ]
    );
}

#[test]
fn jobs_for_another_os_are_not_run_here_and_the_build_passes_on_the_others() {
    let s = setup("os: [linux, osx]\nscript: echo ok\n");
    let v = push_master(&s);
    assert_eq!(v["build"]["state"], "passed", "{v}");
    assert!(
        v["build"]["reason"]
            .as_str()
            .unwrap()
            .contains("were not run"),
        "{v}"
    );
    let jobs = v["jobs"].as_array().unwrap();
    let states: Vec<&str> = jobs.iter().map(|j| j["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["passed", "not_run"]);
    assert!(
        jobs[1]["reason"]
            .as_str()
            .unwrap()
            .contains("os: osx needs a macOS machine"),
        "{v}"
    );
    let (_, page) = s.h.get("/builds/1");
    assert!(page.contains("not run here"), "{page}");
    wait_for("the final status", 10, || {
        s.github.statuses().iter().any(|st| st.1 == "success")
    });
}

#[test]
fn closing_a_pull_request_cancels_its_running_build() {
    let s = setup("script:\n  - sleep 60000\n");
    let head = s.origin.pull_request(4, "master", "f.txt", "x\n");
    let id = open_pr(&s, 4, &head, "pr-4-open");
    wait_for("the job to run", 20, || {
        s.h.json(&format!("/api/builds/{id}"))["jobs"][0]["state"] == "running"
    });
    let base = git(&s.origin.work, &["rev-parse", "master"]);
    let closed = pr_payload(REPO, &s.origin.url(), "closed", 4, &head, &base);
    assert_eq!(s.h.deliver("pull_request", "pr-4-close", &closed).0, 202);
    let v = s.h.wait_final(id, 10);
    assert_eq!(v["build"]["state"], "canceled", "{v}");
    assert_eq!(v["jobs"][0]["state"], "canceled", "{v}");
}

#[test]
fn a_new_push_to_a_pull_request_supersedes_its_older_build() {
    let s = setup("script:\n  - sleep 60000\n");
    let first = s.origin.pull_request(5, "master", "f.txt", "1\n");
    let old = open_pr(&s, 5, &first, "pr-5-a");
    wait_for("the job to run", 20, || {
        s.h.json(&format!("/api/builds/{old}"))["jobs"][0]["state"] == "running"
    });
    let second = s.origin.pull_request(5, "master", "f.txt", "2\n");
    let new = open_pr(&s, 5, &second, "pr-5-b");
    let v = s.h.wait_final(old, 10);
    assert_eq!(v["build"]["state"], "canceled");
    assert_eq!(v["build"]["reason"], format!("superseded by build #{new}"));
    assert_ne!(
        s.h.json(&format!("/api/builds/{new}"))["build"]["state"],
        "canceled"
    );
}

#[test]
fn a_github_outage_delays_statuses_but_loses_none() {
    let s = setup("script:\n  - echo hi\n");
    s.github.fail(6, 500);
    let head = s.origin.pull_request(6, "master", "f.txt", "x\n");
    let id = open_pr(&s, 6, &head, "pr-6");
    assert_eq!(s.h.wait_final(id, 30)["build"]["state"], "passed");
    wait_for("the final status after the outage", 30, || {
        s.github.statuses().iter().any(|st| st.1 == "success")
    });
    s.github.fail(3, 429);
    let head2 = s.origin.pull_request(7, "master", "g.txt", "y\n");
    let id2 = open_pr(&s, 7, &head2, "pr-7");
    assert_eq!(s.h.wait_final(id2, 30)["build"]["state"], "passed");
    wait_for("the final status after rate limiting", 30, || {
        s.github
            .statuses()
            .iter()
            .any(|st| st.0 == head2 && st.1 == "success")
    });
    let failed = s
        .github
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.answered != 201)
        .count();
    assert_eq!(failed, 9, "every failure was answered and retried");
    // No stale "pending" arrived after a final state of the same commit.
    for sha in [&head, &head2] {
        let states: Vec<String> = s
            .github
            .statuses()
            .into_iter()
            .filter(|st| &st.0 == sha)
            .map(|st| st.1)
            .collect();
        assert_eq!(
            states.last().map(String::as_str),
            Some("success"),
            "{states:?}"
        );
    }
}

#[test]
fn cancel_and_restart_need_a_token() {
    let s = setup("script:\n  - sleep 60000\n");
    let sha = git(&s.origin.work, &["rev-parse", "master"]);
    s.h.deliver(
        "push",
        "c1",
        &push_payload(REPO, &s.origin.url(), "refs/heads/master", &sha),
    );
    let url = format!("{}/api/builds/1/cancel", s.h.url());
    assert_eq!(http("POST", &url, &[], b"").0, 401);
    assert_eq!(
        http("POST", &url, &[("Authorization", "Bearer wrong")], b"").0,
        401
    );
    assert_eq!(
        http("POST", &url, &[("Authorization", "Bearer ui-token")], b"").0,
        200
    );
    assert_eq!(s.h.wait_final(1, 10)["build"]["state"], "canceled");
    let (status, text) = http(
        "POST",
        &format!("{}/api/builds/1/restart", s.h.url()),
        &[("Authorization", "Bearer ui-token")],
        b"",
    );
    assert_eq!(status, 201, "{text}");
    assert_eq!(text, r#"{"build":2}"#);
}

#[test]
fn a_build_cancelled_while_being_prepared_stops_fetching_before_its_next_renewal() {
    // Renewals every 20 s, and fetches that never end: only the cancel itself stops them sooner.
    let lease_seconds = 60;
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script:\n  - echo hi\n");
    let mut c = config(None);
    c.workers = 1;
    c.lease_seconds = lease_seconds;
    c.git.allow = vec!["127.0.0.1".parse().unwrap()];
    // Past the first renewal, so a failing test ends.
    c.git.fetch_timeout_seconds = 50;
    let h = Harness::start(&tmp.path().join("data"), c, Arc::new(ScriptedJobRunner));
    let trickle = Trickle::start(Duration::from_millis(100));
    let url = format!("http://{}/acme/app.git", trickle.addr);
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let push = |id: &str| {
        let body = push_payload_with(REPO, &url, "refs/heads/master", &sha, false, id);
        build_of(h.deliver("push", id, &body))
    };
    // Once build `id` is fetched on connection `n`: when its first renewal is due.
    let fetching = |id: i64, n: usize| {
        wait_for("the build's fetch", 30, || trickle.connections().len() > n);
        let v = h.json(&format!("/api/builds/{id}"));
        assert_eq!(v["build"]["state"], "preparing", "{v}");
        let claimed_at = v["build"]["started_at"].as_i64().expect("claimed");
        instant_of(claimed_at + lease_seconds as i64 * 1000 / 3)
    };
    let stopped_before = |n: usize, renewal: Instant| {
        let wait = renewal.saturating_duration_since(Instant::now()).as_secs() + 5;
        let closed = fetch_closed(&trickle, n, wait);
        assert!(
            closed < renewal,
            "fetch {n} stopped {:?} after its first renewal was due",
            closed - renewal
        );
    };

    // A newer push of the branch supersedes the build being prepared.
    let first = push("prep-1");
    let renewal = fetching(first, 0);
    let second = push("prep-2");
    stopped_before(0, renewal);
    let v = h.wait_final(first, 10);
    assert_eq!(
        v["build"]["reason"],
        format!("superseded by build #{second}")
    );

    // A cancel through the API stops the next one.
    let renewal = fetching(second, 1);
    let (status, text) = http(
        "POST",
        &format!("{}/api/builds/{second}/cancel", h.url()),
        &[("Authorization", "Bearer ui-token")],
        b"",
    );
    assert_eq!(status, 200, "{text}");
    stopped_before(1, renewal);
    for build in [first, second] {
        let v = h.wait_final(build, 10);
        assert_eq!(v["build"]["state"], "canceled", "{v}");
        assert_eq!(v["jobs"], serde_json::json!([]), "{v}");
        assert!(v["build"]["merge_sha"].is_null(), "{v}");
    }
    assert_eq!(trickle.connections().len(), 2, "each build fetched once");
    h.stop();
}
