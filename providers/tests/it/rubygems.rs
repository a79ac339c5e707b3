//! `provider: rubygems` against a request-checking stand-in for rubygems.org's push API (no gem
//! host can run here): `POST /api/v1/gems` with the key as `Authorization`, the gem as an octet
//! stream whose `metadata.gz` names it, a version pushed once; `GET /api/v1/api_key` with the
//! account's Basic credentials gives the key.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;

const KEY: &str = "rubygems_key_91d2";

/// A `.gem`: a tar holding `metadata.gz` (the gemspec as YAML, gzipped) and `data.tar.gz`.
fn gem_bytes(name: &str, version: &str) -> Vec<u8> {
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let metadata = gz(format!(
        "--- !ruby/object:Gem::Specification\nname: {name}\nversion: !ruby/object:Gem::Version\n  version: {version}\nplatform: ruby\n"
    )
    .as_bytes());
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in [("metadata.gz", metadata), ("data.tar.gz", gz(b""))] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap()
}

/// Name and version from a pushed gem's `metadata.gz`.
fn spec_of(gem: &[u8]) -> Option<(String, String)> {
    let mut archive = tar::Archive::new(gem);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        if entry.path().ok()?.to_str()? != "metadata.gz" {
            continue;
        }
        let mut yaml = String::new();
        flate2::read::GzDecoder::new(entry)
            .read_to_string(&mut yaml)
            .ok()?;
        let name = yaml
            .lines()
            .find_map(|l| l.strip_prefix("name: "))?
            .to_owned();
        let version = yaml
            .lines()
            .find_map(|l| l.strip_prefix("  version: "))?
            .to_owned();
        return Some((name, version));
    }
    None
}

/// Gems pushed (name, version), and every refused request's reason.
type Pushed = Arc<Mutex<(Vec<(String, String)>, Vec<String>)>>;

fn host() -> (StandIn, Pushed) {
    let state = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let s = state.clone();
    let standin = StandIn::start(move |req| {
        let mut s = s.lock().unwrap();
        let text = |status: u16, body: &str| Reply::Respond {
            status,
            content_type: "text/plain",
            body: body.to_owned(),
        };
        if req.path == "/api/v1/api_key" {
            // "octo:hunter2-gems" in Basic.
            return if req.header("authorization").as_deref()
                == Some("Basic b2N0bzpodW50ZXIyLWdlbXM=")
            {
                text(200, KEY)
            } else {
                s.1.push("api_key without the account's credentials".into());
                text(401, "HTTP Basic: Access denied.")
            };
        }
        if req.method != "POST" || req.path != "/api/v1/gems" {
            s.1.push(format!("{} {}", req.method, req.path));
            return text(404, "Not Found");
        }
        if req.header("authorization").as_deref() != Some(KEY) {
            s.1.push("a push without the key".into());
            return text(
                401,
                "Access Denied. Please sign up for an account at https://rubygems.org",
            );
        }
        if req.header("content-type").as_deref() != Some("application/octet-stream") {
            s.1.push(format!("content type {:?}", req.header("content-type")));
            return text(415, "Unsupported Media Type");
        }
        let Some((name, version)) = spec_of(&req.body) else {
            s.1.push("not a gem".into());
            return text(422, "RubyGems.org cannot process this gem.");
        };
        if s.0.contains(&(name.clone(), version.clone())) {
            return text(409, "Repushing of gem versions is not allowed.");
        }
        s.0.push((name.clone(), version.clone()));
        text(
            200,
            &format!("Successfully registered gem: {name} ({version})"),
        )
    });
    (standin, state)
}

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
