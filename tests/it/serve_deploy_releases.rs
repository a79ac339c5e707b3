//! `slipway serve` end to end with a `releases` deploy and no token in the pipeline: a tag push
//! creates the tag's GitHub Release with the two files the job built, through the server's own
//! GitHub access (`[github] token`) on the GitHub stand-in, which checks every request. The same
//! pipeline cannot turn that access on another repository, and a pull request from a fork sends
//! GitHub nothing for a release.

use crate::serve::*;

/// The server's `[github] token` (see `serve::Served`).
const SERVER_TOKEN: &str = "gh-token";

fn pipeline() -> String {
    format!(
        r#"image: "{IMAGE}"
language: shell
script:
  - mkdir -p dist
  - echo "app for linux $TRAVIS_TAG" > dist/app-linux.tar.gz
  - echo "app for windows" > dist/app-windows.zip
deploy:
  - provider: releases
    file_glob: true
    file: dist/*
    body: Built by Slipway
    skip_cleanup: true
    on:
      tags: true
  - provider: releases
    repo: eve/loot
    file: dist/app-linux.tar.gz
    skip_cleanup: true
    allow_failure: true
    on:
      tags: true
"#
    )
}

fn build_of(answer: (u16, String)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    serde_json::from_str::<serde_json::Value>(&answer.1).unwrap()["build"]
        .as_i64()
        .unwrap()
}

fn release_requests(github: &FakeGitHub) -> Vec<String> {
    github
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.contains("/releases") || r.path.starts_with("/uploads/"))
        .map(|r| format!("{} {} {}", r.method, r.path, r.answered))
        .collect()
}

#[test]
fn a_tag_push_releases_two_assets_with_the_servers_github_access() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), &pipeline());
    let github = FakeGitHub::default();
    github.releases(FakeReleases {
        tokens: vec![SERVER_TOKEN.into()],
        repos: vec![REPO.into(), "eve/loot".into()],
        ..FakeReleases::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = github.start(&rt);
    let server = Served::new(tmp.path(), &api, &origin.url(), "workers = 1");

    // A pull request from a fork: its deploys never run, so GitHub hears of no release.
    let head = origin.pull_request(3, "master", "feature.txt", "from a fork\n");
    let base = git(&origin.work, &["rev-parse", "master"]);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&pr_payload(REPO, &origin.url(), "opened", 3, &head, &base))
            .unwrap();
    payload["pull_request"]["head"]["repo"] = serde_json::json!({"full_name": "eve/app", "clone_url": "https://example.invalid/eve/app.git"});
    let fork = build_of(server.deliver(
        "pull_request",
        "releases-fork-pr",
        &serde_json::to_vec(&payload).unwrap(),
    ));
    let v = server.wait_final(fork, 180);
    let fork_log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{fork_log}");
    assert!(!fork_log.contains("Deploying with releases"), "{fork_log}");
    assert!(
        release_requests(&github).is_empty(),
        "{:#?}",
        release_requests(&github)
    );

    // A tag push.
    git(&origin.work, &["checkout", "-q", "master"]);
    let sha = git(&origin.work, &["rev-parse", "HEAD"]);
    git(&origin.work, &["tag", "v1.4.0"]);
    git(&origin.work, &["push", "-q", "origin", "v1.4.0"]);
    let tag = build_of(server.deliver(
        "push",
        "releases-tag-push",
        &push_payload(REPO, &origin.url(), "refs/tags/v1.4.0", &sha),
    ));
    let v = server.wait_final(tag, 180);
    let log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{log}");
    assert!(
        log.contains("releases: credentials from the server's GitHub access for acme/app"),
        "{log}"
    );
    assert!(
        log.contains("Deploy finished: release v1.4.0 of acme/app: 2 asset(s) uploaded"),
        "{log}"
    );
    // The second deploy names another repository: the server's access is not offered to it.
    assert!(
        log.contains("Deploy failed (allowed to fail): releases: no GitHub credentials are configured for the repository eve/loot"),
        "{log}"
    );

    let state = github.releases_state();
    assert!(state.problems.is_empty(), "{:#?}", state.problems);
    assert_eq!(state.releases.len(), 1, "{:#?}", state.releases);
    let r = &state.releases[0];
    assert_eq!(
        (
            r.repo.as_str(),
            r.tag_name.as_str(),
            r.target_commitish.as_str()
        ),
        (REPO, "v1.4.0", sha.as_str())
    );
    assert_eq!(r.body.as_deref(), Some("Built by Slipway"));
    assert!(!r.draft);
    let assets: Vec<(&str, &[u8])> = r
        .assets
        .iter()
        .map(|a| (a.name.as_str(), a.bytes.as_slice()))
        .collect();
    assert_eq!(
        assets,
        [
            ("app-linux.tar.gz", &b"app for linux v1.4.0\n"[..]),
            ("app-windows.zip", &b"app for windows\n"[..]),
        ]
    );
    assert!(
        release_requests(&github)
            .iter()
            .all(|r| !r.contains("eve/loot")),
        "{:#?}",
        release_requests(&github)
    );
    assert!(!log.contains(SERVER_TOKEN), "{log}");
}
