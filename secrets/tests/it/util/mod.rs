//! Shared helpers for the integration tests: a temporary data dir and external tools that
//! must exist under CI=true.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use slipway_secrets::{RepoSlug, SecretStore};

/// A store in a fresh temporary data dir (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, SecretStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::new(dir.path().join("data"));
    (dir, store)
}

/// The repository most tests use.
pub fn repo() -> RepoSlug {
    RepoSlug::parse("octo/app").unwrap()
}

/// Whether `tool` can run. Without it the test is skipped with a message, unless CI=true, where
/// a missing tool fails the test (the test setup installs it).
pub fn require_tool(tool: &str, install_hint: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("`{tool}` is not installed and CI=true: {install_hint}");
    }
    eprintln!(
        "skipped: `{tool}` is not installed ({install_hint}; set CI=true to make this a failure)"
    );
    false
}

/// Runs a command and returns its stdout, failing the test with its stderr otherwise.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let output = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Every byte under `dir`, for "is this plaintext anywhere at rest?" checks.
pub fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_bytes_under(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}
