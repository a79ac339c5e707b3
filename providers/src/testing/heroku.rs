//! A request-checking stand-in for Heroku's Platform API and its blob store (no Heroku can run
//! here). It checks every request as Heroku does — API version 3, the bearer key, the app — and
//! more: the pre-signed blob URL must not get the API key, the uploaded tarball must be the build
//! dir without `.git`, and the build must name that blob and the commit.

use std::io::Read;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{Reply, Request, StandIn};

/// The API key the stand-in accepts.
pub const KEY: &str = "heroku-key-3c9a71";

/// What the stand-in saw and answered.
#[derive(Default)]
pub struct Heroku {
    /// The commit builds must name.
    pub commit: String,
    /// Paths of the uploaded tarball's entries (`path: content`, links as `-> target`).
    pub uploaded: Vec<String>,
    /// Build status polls so far.
    pub polls: usize,
    /// Commands of the one-off dynos started.
    pub dynos: Vec<String>,
    /// Why each refused request was refused.
    pub problems: Vec<String>,
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
                || body["source_blob"]["version"] != s.commit.as_str()
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

/// Starts the API and blob store; builds must name `commit`. Apps: `travis-chat` (its build is
/// pending once, then succeeds) and `broken-app` (fails).
pub fn start(commit: &str) -> (StandIn, Arc<Mutex<Heroku>>) {
    let state = Arc::new(Mutex::new(Heroku {
        commit: commit.to_owned(),
        ..Heroku::default()
    }));
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
