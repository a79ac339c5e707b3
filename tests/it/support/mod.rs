//! Helpers shared by the end-to-end tests of the `slipway` binary. Each test binary uses a part of
//! them, so the rest would be dead code in it.
#![allow(dead_code)]

pub mod sinks;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

/// A temporary git repository on branch `main` whose one commit holds `pipeline` as `file`
/// (`{busybox}` in it stands for the test image).
pub fn repo_with_pipeline(file: &str, pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(file),
        pipeline.replace("{busybox}", &busybox()),
    )
    .unwrap();
    commit_all(dir.path(), "pipeline");
    dir
}

/// Makes `dir` a git repository on branch `main` with everything in it as one commit.
pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", message]);
}

/// `slipway ARGS`, as a process.
pub fn slipway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .output()
        .unwrap()
}

/// A `slipway` command that runs as if on a machine of its own named `host`: a UTS namespace
/// whose hostname is `host`. A sweep spares what another host's runners own (it cannot tell
/// whether they still run), so what this process leaves when killed waits for the next `slipway`
/// on the same `host`, and no test running beside it sweeps it first.
pub fn slipway_on_host(host: &str) -> Command {
    let mut cmd = Command::new("unshare");
    if !is_root() {
        // Unprivileged, a user namespace is needed to own the UTS one.
        cmd.arg("--map-root-user");
    }
    cmd.args([
        "--uts",
        "--",
        "sh",
        "-c",
        r#"printf %s "$0" > /proc/sys/kernel/hostname && exec "$@""#,
        host,
        env!("CARGO_BIN_EXE_slipway"),
    ]);
    cmd
}

/// A host name no other test process uses ([`slipway_on_host`]).
pub fn own_host_name() -> String {
    format!("slipway-test-{}", std::process::id())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// `slipway run DIR ARGS` with S3 calls going to `s3_endpoint` (moto) whatever the caller's
/// environment says.
pub fn slipway_run_s3(dir: &Path, s3_endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir)
        .args(args)
        .env("SLIPWAY_S3_ENDPOINT", s3_endpoint)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .output()
        .unwrap()
}

/// Copies a directory tree as fresh, writable files (the shared material is read-only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

/// A process's stdout then stderr, for assertions and their messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails, showing the output, unless the process succeeded and its output holds every one of
/// `needles`; returns the output for what else the test checks.
#[track_caller]
pub fn succeeded(out: &Output, needles: &[&str]) -> String {
    let log = text(out);
    assert!(out.status.success(), "{log}");
    for needle in needles {
        assert!(log.contains(needle), "{needle:?} missing: {log}");
    }
    log
}

/// `slipway secrets encrypt NAME=VALUE --repo REPO` into the data directory `data`: the
/// ciphertext a pipeline puts under `secure:`.
pub fn encrypt(data: &Path, repo: &str, assignment: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "secrets",
            "encrypt",
            assignment,
            "--repo",
            repo,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    succeeded(&out, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .trim()
        .strip_prefix("secure: \"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("unexpected output of slipway secrets encrypt: {stdout}"))
        .to_string()
}

/// The listing of `bucket` on the S3 server at `s3` (moto), which must answer 200.
pub fn listing(s3: &str, bucket: &str) -> String {
    let (status, listing) = http("GET", s3, &format!("/{bucket}")).unwrap();
    assert_eq!(status, 200, "{listing}");
    listing
}

/// A bucket name no other test (nor an earlier run against the same moto) has used.
pub fn unique_bucket(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A new, empty bucket on the S3 server at `s3` (moto), named after `prefix`.
pub fn new_bucket(s3: &str, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    assert_eq!(
        http("PUT", s3, &format!("/{bucket}")).map(|r| r.0),
        Some(200),
        "creating bucket {bucket}"
    );
    bucket
}

/// `git ARGS` in `dir` with a fixed test identity; fails the test, with git's stderr, if it fails.
pub use slipway_webhook::testing::git;

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

/// The moto base URL and a new, empty bucket on it named after `prefix`, when moto and the engine
/// are there ([`moto_and_engine`]).
pub fn moto_bucket(prefix: &str) -> Option<(String, String)> {
    let moto = moto_and_engine()?;
    let bucket = new_bucket(&moto, prefix);
    Some((moto, bucket))
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

/// True when the engine has `image` (built by `scripts/test-images.sh`); otherwise skips (fails
/// under CI).
pub fn image_ready(image: &str) -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !ci(),
            "Docker engine or {image} missing (CI=true; scripts/test-images.sh)"
        );
        eprintln!("skipped: Docker engine or {image} missing (scripts/test-images.sh)");
    }
    ok
}

/// `library/python:3.12` in the test registry (`SLIPWAY_TEST_REGISTRY`) under a prefix of this
/// run's own, as a pull-through mirror holds it: the busybox image pushed there, then removed from
/// the engine, so a job's image of that name can only come from the mirror. Removed again when
/// dropped, whether the test passed or not.
pub struct MirroredImage {
    /// The mirror prefix (`--image-mirror`, `[images] mirror`).
    pub prefix: String,
    /// The mirrored image's full name.
    pub image: String,
}

impl MirroredImage {
    /// Pushes the image under `REGISTRY/NAME-PID-TIME`; `None` (skipped, or failing under
    /// CI=true) without a registry.
    pub fn push(name: &str) -> Option<Self> {
        let Some(registry) = std::env::var("SLIPWAY_TEST_REGISTRY")
            .ok()
            .filter(|r| http("GET", &format!("http://{r}"), "/v2/").is_some())
        else {
            assert!(!ci(), "no registry at $SLIPWAY_TEST_REGISTRY (CI=true)");
            eprintln!("skipped: no registry at $SLIPWAY_TEST_REGISTRY");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("{registry}/{name}-{}-{nanos:x}", std::process::id());
        let image = format!("{prefix}/library/python:3.12");
        let mirrored = MirroredImage { prefix, image };
        for args in [
            &["tag", &busybox(), &mirrored.image][..],
            &["push", &mirrored.image][..],
            &["rmi", &mirrored.image][..],
        ] {
            let out = Command::new("docker").args(args).output().unwrap();
            assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        }
        Some(mirrored)
    }
}

impl Drop for MirroredImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// A job in `image` that builds `site/index.html` and publishes it with a `pages` deploy on
/// master, the token being the `secure:` value `token` and the domain `fqdn`.
pub fn pages_pipeline(image: &str, token: &str, fqdn: &str) -> String {
    format!(
        r#"image: "{image}"
language: shell
script:
  - mkdir -p site && echo "<h1>built on $TRAVIS_BRANCH</h1>" > site/index.html
deploy:
  provider: pages
  github_token:
    secure: "{token}"
  local_dir: site
  fqdn: {fqdn}
  skip_cleanup: true
  on:
    branch: master
"#
    )
}

/// The "GitHub" a `pages` deploy pushes to: an empty bare repository `repo` (`acme/app`) under
/// `hosted`, served over HTTP and private to `token`; its path, and the server.
pub fn pages_host(
    hosted: &Path,
    repo: &str,
    token: &str,
) -> (
    std::path::PathBuf,
    slipway_webhook::testing::git_hosts::GitHttp,
) {
    let bare = hosted.join(format!("{repo}.git"));
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "master"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let host = slipway_webhook::testing::git_hosts::GitHttp::start(hosted);
    host.private(&format!("/{repo}.git"), token);
    (bare, host)
}

/// The script lines of a job that builds two release assets named after `name` (`dist/*`), which
/// [`assert_two_assets`] checks.
pub fn two_assets_script(name: &str) -> String {
    format!(
        r#"script:
  - mkdir -p dist
  - echo "{name} for linux $TRAVIS_TAG" > dist/{name}-linux.tar.gz
  - echo "{name} for windows" > dist/{name}-windows.zip
"#
    )
}

/// Fails unless `release` holds exactly the two assets [`two_assets_script`] built for `name` on
/// tag `tag`.
#[track_caller]
pub fn assert_two_assets(release: &slipway_webhook::testing::FakeRelease, name: &str, tag: &str) {
    let linux = format!("{name} for linux {tag}\n");
    let windows = format!("{name} for windows\n");
    assert_eq!(
        release.files(),
        [
            (format!("{name}-linux.tar.gz").as_str(), linux.as_bytes()),
            (format!("{name}-windows.zip").as_str(), windows.as_bytes()),
        ]
    );
}
