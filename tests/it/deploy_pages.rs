//! `slipway run` with a `pages` deploy, end to end: a push to master publishes the site the job
//! built to `gh-pages` of a real git server (`git http-backend` behind `GitHttp`, private to the
//! token, where `SLIPWAY_GITHUB_ENDPOINT` points), with the token from a `secure:` option; a dry
//! run lists the push without sending it. The token is never shown. Under CI=true a missing
//! engine or image fails.

use std::process::Command;

use crate::support::{busybox, encrypt, engine_ready, pages_host, pages_pipeline, text};

const REPO: &str = "acme/site";
const TOKEN: &str = "ghp_pages_run_8e2d41";

#[test]
fn a_push_publishes_the_site_the_job_built() {
    if !engine_ready() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let token = encrypt(data.path(), REPO, &format!("PAGES_TOKEN={TOKEN}"));
    let pipeline = pages_pipeline(&busybox(), &token, "site.example.org");
    let dir = crate::support::repo_with_pipeline(".slipway.yml", &pipeline);

    let hosted = tempfile::tempdir().unwrap();
    let (bare, host) = pages_host(hosted.path(), REPO, TOKEN);

    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_slipway"))
            .arg("run")
            .arg(dir.path())
            .args(["--repo", REPO, "--branch", "master"])
            .args(extra)
            .env("SLIPWAY_DATA_DIR", data.path())
            .env("SLIPWAY_GITHUB_ENDPOINT", &host.url)
            .env_remove("GITHUB_TOKEN")
            .output()
            .unwrap()
    };
    let dry = run(&["--dry-run"]);
    let dry_log = text(&dry);
    assert!(dry.status.success(), "{dry_log}");
    assert!(
        dry_log.contains(&format!("{}/acme/site.git", host.url)),
        "{dry_log}"
    );
    assert!(host.requests().is_empty(), "{:#?}", host.requests());

    let out = run(&[]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("Deploy finished: published 1 file(s) of site to gh-pages of acme/site"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "{log}");
    let show = |file: &str| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&bare)
            .args(["show", &format!("gh-pages:{file}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(show("index.html"), "<h1>built on master</h1>");
    assert_eq!(show("CNAME"), "site.example.org");
}
