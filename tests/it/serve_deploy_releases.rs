//! `slipway serve` end to end with a `releases` deploy and no token in the pipeline: a tag push
//! creates the tag's GitHub Release with the two files the job built, through the server's own
//! GitHub access (`[github] token`) on the GitHub stand-in, which checks every request. The same
//! pipeline cannot turn that access on another repository, and a pull request from a fork sends
//! GitHub nothing for a release.

use crate::serve::*;
use crate::support::{assert_two_assets, two_assets_script};

/// The server's `[github] token` (see `serve::Served`).
const SERVER_TOKEN: &str = "gh-token";

fn pipeline() -> String {
    format!(
        r#"image: "{IMAGE}"
language: shell
{script}deploy:
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
"#,
        script = two_assets_script("app"),
    )
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
    let Some((tmp, origin)) = docker_and_origin(&pipeline()) else {
        return;
    };
    let github = FakeGitHub::default();
    github.releases(FakeReleases {
        tokens: vec![SERVER_TOKEN.into()],
        repos: vec![REPO.into(), "eve/loot".into()],
        ..FakeReleases::default()
    });
    let server = Served::one_worker(tmp.path(), &github, &origin, &[]);

    // A pull request from a fork: its deploys never run, so GitHub hears of no release.
    let fork = server.fork_pull_request(&origin, 3, "releases-fork-pr");
    let fork_log = fork.expect("passed", &[]);
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
    let tag = server.push(&origin, "refs/tags/v1.4.0", &sha, "releases-tag-push");
    let log = tag.expect(
        "passed",
        &[
            "releases: credentials from the server's GitHub access for acme/app",
            "Deploy finished: release v1.4.0 of acme/app: 2 asset(s) uploaded",
        ],
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
    assert_two_assets(r, "app", "v1.4.0");
    assert!(
        release_requests(&github)
            .iter()
            .all(|r| !r.contains("eve/loot")),
        "{:#?}",
        release_requests(&github)
    );
    assert!(!log.contains(SERVER_TOKEN), "{log}");
}
