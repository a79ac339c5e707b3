//! `slipway serve` as a GitHub App reports check runs, end to end: jobs built in Docker, the
//! stand-in for GitHub's API checking every request (the App's JWTs and installation tokens, each
//! status and check-run body against GitHub's schema). A check run per job, in progress then
//! concluded with its summary, the failing command and the masked end of its log; a pipeline file
//! that cannot be planned annotated on its lines; GitHub's Re-run buttons running a job or a build
//! again, and only for check runs of the repository the event names. With a plain token there are
//! statuses only.

use crate::serve::*;
use crate::support::encrypt;
use slipway_webhook::testing::FakeApp;

const APP_ID: u64 = 5151;
const INSTALLATION: u64 = 77;
const SECRET_VALUE: &str = "hush-7f3a9c21d0";

fn accepted(answer: (u16, String)) -> serde_json::Value {
    assert_eq!(answer.0, 202, "{}", answer.1);
    serde_json::from_str(&answer.1).unwrap()
}

/// A `check_run` or `check_suite` delivery with action `rerequested`.
fn rerequested(event: &str, repo: &str, clone_url: &str, id: i64, sha: &str) -> Vec<u8> {
    let mut v = serde_json::json!({
        "action": "rerequested",
        "repository": {"full_name": repo, "clone_url": clone_url, "private": false},
        "sender": {"login": "dev"},
    });
    match event {
        "check_run" => {
            v["check_run"] = serde_json::json!({"id": id, "head_sha": sha, "external_id": "1"});
        }
        _ => v["check_suite"] = serde_json::json!({"id": 1, "head_sha": sha}),
    }
    v.to_string().into_bytes()
}

#[test]
fn an_app_gets_a_check_run_per_job_annotations_and_working_rerun_buttons() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (pem, public_key_der) = app_key_pair(tmp.path())
        .expect("openssl is needed to make the App's key (scripts/install-test-deps.sh)");
    let data = tmp.path().join("data");
    let secure = encrypt(&data, REPO, &format!("TOKEN={SECRET_VALUE}"));
    let pipeline = format!(
        "language: minimal\nimage: {IMAGE}\nenv:\n  global:\n    - secure: \"{secure}\"\njobs:\n  include:\n    - name: good\n      script: echo all good\n    - env: FLAVOUR=bad\n      script:\n        - echo \"token is $TOKEN\"\n        - echo about to fail\n        - sh -c 'exit 3'\n"
    );
    let origin = Origin::new(tmp.path(), &pipeline);
    let github = FakeGitHub::default();
    github.app(FakeApp {
        iss: serde_json::json!(APP_ID),
        public_key_der,
        installation_id: INSTALLATION,
        lifetimes: vec![3600],
        ..FakeApp::default()
    });
    let api = github_api(&github);
    let clone = origin.url();
    let server = Served::with_config(
        tmp.path(),
        free_port(),
        |port| {
            format!(
                "listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"{SECRET}\"\napi_tokens = [\"{TOKEN}\"]\nworkers = 2\n\
                 [github]\napi_url = \"{api}\"\napp_id = {APP_ID}\nprivate_key_path = \"{}\"\nmax_backoff_seconds = 1\n\
                 [[repos]]\nname = \"{REPO}\"\nclone_url = \"{clone}\"\n[[repos]]\nname = \"acme/lib\"\nclone_url = \"{clone}\"\n",
                pem.display()
            )
        },
        &[],
    );
    let sha = git(&origin.work, &["rev-parse", "HEAD"]);
    let build = accepted(server.deliver(
        "push",
        "checks-push-1",
        &push_payload(REPO, &clone, "refs/heads/master", &sha),
    ))["build"]
        .as_i64()
        .unwrap();
    let v = server.wait_final(build, 180);
    assert_eq!(
        v["build"]["state"],
        "failed",
        "{v}\n{}",
        server.server_log()
    );
    let jobs: Vec<i64> = (0..2)
        .map(|i| v["jobs"][i]["id"].as_i64().unwrap())
        .collect();
    wait_for("two concluded check runs", 30, || {
        let runs = github.check_runs();
        runs.len() == 2 && runs.iter().all(|r| r.get("status") == "completed")
    });
    let runs = github.check_runs();
    let by_name = |name: &str| {
        runs.iter()
            .find(|r| r.get("name") == name)
            .unwrap_or_else(|| panic!("no check run {name}: {runs:#?}"))
            .clone()
    };
    let good = by_name("good");
    let bad = runs
        .iter()
        .find(|r| r.get("name") != "good")
        .unwrap()
        .clone();
    // Named after its matrix, secure values never in words.
    let bad_name = bad.get("name").as_str().unwrap().to_string();
    assert!(bad_name.contains("FLAVOUR=bad"), "{bad_name}");
    assert!(!bad_name.contains(SECRET_VALUE), "{bad_name}");
    for (run, job, conclusion) in [(&good, jobs[0], "success"), (&bad, jobs[1], "failure")] {
        // Created in progress when the job started, then concluded by an update.
        assert_eq!(run.requests.len(), 2, "{run:#?}");
        assert_eq!(run.requests[0]["status"], "in_progress");
        assert_eq!(run.requests[0]["head_sha"], sha.as_str());
        assert!(run.requests[0]["started_at"].is_string());
        assert_eq!(run.get("conclusion"), conclusion);
        assert_eq!(run.get("external_id"), job.to_string().as_str());
        assert_eq!(
            run.get("details_url"),
            format!("{}/jobs/{job}", server.url()).as_str()
        );
        assert_eq!(run.repo, REPO);
    }
    let summary = bad.get("output")["summary"].as_str().unwrap().to_string();
    let text = bad.get("output")["text"].as_str().unwrap().to_string();
    assert!(summary.contains("sh -c 'exit 3' (exit 3)"), "{summary}");
    assert!(summary.contains("| script | exit 3 |"), "{summary}");
    assert!(text.contains("about to fail"), "{text}");
    assert!(text.contains("token is [secure]"), "{text}");
    for run in &runs {
        let all = serde_json::to_string(&run.requests).unwrap();
        assert!(
            !all.contains(SECRET_VALUE),
            "a secret reached GitHub: {all}"
        );
    }
    assert!(
        good.get("output")["summary"]
            .as_str()
            .unwrap()
            .contains("| script | passed |")
    );

    reruns(
        &server, &github, &clone, &sha, build, &bad, &bad_name, &jobs,
    );

    lint_annotations(&server, &github, &origin, &clone);

    // Every request was one GitHub takes, with the App's credentials.
    assert!(github.problems().is_empty(), "{:#?}", github.problems());
    let app = github.app_state().unwrap();
    assert!(app.problems.is_empty(), "{:?}", app.problems);
    for r in github.requests.lock().unwrap().iter() {
        if r.path.contains("/check-runs") {
            assert_eq!(r.authorization.as_deref(), Some("token ghs_fake1"), "{r:?}");
        }
    }
}

/// A pipeline file that cannot be planned gets a failed check run with its problems on its lines.
fn lint_annotations(server: &Served, github: &FakeGitHub, origin: &Origin, clone: &str) {
    // A pipeline file that cannot be planned: its problems on its lines.
    let broken = origin.push_master(
        ".travis.yml",
        "language: minimal\nscript:\n  - echo hi\nos: [linux\n",
    );
    let third = accepted(server.deliver(
        "push",
        "checks-push-broken",
        &push_payload(REPO, clone, "refs/heads/master", &broken),
    ))["build"]
        .as_i64()
        .unwrap();
    assert_eq!(server.wait_final(third, 60)["build"]["state"], "errored");
    wait_for("the pipeline file's check run", 30, || {
        github
            .check_runs()
            .iter()
            .any(|r| r.get("head_sha") == broken.as_str())
    });
    let lint = github
        .check_runs()
        .into_iter()
        .find(|r| r.get("head_sha") == broken.as_str())
        .unwrap();
    assert_eq!(lint.get("name"), "slipway: .travis.yml");
    assert_eq!(lint.get("conclusion"), "failure");
    assert!(!lint.annotations.is_empty(), "{lint:#?}");
    for a in &lint.annotations {
        assert_eq!(a["path"], ".travis.yml");
        assert!(a["start_line"].as_u64().unwrap() >= 4, "{a}");
        assert_eq!(a["annotation_level"], "failure");
    }
}

/// GitHub's Re-run buttons: a job's check run, the whole suite, and forged or unsigned ones.
#[allow(clippy::too_many_arguments)]
fn reruns(
    server: &Served,
    github: &FakeGitHub,
    clone: &str,
    sha: &str,
    build: i64,
    bad: &FakeCheckRun,
    bad_name: &str,
    jobs: &[i64],
) {
    // Re-run of the failing job's check run: the job runs again in its build, under a new check
    // run; the build ends again.
    let rerun = accepted(server.deliver(
        "check_run",
        "checks-rerun-1",
        &rerequested("check_run", REPO, clone, bad.id, sha),
    ));
    assert_eq!(rerun["build"], build, "{rerun}");
    wait_for("the re-run's check run to conclude", 120, || {
        let runs = github.check_runs();
        runs.len() == 3 && runs[2].get("status") == "completed"
    });
    let again = &github.check_runs()[2];
    assert_eq!(again.get("name"), bad_name);
    assert_eq!(again.get("external_id"), jobs[1].to_string().as_str());
    assert_eq!(again.get("conclusion"), "failure");
    assert_eq!(server.wait_final(build, 60)["build"]["state"], "failed");

    // The same check run named by another served repository, an unknown one, and an unsigned
    // delivery: nothing runs.
    let forged = accepted(server.deliver(
        "check_run",
        "checks-rerun-forged",
        &rerequested("check_run", "acme/lib", clone, bad.id, sha),
    ));
    assert!(forged["build"].is_null(), "{forged}");
    let unknown = accepted(server.deliver(
        "check_run",
        "checks-rerun-unknown",
        &rerequested("check_run", REPO, clone, 123_456, sha),
    ));
    assert!(unknown["build"].is_null(), "{unknown}");
    let (status, _) = http(
        "POST",
        &format!("{}/webhooks/github", server.url()),
        &[
            ("X-GitHub-Event", "check_run"),
            ("X-GitHub-Delivery", "checks-unsigned"),
            ("Content-Type", "application/json"),
        ],
        &rerequested("check_run", REPO, clone, bad.id, sha),
    );
    assert_eq!(status, 401);

    // Re-run all checks: the commit's build starts anew.
    let suite = accepted(server.deliver(
        "check_suite",
        "checks-suite-1",
        &rerequested("check_suite", REPO, clone, 0, sha),
    ));
    let second = suite["build"].as_i64().expect("a new build");
    assert!(second > build);
    assert_eq!(server.wait_final(second, 180)["build"]["state"], "failed");
    wait_for("the new build's check runs", 30, || {
        github.check_runs().len() == 5
            && github
                .check_runs()
                .iter()
                .all(|r| r.get("status") == "completed")
    });
    let forged_suite = accepted(server.deliver(
        "check_suite",
        "checks-suite-forged",
        &rerequested("check_suite", "acme/lib", clone, 0, sha),
    ));
    assert!(forged_suite["build"].is_null(), "{forged_suite}");
}

#[test]
fn a_plain_token_reports_statuses_only() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(
        tmp.path(),
        &format!("language: minimal\nimage: {IMAGE}\nscript: echo hi\n"),
    );
    let github = FakeGitHub::default();
    let server = Served::one_worker(tmp.path(), &github, &origin, &[]);
    let sha = git(&origin.work, &["rev-parse", "HEAD"]);
    let build = accepted(server.deliver(
        "push",
        "plain-push-1",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &sha),
    ))["build"]
        .as_i64()
        .unwrap();
    assert_eq!(server.wait_final(build, 180)["build"]["state"], "passed");
    wait_for("the success status", 30, || {
        github
            .statuses()
            .iter()
            .any(|s| s.0 == sha && s.1 == "success")
    });
    // The check-run items are done without a request: none reached GitHub.
    wait_for("an empty outbox", 30, || {
        let db = db(&server.data);
        db.query_row("SELECT count(*) FROM outbox WHERE done = 0", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
            == 0
    });
    let requests = github.requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|r| !r.path.contains("/check-runs")),
        "{requests:#?}"
    );
    assert!(github.problems().is_empty(), "{:#?}", github.problems());
}
