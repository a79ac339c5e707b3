//! `provider: rubygems` against a request-checking stand-in for the gem host push API (no gem
//! host can run here): `POST /api/v1/gems` with the key as `Authorization`, the gem as an octet
//! stream whose `metadata.gz` names it, a version pushed once; `GET /api/v1/api_key` with the
//! account's Basic credentials gives the key.

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;
use slipway_providers::testing::rubygems::{KEY, gem_bytes, start as host};

fn run(ctx: &DeployContext, options: Value) -> (Outcome, Vec<String>) {
    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&deploy("rubygems", options), ctx, &log));
    (out, log.lines())
}

fn built(gems: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tree(&[("faraday.gemspec", "Gem::Specification.new")]);
    for (name, version) in gems {
        std::fs::write(
            dir.path().join(format!("{name}-{version}.gem")),
            gem_bytes(name, version),
        )
        .unwrap();
    }
    dir
}

#[test]
fn the_built_gem_is_pushed_once_with_the_key() {
    let (standin, state) = host();
    // faraday's own deploy: `gem: faraday`, the key secure.
    let dir = built(&[("faraday", "2.7.4"), ("faraday-retry", "1.0.0")]);
    let ctx = context(dir.path());
    let options = json!({"api_key": KEY, "gem": "faraday", "host": standin.url});
    let (out, log) = run(&ctx, options.clone());
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?}\n{log:#?}")
    };
    // `faraday-*.gem` also matches the faraday-retry gem, as dpl's glob does.
    assert_eq!(summary, format!("pushed 2 gem(s) to {}", standin.url));
    assert!(
        log.join("\n")
            .contains("Successfully registered gem: faraday (2.7.4)")
    );
    {
        let s = state.lock().unwrap();
        assert!(s.1.is_empty(), "{:#?}", s.1);
        assert_eq!(s.0.len(), 2);
    }
    let (out, _) = run(&ctx, options);
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "rubygems: push of faraday-2.7.4.gem failed: HTTP 409: Repushing of gem versions is not allowed."
    );
}

#[test]
fn username_and_password_fetch_the_key_and_wrong_or_missing_ones_fail() {
    let (standin, state) = host();
    let dir = built(&[("faraday", "2.8.0")]);
    let ctx = context(dir.path());
    let (out, log) = run(
        &ctx,
        json!({"user": "octo", "password": "hunter2-gems", "gem": "faraday", "host": standin.url}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(
        standin.actions(),
        ["GET /api/v1/api_key", "POST /api/v1/gems"]
    );
    let (out, log) = run(
        &ctx,
        json!({"user": "octo", "password": "wrong-9", "gem": "faraday", "host": standin.url}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "rubygems: GET /api/v1/api_key failed: HTTP 401: HTTP Basic: Access denied."
    );
    assert!(!log.join("\n").contains("wrong-9"));
    assert_eq!(state.lock().unwrap().0.len(), 1);

    let before = standin.requests().len();
    let (out, _) = run(&ctx, json!({"gem": "faraday", "host": standin.url}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "rubygems: option `api_key`: is required (secure), or username and password"
    );
    let (out, _) = run(
        &ctx,
        json!({"api_key": KEY, "gem": "nokogiri", "host": standin.url}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "rubygems: no nokogiri-*.gem in the build dir after `gem build nokogiri.gemspec`"
    );
    assert_eq!(standin.requests().len(), before);
}

#[test]
fn the_job_step_builds_each_gemspec() {
    let opts = |v: Value| v.as_object().unwrap().clone().into_iter().collect();
    assert_eq!(
        slipway_providers::rubygems::job_step(&opts(json!({"gem": "faraday"}))),
        "for slipway_gemspec in 'faraday.gemspec'; do echo \"rubygems: gem build $slipway_gemspec\"; gem build \"$slipway_gemspec\" || exit 1; done"
    );
    assert!(
        slipway_providers::rubygems::job_step(&opts(json!({"gemspec_glob": "*.gemspec"})))
            .starts_with("for slipway_gemspec in *.gemspec; do")
    );
}
