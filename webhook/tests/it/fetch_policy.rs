//! What every fetch is held to, through the mirrors' own transports: git over smart HTTP with a
//! token only for the exact URL, the size limit, the time limit against a server that trickles
//! bytes, a cancel within a tick, and refused addresses, for the mirror's fetch and submodules.

use crate::util::*;
use slipway_pipelines::plan::Git;
use slipway_webhook::git::{FetchPolicy, Mirrors, NoTokens, Remote};
use slipway_webhook::testing::git_hosts::{GitHttp, Trickle};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/app";

fn loopback_allowed(timeout: Duration, max_bytes: u64) -> FetchPolicy {
    FetchPolicy {
        timeout,
        max_bytes,
        allow: vec!["127.0.0.1".parse().unwrap()],
    }
}

/// `srv/acme/origin.git` served by a [`GitHttp`], the origin's work tree, and the host.
fn served(root: &Path) -> (Origin, GitHttp) {
    let origin = Origin::new(&root.join("srv/acme"), "script: true\n");
    (origin, GitHttp::start(&root.join("srv")))
}

/// Commits a gitlink `name` at `commit` whose `.gitmodules` URL is `url`.
fn add_submodule(work: &Path, name: &str, url: &str, commit: &str) -> String {
    std::fs::write(
        work.join(".gitmodules"),
        format!("[submodule \"{name}\"]\n\tpath = {name}\n\turl = {url}\n"),
    )
    .unwrap();
    git(work, &["add", ".gitmodules"]);
    let info = format!("160000,{commit},{name}");
    git(work, &["update-index", "--add", "--cacheinfo", &info]);
    git(work, &["commit", "-q", "-m", "submodule"]);
    git(work, &["push", "-q", "origin", "HEAD:master"]);
    git(work, &["rev-parse", "HEAD"])
}

/// The error of preparing a push of `sha` fetched from `url` with no token.
fn refused(mirrors: &Mirrors, url: &str, sha: &str) -> String {
    mirrors
        .prepare(
            1,
            &push_spec(url, sha),
            url,
            None,
            &CancellationToken::new(),
        )
        .unwrap_err()
        .to_string()
}

#[test]
fn a_private_repository_is_fetched_over_smart_http_with_its_token_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, host) = served(tmp.path());
    host.private("/acme/origin.git", "t0k3n");
    let url = format!("{}/acme/origin.git", host.url);
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let policy = loopback_allowed(Duration::from_secs(30), 1 << 30);
    let mirrors = Mirrors::new(tmp.path().join("mirrors")).with_policy(policy.clone());
    let never = CancellationToken::new();
    let src = mirrors
        .prepare(1, &push_spec(&url, &sha), &url, Some("t0k3n"), &never)
        .unwrap();
    assert_eq!(src.commit, sha);
    assert!(src.pipeline.is_some());
    assert!(host.requests().iter().all(|r| r.authorization.is_some()));

    // The same token offered for another URL of the host is not sent.
    let other = Mirrors::new(tmp.path().join("mirrors2")).with_policy(policy);
    let err = refused(&other, &url, &sha);
    assert!(
        err.contains("HTTP 401") && err.contains("no credentials are sent to this URL"),
        "{err}"
    );
}

#[test]
fn a_fetch_over_the_size_limit_stops_naming_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, host) = served(tmp.path());
    // 3 MiB that do not compress.
    let mut noise = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while noise.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(origin.work.join("noise.bin"), noise).unwrap();
    git(&origin.work, &["add", "."]);
    git(&origin.work, &["commit", "-q", "-m", "noise"]);
    git(&origin.work, &["push", "-q", "origin", "master"]);
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let url = format!("{}/acme/origin.git", host.url);
    let mirrors = Mirrors::new(tmp.path().join("mirrors"))
        .with_policy(loopback_allowed(Duration::from_secs(30), 1 << 20));
    let err = refused(&mirrors, &url, &sha);
    assert_eq!(
        err,
        "the fetch downloaded more than 1 MB ([git] max_fetch_mb)"
    );
}

#[test]
fn the_mirrors_fetch_from_a_loopback_address_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, host) = served(tmp.path());
    let url = format!("{}/acme/origin.git", host.url);
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let mirrors = Mirrors::new(tmp.path().join("mirrors"));
    let err = refused(&mirrors, &url, &sha);
    assert_eq!(
        err,
        "refused to connect to 127.0.0.1 (127.0.0.1): it is a loopback address; list it in [git] allow to fetch from it"
    );
    assert!(host.requests().is_empty());
}

/// A workspace of `origin` (a file URL) whose submodule `lib` is at `url`, checked out under
/// `policy`, canceled after `cancel_after` if given; the error and how long it took.
fn submodule_checkout(
    root: &Path,
    url: &str,
    policy: FetchPolicy,
    cancel_after: Option<Duration>,
) -> (String, Duration) {
    let origin = Origin::new(root, "script: true\n");
    let first = git(&origin.work, &["rev-parse", "master"]);
    let sha = add_submodule(&origin.work, "lib", url, &first);
    let mirrors = Mirrors::new(root.join("mirrors")).with_policy(policy);
    let cancel = CancellationToken::new();
    let src = mirrors
        .prepare(
            1,
            &push_spec(&origin.url(), &sha),
            &origin.url(),
            None,
            &cancel,
        )
        .unwrap();
    if let Some(after) = cancel_after {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            cancel.cancel();
        });
    }
    let started = Instant::now();
    let remote = Remote {
        url: &origin.url(),
        token: Some("never-sent"),
        served: &NoTokens,
    };
    let err = mirrors
        .checkout(
            REPO,
            &src.commit,
            &root.join("ws"),
            &Git::default(),
            remote,
            &cancel,
        )
        .unwrap_err()
        .to_string();
    (err, started.elapsed())
}

#[test]
fn a_submodule_server_that_trickles_is_stopped_at_the_time_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let trickle = Trickle::start(Duration::from_millis(50));
    let url = format!("http://{}/acme/lib.git", trickle.addr);
    let policy = loopback_allowed(Duration::from_secs(2), 1 << 30);
    let (err, took) = submodule_checkout(tmp.path(), &url, policy, None);
    assert_eq!(
        err,
        format!(
            "submodule lib: {url}: the fetch took longer than 2 s ([git] fetch_timeout_seconds)"
        )
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_cancel_stops_a_submodule_fetch_within_a_tick() {
    let tmp = tempfile::tempdir().unwrap();
    let trickle = Trickle::start(Duration::from_millis(50));
    let url = format!("http://{}/acme/lib.git", trickle.addr);
    let policy = loopback_allowed(Duration::from_secs(600), 1 << 30);
    let (err, took) =
        submodule_checkout(tmp.path(), &url, policy, Some(Duration::from_millis(500)));
    assert_eq!(err, format!("submodule lib: {url}: the fetch was canceled"));
    assert!(took < Duration::from_millis(1500), "{took:?}");
}
