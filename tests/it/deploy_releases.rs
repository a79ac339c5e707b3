//! `slipway run` with a `releases` deploy against the GitHub stand-in (`FakeGitHub` with its
//! Releases side, which checks each request as GitHub does): a tag build creates the tag's
//! release with the two files the job built, with the token from a `secure:` option made by
//! `slipway secrets encrypt`, never shown; a branch build deploys nothing; a dry run lists the
//! calls without contacting the stand-in. Under CI=true a missing engine or image fails.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{
    assert_two_assets, busybox, encrypt, engine_ready, succeeded, text, two_assets_script,
};
use slipway_webhook::testing::{FakeGitHub, FakeReleases};

const REPO: &str = "acme/tool";
const TOKEN: &str = "ghp_e2e_release_3b9d0c71";

fn run(dir: &Path, data: &Path, api: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir)
        .args(["--repo", REPO])
        .args(args)
        .env("SLIPWAY_DATA_DIR", data)
        .env("SLIPWAY_GITHUB_API_ENDPOINT", api)
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn a_tag_build_releases_the_two_files_it_built() {
    if !engine_ready() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let github = FakeGitHub::default();
    github.releases(FakeReleases {
        tokens: vec![TOKEN.into()],
        repos: vec![REPO.into()],
        ..FakeReleases::default()
    });
    let api = github.start(&rt);
    let data = tempfile::tempdir().unwrap();
    let token = encrypt(data.path(), REPO, &format!("GITHUB_TOKEN={TOKEN}"));
    let pipeline = format!(
        r#"image: "{image}"
language: shell
{script}deploy:
  provider: releases
  api_key:
    secure: "{token}"
  file_glob: true
  file: dist/*
  name: Tool $TRAVIS_TAG
  skip_cleanup: true
  on:
    tags: true
"#,
        image = busybox(),
        script = two_assets_script("tool"),
    );
    let repo = crate::support::repo_with_pipeline(".slipway.yml", &pipeline);

    // A dry run lists the calls, the token as [secure], and contacts nothing.
    let out = run(
        repo.path(),
        data.path(),
        &api,
        &["--tag", "v2.0.0", "--dry-run"],
    );
    let dry = text(&out);
    assert!(out.status.success(), "{dry}");
    assert!(
        dry.contains(&format!(
            "github GET {api}/repos/acme/tool/releases tag_name=v2.0.0"
        )),
        "{dry}"
    );
    assert!(
        dry.contains("credentials: the token option ([secure])"),
        "{dry}"
    );
    assert!(github.requests.lock().unwrap().is_empty());

    // A branch build: `on: tags: true` leaves the deploy out.
    let out = run(repo.path(), data.path(), &api, &["--branch", "main"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(github.requests.lock().unwrap().is_empty());

    let out = run(repo.path(), data.path(), &api, &["--tag", "v2.0.0"]);
    let log = succeeded(&out, &["Deploying with releases"]);
    assert!(
        log.contains("Deploy finished: release v2.0.0 of acme/tool: 2 asset(s) uploaded"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "{log}");
    let state = github.releases_state();
    assert!(state.problems.is_empty(), "{:#?}", state.problems);
    assert_eq!(state.releases.len(), 1);
    let r = &state.releases[0];
    assert_eq!(r.tag_name, "v2.0.0");
    assert_eq!(r.name.as_deref(), Some("Tool v2.0.0"));
    assert!(!r.draft);
    assert_two_assets(r, "tool", "v2.0.0");
}
