//! `slipway serve` end to end with a `pages` deploy: a push to master publishes the site the job
//! built to `gh-pages` of a real git server (`git http-backend` behind `GitHttp`, private to the
//! token), with the token from a `secure:` option encrypted into the server's data directory; a
//! pull request from a fork pushes nothing. The token is never in a log.

use crate::serve::*;
use slipway_webhook::testing::git_hosts::GitHttp;
use std::path::Path;
use std::process::Command;

const PAGES_TOKEN: &str = "ghp_pages_e2e_4f1a9c";

fn encrypt(data: &Path, assignment: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "secrets",
            "encrypt",
            assignment,
            "--repo",
            REPO,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text.trim()
        .strip_prefix("secure: \"")
        .and_then(|t| t.strip_suffix('"'))
        .unwrap()
        .to_string()
}

fn build_of(answer: (u16, String)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    serde_json::from_str::<serde_json::Value>(&answer.1).unwrap()["build"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_push_publishes_the_site_and_a_fork_pushes_nothing() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let token = encrypt(&data, &format!("PAGES_TOKEN={PAGES_TOKEN}"));
    let pipeline = format!(
        r#"image: "{IMAGE}"
language: shell
script:
  - mkdir -p site && echo "<h1>built on $TRAVIS_BRANCH</h1>" > site/index.html
deploy:
  provider: pages
  github_token:
    secure: "{token}"
  local_dir: site
  fqdn: app.example.org
  skip_cleanup: true
  on:
    branch: master
"#
    );
    let origin = Origin::new(tmp.path(), &pipeline);

    // The "GitHub" pages are pushed to: acme/app.git, private to the token.
    let hosted = tmp.path().join("hosted");
    let bare = hosted.join("acme/app.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "master"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let host = GitHttp::start(&hosted);
    host.private("/acme/app.git", PAGES_TOKEN);

    let github = FakeGitHub::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = github.start(&rt);
    let server = Served::with_env(
        tmp.path(),
        &api,
        &origin.url(),
        "workers = 1",
        &[("SLIPWAY_GITHUB_ENDPOINT", &host.url)],
    );

    let head = origin.pull_request(4, "master", "feature.txt", "from a fork\n");
    let base = git(&origin.work, &["rev-parse", "master"]);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&pr_payload(REPO, &origin.url(), "opened", 4, &head, &base))
            .unwrap();
    payload["pull_request"]["head"]["repo"] = serde_json::json!({"full_name": "eve/app", "clone_url": "https://example.invalid/eve/app.git"});
    let fork = build_of(server.deliver(
        "pull_request",
        "pages-fork-pr",
        &serde_json::to_vec(&payload).unwrap(),
    ));
    let v = server.wait_final(fork, 180);
    let fork_log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{fork_log}");
    assert!(host.requests().is_empty(), "{:#?}", host.requests());

    let sha = git(&origin.work, &["rev-parse", "master"]);
    let push = build_of(server.deliver(
        "push",
        "pages-push",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &sha),
    ));
    let v = server.wait_final(push, 180);
    let log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{log}");
    assert!(
        log.contains("Deploy finished: published 1 file(s) of site to gh-pages of acme/app"),
        "{log}"
    );
    assert_eq!(
        git(&bare, &["show", "gh-pages:index.html"]),
        "<h1>built on master</h1>"
    );
    assert_eq!(git(&bare, &["show", "gh-pages:CNAME"]), "app.example.org");
    for text in [&fork_log, &log, &server.server_log()] {
        assert!(!text.contains(PAGES_TOKEN), "{text}");
    }
}
