//! Helpers shared by the end-to-end tests of the `slipway` binary. Each test binary uses a part of
//! them, so the rest would be dead code in it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `git -C dir ARGS` with a fixed test identity and fails the test, with git's stderr, if it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Under CI=true a missing engine, image or service fails the test instead of skipping it.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The smallest test image with `sh` (built by `scripts/test-images.sh`).
pub fn busybox() -> String {
    std::env::var("SLIPWAY_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "slipway-test/busybox:latest".into())
}

/// True when the engine and the busybox image are there; otherwise skips (fails under CI).
pub fn engine_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", &busybox()])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!ci(), "Docker engine or {} missing (CI=true)", busybox());
        eprintln!("skipped: Docker engine or {} missing", busybox());
    }
    ok
}
