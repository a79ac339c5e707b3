//! Test harness: a server on loopback, signed deliveries, a stand-in for GitHub's API that
//! records statuses and can fail for a while, and throwaway git repositories.
#![allow(dead_code)]

pub mod browser;

use serde_json::Value;
use slipway_webhook::job_runner::JobRunner;
use slipway_webhook::testing::git_hosts::Trickle;
pub use slipway_webhook::testing::*;
use slipway_webhook::{Config, Server};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SECRET: &str = "test-webhook-secret-5a9e";

/// `../shared` beside the workspace (or `$SLIPWAY_SHARED`); `None` (with a message) when absent
/// outside CI, a failure under `CI=true`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("fixtures/github").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the shared fixtures are missing at {} (CI=true)",
            dir.display()
        );
    }
    eprintln!("skipped: shared fixtures not found at {}", dir.display());
    None
}

/// A runtime plus a server started on it.
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<Server>,
    pub data: PathBuf,
}

impl Harness {
    pub fn start(data: &Path, config: Config, jobs: Arc<dyn JobRunner>) -> Harness {
        let rt = server_runtime();
        let server = rt
            .block_on(slipway_webhook::start(config, data.to_path_buf(), jobs))
            .unwrap();
        Harness {
            rt,
            server: Some(server),
            data: data.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.as_ref().unwrap().addr)
    }

    pub fn stop(mut self) {
        let server = self.server.take().unwrap();
        self.rt.block_on(server.shutdown());
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http("GET", &format!("{}{path}", self.url()), &[], b"")
    }

    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn deliver(&self, event: &str, id: &str, body: &[u8]) -> (u16, String) {
        deliver(&self.url(), SECRET, event, id, body)
    }

    /// Waits until build `id` is final; returns the API's view of it.
    pub fn wait_final(&self, id: i64, secs: u64) -> Value {
        wait_final(&self.url(), id, secs, String::new)
    }
}

/// A push to `acme/app`'s master at `sha`, cloned from `clone_url`.
pub fn push_spec(clone_url: &str, sha: &str) -> slipway_webhook::event::NewBuild {
    slipway_webhook::event::NewBuild {
        repo: "acme/app".into(),
        clone_url: clone_url.into(),
        head_sha: sha.into(),
        head_ref: "refs/heads/master".into(),
        base_ref: None,
        supersede_key: None,
        context: slipway_pipelines::plan::Context::default(),
        author: None,
    }
}

pub fn config(github_api: Option<&str>) -> Config {
    let mut c = Config::parse(&format!(
        "listen = \"127.0.0.1:0\"\nwebhook_secret = \"{SECRET}\"\nlease_seconds = 2\n"
    ))
    .unwrap();
    if let Some(api) = github_api {
        c.github.api_url = api.to_string();
        c.github.token = Some("test-token".into());
        c.github.max_backoff_seconds = 1;
    }
    c.api_tokens = vec!["ui-token".into()];
    c
}

/// When the fetch of connection `n` was seen closed, waiting up to `secs` seconds for it.
pub fn fetch_closed(trickle: &Trickle, n: usize, secs: u64) -> Instant {
    let mut closed = None;
    wait_for("the fetch to stop", secs, || {
        closed = trickle.connections().get(n).and_then(|c| c.1);
        closed.is_some()
    });
    closed.unwrap()
}

/// The moment `ms` (epoch milliseconds) as an [`Instant`].
pub fn instant_of(ms: i64) -> Instant {
    let (now, from_now) = (Instant::now(), ms - slipway_webhook::store::now_ms());
    match from_now >= 0 {
        true => now + Duration::from_millis(from_now as u64),
        false => now - Duration::from_millis(from_now.unsigned_abs()),
    }
}
