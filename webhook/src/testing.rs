//! Support for tests of this crate and of the `slipway` binary: signed deliveries, a stand-in
//! for GitHub's REST API that records requests and can fail for a while, throwaway git
//! repositories, and read-only looks into a server's database. Loopback only.
#![allow(missing_docs)]

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Signs and posts a delivery; returns status and body.
pub fn deliver(base: &str, secret: &str, event: &str, id: &str, body: &[u8]) -> (u16, String) {
    let sig = crate::signature::sign(secret.as_bytes(), body);
    http(
        "POST",
        &format!("{base}/webhooks/github"),
        &[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", id),
            ("X-Hub-Signature-256", &sig),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(body.to_vec()).unwrap();
    let mut resp = agent.run(req).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

/// A request GitHub's stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub body: Value,
    pub answered: u16,
}

/// A stand-in for GitHub's REST API: records every request and answers 201, or a configured
/// failure status for the next N requests.
#[derive(Clone, Default)]
pub struct FakeGitHub {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    fail_left: Arc<AtomicUsize>,
    fail_status: Arc<AtomicUsize>,
}

impl FakeGitHub {
    /// Starts on `rt`; returns its base URL.
    pub fn start(&self, rt: &tokio::runtime::Runtime) -> String {
        let me = self.clone();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(handle).with_state(me);
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// The next `n` requests are answered with `status`.
    pub fn fail(&self, n: usize, status: u16) {
        self.fail_status.store(status as usize, Ordering::SeqCst);
        self.fail_left.store(n, Ordering::SeqCst);
    }

    /// Statuses successfully recorded, as (sha, state, target_url, description).
    pub fn statuses(&self) -> Vec<(String, String, String, String)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.answered == 201 && r.path.contains("/statuses/"))
            .map(|r| {
                (
                    r.path.rsplit('/').next().unwrap().to_string(),
                    r.body["state"].as_str().unwrap_or("").to_string(),
                    r.body["target_url"].as_str().unwrap_or("").to_string(),
                    r.body["description"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

async fn handle(
    State(gh): State<FakeGitHub>,
    uri: Uri,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let failing = gh
        .fail_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        gh.fail_status.load(Ordering::SeqCst) as u16
    } else {
        201
    };
    gh.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered: status,
    });
    let code = StatusCode::from_u16(status).unwrap();
    if failing {
        (
            code,
            [("retry-after", "0")],
            r#"{"message":"unavailable"}"#.to_string(),
        )
    } else {
        (
            code,
            [("retry-after", "0")],
            r#"{"id":1,"state":"pending","context":"slipway","url":"","creator":null}"#.to_string(),
        )
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare "GitHub" repository with `master` holding `pipeline` as `.travis.yml`, plus a work
/// tree to make more commits from.
pub struct Origin {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Origin {
    pub fn new(root: &Path, pipeline: &str) -> Origin {
        let bare = root.join("origin.git");
        let work = root.join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            root,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "master",
                bare.to_str().unwrap(),
            ],
        );
        git(&work, &["init", "-q", "-b", "master"]);
        std::fs::write(work.join(".travis.yml"), pipeline).unwrap();
        std::fs::write(work.join("README"), "one\ntwo\nthree\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "initial"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        git(&work, &["push", "-q", "origin", "master"]);
        Origin { bare, work }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commits `file` = `text` on a new branch from `from`, pushes it as `refs/pull/N/head`;
    /// returns the head SHA.
    pub fn pull_request(&self, n: u64, from: &str, file: &str, text: &str) -> String {
        git(
            &self.work,
            &["checkout", "-q", "-B", &format!("pr{n}"), from],
        );
        std::fs::write(self.work.join(file), text).unwrap();
        git(&self.work, &["add", "."]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("change {file}")],
        );
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("HEAD:refs/pull/{n}/head"),
            ],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Commits `file` = `text` on master and pushes; returns the SHA.
    pub fn push_master(&self, file: &str, text: &str) -> String {
        git(&self.work, &["checkout", "-q", "master"]);
        std::fs::write(self.work.join(file), text).unwrap();
        git(&self.work, &["add", "."]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("master changes {file}")],
        );
        git(&self.work, &["push", "-q", "origin", "master"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

pub fn pr_payload(
    repo: &str,
    clone_url: &str,
    action: &str,
    n: u64,
    head: &str,
    base_sha: &str,
) -> Vec<u8> {
    serde_json::json!({
        "action": action, "number": n, "sender": {"login": "dev"},
        "repository": {"full_name": repo, "clone_url": clone_url},
        "pull_request": {"title": "A change", "body": null,
            "head": {"ref": format!("pr{n}"), "sha": head, "repo": {"full_name": repo, "clone_url": clone_url}},
            "base": {"ref": "master", "sha": base_sha, "repo": {"full_name": repo, "clone_url": clone_url}}}
    })
    .to_string()
    .into_bytes()
}

pub fn push_payload(repo: &str, clone_url: &str, git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": git_ref, "before": "0".repeat(40), "after": after, "deleted": false,
        "head_commit": {"message": "a push"}, "sender": {"login": "dev"},
        "repository": {"full_name": repo, "clone_url": clone_url}
    })
    .to_string()
    .into_bytes()
}

/// Opens the server's database read-only, for assertions on what was stored.
pub fn db(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        data.join("slipway.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

pub fn count(data: &Path, sql: &str) -> i64 {
    db(data).query_row(sql, [], |r| r.get(0)).unwrap()
}
