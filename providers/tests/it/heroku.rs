//! `provider: heroku` against a request-checking stand-in for Heroku's Platform API and its blob
//! store (no Heroku can run here). The stand-in checks every request as Heroku does — API version
//! 3, the bearer key, the app — and more: the pre-signed blob URL must not get the API key, the
//! uploaded tarball must be the build dir without `.git`, and the build must name that blob and
//! the commit.

use std::io::Read;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;

const KEY: &str = "heroku-key-3c9a71";
const SHA: &str = "c0ffee1234567890c0ffee1234567890c0ffee12";

#[derive(Default)]
struct Heroku {
    /// Paths of the uploaded tarball's entries.
    uploaded: Vec<String>,
    polls: usize,
    dynos: Vec<String>,
    problems: Vec<String>,
}

fn entries(gz: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for e in archive.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let path = e.path().map_err(|e| e.to_string())?.display().to_string();
        let mut content = String::new();
        if e.header().entry_type().is_symlink() {
            let target = e
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.display().to_string());
            content = format!("-> {}", target.unwrap_or_default());
        } else {
            let _ = e.read_to_string(&mut content);
        }
        out.push(format!("{path}: {}", content.trim()));
    }
    out.sort();
    Ok(out)
}

fn answer(req: &Request, s: &mut Heroku) -> Result<Value, (u16, Value)> {
    let host = req.header("host").unwrap_or_default();
    let path = req.path.as_str();
    if let Some(blob) = path.strip_prefix("/blobs/") {
        if req.header("authorization").is_some() {
            return Err((
                400,
                json!({"message": "the blob store got an Authorization header"}),
            ));
        }
        if req.method != "PUT" || blob != "1" || req.query != "sig=put" {
            return Err((403, json!({"message": "SignatureDoesNotMatch"})));
        }
        s.uploaded = entries(&req.body).map_err(|e| (400, json!({"message": e})))?;
        return Ok(Value::Null);
    }
    if path == "/streams/b1" {
        return Ok(json!(
            "-----> Ruby app detected\n-----> Launching... done, v7"
        ));
    }
    if req.header("accept").as_deref() != Some("application/vnd.heroku+json; version=3") {
        return Err((
            400,
            json!({"id": "bad_request", "message": "Please specify a version"}),
        ));
    }
    if req.header("authorization").as_deref() != Some(&format!("Bearer {KEY}")) {
        return Err((
            401,
            json!({"id": "unauthorized", "message": "Invalid credentials provided."}),
        ));
    }
    if path == "/account" {
        return Ok(json!({"email": "dev@example.org", "id": "u1"}));
    }
    let app = path
        .strip_prefix("/apps/")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    if app != "travis-chat" && app != "broken-app" {
        return Err((
            404,
            json!({"id": "not_found", "message": "Couldn't find that app."}),
        ));
    }
    let rest = &path[6 + app.len()..];
    match (req.method.as_str(), rest) {
        ("POST", "/sources") => Ok(json!({"source_blob": {
            "get_url": format!("http://{host}/blobs/1?sig=get"),
            "put_url": format!("http://{host}/blobs/1?sig=put")}})),
        ("POST", "/builds") => {
            let body = req.json();
            if body["source_blob"]["url"] != format!("http://{host}/blobs/1?sig=get")
                || body["source_blob"]["version"] != SHA
                || s.uploaded.is_empty()
            {
                return Err((
                    422,
                    json!({"id": "invalid_params", "message": format!("build of {body}")}),
                ));
            }
            Ok(json!({"id": "b1", "status": "pending",
                      "output_stream_url": format!("http://{host}/streams/b1")}))
        }
        ("GET", "/builds/b1") => {
            s.polls += 1;
            let status = match (s.polls, app) {
                (1, _) => "pending",
                (_, "broken-app") => "failed",
                _ => "succeeded",
            };
            Ok(json!({"id": "b1", "status": status,
                      "output_stream_url": format!("http://{host}/streams/b1")}))
        }
        ("POST", "/dynos") => {
            let body = req.json();
            if body["attach"] != false || !body["command"].is_string() {
                return Err((422, json!({"message": format!("dyno {body}")})));
            }
            s.dynos.push(body["command"].as_str().unwrap().to_owned());
            Ok(json!({"name": "run.4217"}))
        }
        _ => Err((404, json!({"id": "not_found", "message": path}))),
    }
}

fn heroku() -> (StandIn, Arc<Mutex<Heroku>>) {
    let state = Arc::new(Mutex::new(Heroku::default()));
    let s = state.clone();
    let standin = StandIn::start(move |req| {
        let mut s = s.lock().unwrap();
        match answer(req, &mut s) {
            Ok(Value::String(text)) => Reply::Respond {
                status: 200,
                content_type: "text/plain",
                body: text,
            },
            Ok(body) => Reply::json(if body.is_null() { 200 } else { 201 }, body),
            Err((status, body)) => {
                s.problems
                    .push(format!("{} {}: {body}", req.method, req.path));
                Reply::json(status, body)
            }
        }
    });
    (standin, state)
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
