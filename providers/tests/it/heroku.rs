//! `provider: heroku` against a request-checking stand-in for Heroku's Platform API and its blob
//! store (no Heroku can run here). The stand-in checks every request as Heroku does — API version
//! 3, the bearer key, the app — and more: the pre-signed blob URL must not get the API key, the
//! uploaded tarball must be the build dir without `.git`, and the build must name that blob and
//! the commit.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;
use slipway_providers::testing::heroku::{Heroku, KEY, start};

const SHA: &str = "c0ffee1234567890c0ffee1234567890c0ffee12";

fn heroku() -> (StandIn, Arc<Mutex<Heroku>>) {
    start(SHA)
}

fn app_tree() -> tempfile::TempDir {
    let dir = tree(&[
        ("Procfile", "web: bundle exec ruby app.rb"),
        ("app.rb", "puts :hi"),
        (".git/config", "[core]"),
        ("lib/.keep", ""),
    ]);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
    dir
}

fn run(ctx: &DeployContext, options: Value) -> (Outcome, Vec<String>) {
    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&deploy("heroku", options), ctx, &log));
    (out, log.lines())
}

fn ctx(dir: &std::path::Path, api: &str) -> DeployContext {
    let mut c = context(dir);
    c.repo = "travis-ci/travis-chat".into();
    c.commit = SHA.into();
    c.endpoints.heroku = Some(api.into());
    c
}

#[test]
fn the_build_dir_is_built_on_heroku_and_run_commands_start_dynos() {
    let (standin, state) = heroku();
    let dir = app_tree();
    // travis-chat's own deploy: the app is the repository's name; `run` after the build.
    let (out, log) = run(
        &ctx(dir.path(), &standin.url),
        json!({"api_key": KEY, "run": "rake hello"}),
    );
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?}\n{log:#?}")
    };
    assert_eq!(summary, "build b1 of travis-chat succeeded");
    let s = state.lock().unwrap();
    assert!(s.problems.is_empty(), "{:#?}", s.problems);
    assert_eq!(
        s.uploaded,
        [
            "Procfile: web: bundle exec ruby app.rb",
            "app.rb: puts :hi",
            "lib/.keep: ",
            "lib: ",
            "passwd: -> /etc/passwd",
        ]
    );
    assert_eq!(s.dynos, ["rake hello"]);
    let text = log.join("\n");
    assert!(
        text.contains("authenticated as dev@example.org (the api_key option)"),
        "{text}"
    );
    assert!(text.contains("-----> Launching... done, v7"), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert_eq!(
        standin.actions(),
        [
            "GET /account",
            "POST /apps/travis-chat/sources",
            "PUT /blobs/1",
            "POST /apps/travis-chat/builds",
            // Pending, then succeeded.
            "GET /apps/travis-chat/builds/b1",
            "GET /apps/travis-chat/builds/b1",
            "GET /streams/b1",
            "POST /apps/travis-chat/dynos",
        ]
    );
}

#[test]
fn a_failed_build_an_unknown_app_and_a_wrong_key_fail_in_one_line() {
    let (standin, _) = heroku();
    let dir = app_tree();
    let c = ctx(dir.path(), &standin.url);
    let (out, log) = run(&c, json!({"api_key": KEY, "app": "broken-app"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(e.one_line(), "heroku: build b1 of broken-app failed");
    assert!(log.join("\n").contains("Ruby app detected"), "{log:#?}");

    let (out, _) = run(&c, json!({"api_key": KEY, "app": {"master": "nope-app"}}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "heroku: POST /apps/nope-app/sources failed: HTTP 404: not_found: Couldn't find that app."
    );

    let (out, log) = run(&c, json!({"api_key": "wrong-key-7"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "heroku: GET /account failed: HTTP 401: unauthorized: Invalid credentials provided."
    );
    assert!(!e.one_line().contains("wrong-key-7") && !log.join("\n").contains("wrong-key-7"));

    let before = standin.requests().len();
    for (options, message) in [
        (
            json!({"api_key": KEY, "strategy": "git"}),
            "heroku: option `strategy`: `git`: Slipway deploys to Heroku with the Platform API (strategy: api), which builds from a source tarball",
        ),
        (
            json!({"api_key": KEY, "app": "Bad_App"}),
            "heroku: option `app`: `Bad_App` is not a Heroku app name (lower-case letters, digits and dashes)",
        ),
        (json!({}), "heroku: option `api_key`: is required (secure)"),
    ] {
        let (out, _) = run(&c, options);
        let Outcome::Failed(e) = out else {
            panic!("{out:?}")
        };
        assert_eq!(e.one_line(), message);
    }
    assert_eq!(standin.requests().len(), before);
}
