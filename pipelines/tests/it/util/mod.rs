//! Shared helpers for the integration tests: where the shared corpus is, and planning contexts.

#![allow(dead_code)]

pub mod matrix;

use std::path::PathBuf;

use slipway_pipelines::plan::{Context, EventType};

/// The shared directory (`$SLIPWAY_SHARED`, else `../shared` next to the workspace), or `None`
/// after printing why when it is absent; with `CI=true` a missing corpus fails the test.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("corpus").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true but the shared corpus is missing at {}",
            dir.display()
        );
    }
    eprintln!(
        "skipped: shared corpus not found at {} (set SLIPWAY_SHARED)",
        dir.display()
    );
    None
}

/// A push to `branch`.
pub fn push(branch: &str) -> Context {
    Context {
        event: EventType::Push,
        branch: branch.to_owned(),
        repo: "owner/repo".to_owned(),
        sender: "someone".to_owned(),
        commit_message: "a commit".to_owned(),
        ..Context::default()
    }
}

/// A pull request into `base`.
pub fn pull_request(base: &str) -> Context {
    Context {
        event: EventType::PullRequest,
        pull_request: Some(7),
        head_repo: Some("contributor/repo".to_owned()),
        head_branch: Some("feature-x".to_owned()),
        ..push(base)
    }
}

/// A push of tag `tag`.
pub fn tag(tag: &str) -> Context {
    Context {
        tag: Some(tag.to_owned()),
        ..push(tag)
    }
}
