//! Helpers shared by the end-to-end tests of the `slipway` binary. Each test binary uses a part of
//! them, so the rest would be dead code in it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// The moto base URL, when moto and the engine are there; otherwise skips (fails under CI).
pub fn moto_and_engine() -> Option<String> {
    let engine = Command::new("docker")
        .args(["image", "inspect", &busybox()])
        .output()
        .is_ok_and(|o| o.status.success());
    let moto = std::env::var("SLIPWAY_TEST_MOTO")
        .ok()
        .filter(|u| http("GET", u, "/moto-api/").is_some());
    match (engine, moto) {
        (true, Some(url)) => Some(url.trim_end_matches('/').to_string()),
        _ => {
            assert!(
                !ci(),
                "Docker with {} and moto at $SLIPWAY_TEST_MOTO are needed (CI=true); run scripts/services.sh start",
                busybox()
            );
            eprintln!(
                "skipped: Docker with {} or moto ($SLIPWAY_TEST_MOTO) missing",
                busybox()
            );
            None
        }
    }
}

/// One plain HTTP/1.1 request to a loopback server; the status code and body.
pub fn http(method: &str, base: &str, path: &str) -> Option<(u16, String)> {
    let host = base.strip_prefix("http://")?.trim_end_matches('/');
    let mut s = TcpStream::connect(host).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}
