//! `slipway serve` end to end: a local bare repository stands in for GitHub's git, a local HTTP
//! server for its API; pull requests are merged, built in Docker and reported.

use crate::serve::*;

const PIPELINE: &str = "language: minimal\nimage: slipway-test/debian:latest\nscript:\n  - 'echo \"built= $(cat feature.txt 2>/dev/null || echo none) <script>alert(1)</script>\"'\n\
deploy:\n  provider: script\n  script: echo DEPLOYING-NOW\n  on:\n    branch: master\n";

#[test]
fn pull_requests_and_pushes_are_built_in_docker_and_reported() {
    let Some((tmp, origin)) = docker_and_origin(PIPELINE) else {
        return;
    };
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let server = Served::new(tmp.path(), &api, &origin.url(), "workers = 2");

    // A pull request: the merge is built, the deploy does not run, the status links the build.
    let head = origin.pull_request(1, "master", "feature.txt", "feature-one\n");
    let base = git(&origin.work, &["rev-parse", "master"]);
    let pr_build = build_of(server.deliver(
        "pull_request",
        "e2e-pr-1",
        &pr_payload(REPO, &origin.url(), "opened", 1, &head, &base),
    ));
    let v = server.wait_final(pr_build, 180);
    assert_eq!(
        v["build"]["state"],
        "passed",
        "{v}\n{}",
        server.server_log()
    );
    let job = v["jobs"][0]["id"].as_i64().unwrap();
    let log = server.job_log(job);
    assert!(log.contains("built= feature-one"), "{log}");
    assert!(
        !log.contains("DEPLOYING-NOW"),
        "a pull request never deploys: {log}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !github
        .statuses()
        .iter()
        .any(|s| s.0 == head && s.1 == "success")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no success status: {:?}",
            github.statuses()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let last = github
        .statuses()
        .into_iter()
        .rfind(|s| s.0 == head)
        .unwrap();
    assert_eq!(last.2, format!("{}/builds/{pr_build}", server.url()));

    // A conflicting pull request ends errored with the paths, on the build and on GitHub.
    let conflicting = origin.pull_request(2, "master", "README", "one\nPR version\nthree\n");
    let master = origin.push_master("README", "one\nmaster version\nthree\n");
    let conflict_build = build_of(server.deliver(
        "pull_request",
        "e2e-pr-2",
        &pr_payload(REPO, &origin.url(), "opened", 2, &conflicting, &master),
    ));
    let v = server.wait_final(conflict_build, 60);
    assert_eq!(v["build"]["state"], "errored", "{v}");
    assert!(
        v["build"]["log"].as_str().unwrap().contains("README"),
        "{v}"
    );

    // A push to master runs the deploy.
    let push_build = build_of(server.deliver(
        "push",
        "e2e-push-1",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &master),
    ));
    let v = server.wait_final(push_build, 180);
    assert_eq!(v["build"]["state"], "passed", "{v}");
    let log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert!(
        log.contains("DEPLOYING-NOW"),
        "a push to master deploys: {log}"
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !github
        .statuses()
        .iter()
        .any(|s| s.0 == conflicting && s.1 == "error")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no error status: {:?}",
            github.statuses()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let err = github
        .statuses()
        .into_iter()
        .rfind(|s| s.0 == conflicting)
        .unwrap();
    assert!(err.3.contains("README"), "{err:?}");

    // The CLI reads the same API.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["builds", "--server", &server.url()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listing.contains("PR #1") && listing.contains("errored"),
        "{listing}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["logs", "-f", &job.to_string(), "--server", &server.url()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("built= feature-one"));
}
