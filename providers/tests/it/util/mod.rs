//! Test harness: a local AWS double (moto), an HTTP stand-in that records requests and answers
//! like the real service (or forwards to moto), the course files, and deploy contexts.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use indexmap::IndexMap;
use slipway_pipelines::plan::{Decision, Deploy};
pub use slipway_providers::testing::{Reply, StandIn};
use slipway_providers::{DeployContext, Endpoints, Error, MemorySink, Outcome, run_deploy};

/// True when a missing dependency must fail the test rather than skip it.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (prints why) or, under CI=true, fails.
pub fn skip_or_fail(why: &str) {
    if ci() {
        panic!("CI=true and {why}");
    }
    eprintln!("skipped: {why}");
}

fn answers(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let req = format!("GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

/// The shared moto server (`scripts/services.sh start`, or `SLIPWAY_TEST_MOTO`), else one
/// started for this test run; `None` (after printing) when moto cannot be had.
pub fn moto() -> Option<String> {
    let url = std::env::var("SLIPWAY_TEST_MOTO").unwrap_or_else(|_| "http://127.0.0.1:5001".into());
    if answers(&url) {
        return Some(url);
    }
    static OWN: Mutex<Option<(String, MotoServer)>> = Mutex::new(None);
    let mut own = OWN.lock().unwrap();
    if own.is_none() {
        match MotoServer::spawn(&[]) {
            Some(m) => *own = Some((m.url.clone(), m)),
            None => {
                skip_or_fail(
                    "moto is not running and cannot be started (scripts/install-test-deps.sh, scripts/services.sh start)",
                );
                return None;
            }
        }
    }
    own.as_ref().map(|(u, _)| u.clone())
}

/// The test venv the services' Python tools are installed in (scripts/install-test-deps.sh).
fn venv() -> PathBuf {
    PathBuf::from(std::env::var("SLIPWAY_VENV").unwrap_or_else(|_| "/var/tmp/slipway-venv".into()))
}

/// A loopback port nothing listens on, for a server of the test's own.
fn free_port() -> Option<u16> {
    Some(
        TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port(),
    )
}

/// Whether a server just started answers (`up`) within 10 s.
fn up_within_10_s(up: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if up() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A moto server of this test's own, for settings that moto reads from its environment.
pub struct MotoServer {
    /// Base URL.
    pub url: String,
    child: Child,
}

impl MotoServer {
    /// Starts `moto_server` from the test venv on a free loopback port with `env`.
    pub fn spawn(env: &[(&str, &str)]) -> Option<MotoServer> {
        let bin = venv().join("bin/moto_server");
        if !bin.exists() {
            return None;
        }
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().ok()?;
        let url = format!("http://127.0.0.1:{port}");
        let server = MotoServer { url, child };
        up_within_10_s(|| answers(&server.url)).then_some(server)
    }

    /// [`MotoServer::spawn`], skipping or failing as the environment says when it cannot.
    pub fn spawn_or_skip(env: &[(&str, &str)]) -> Option<MotoServer> {
        let s = MotoServer::spawn(env);
        if s.is_none() {
            skip_or_fail("moto_server cannot be started from the test venv");
        }
        s
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared third-party material (`$SLIPWAY_SHARED`, else `../shared` next to the workspace).
pub fn shared() -> PathBuf {
    std::env::var("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// The read-only course corpus, or `None` (after printing / failing under CI) when absent.
pub fn course(project: &str) -> Option<PathBuf> {
    let dir = shared().join("corpus/course").join(project);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip_or_fail(&format!(
            "the shared course files are missing ({})",
            dir.display()
        ));
        None
    }
}

/// A context for tests: fixed commit and time, fast polling, credentials in the job's env.
pub fn context(workdir: impl Into<PathBuf>) -> DeployContext {
    let mut c = DeployContext::new(
        "octo/app",
        "c0ffee1234567890c0ffee1234567890c0ffee12",
        workdir,
    )
    .with_env("AWS_ACCESS_KEY_ID", "AKIDTEST")
    .with_env("AWS_SECRET_ACCESS_KEY", "test-secret");
    c.now = 1_700_000_000;
    c.commit_message = "Deploy the thing".into();
    c.poll_interval = Duration::from_millis(50);
    c
}

/// Endpoints that send every AWS service to `url`.
pub fn aws_at(url: &str) -> Endpoints {
    Endpoints::all_aws(url)
}

/// An AWS SDK config for checking state in moto directly.
pub async fn sdk(url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(url)
        .http_client(slipway_http::aws::client())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), n % 1_000_000_000)
}

/// A deploy of `provider` with `options` (a JSON object) that the planner let run.
pub fn deploy(provider: &str, options: serde_json::Value) -> Deploy {
    Deploy {
        provider: provider.into(),
        options: options
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .collect::<IndexMap<_, _>>(),
        decision: Decision {
            included: true,
            reason: "branch master matches".into(),
        },
        skip_cleanup: true,
        allow_failure: false,
        edge: None,
        condition: vec![],
    }
}

/// A temporary directory holding `files` (path, content).
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    dir
}

/// The test Python package index (`scripts/services.sh start`: pypiserver at `SLIPWAY_TEST_PYPI`,
/// uploads with `SLIPWAY_TEST_PYPI_AUTH` = `user:password`), else one started for this test run
/// from the test venv; `None` (after printing, or failing under CI) when none can be had.
pub fn pypi() -> Option<(String, String, String)> {
    let answers = |url: &str| {
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        TcpStream::connect(addr).is_ok_and(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let req = format!("GET /simple/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut buf = [0u8; 12];
            s.write_all(req.as_bytes()).is_ok()
                && s.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.")
                && &buf[9..12] == b"200"
        })
    };
    if let (Ok(url), Ok(auth)) = (
        std::env::var("SLIPWAY_TEST_PYPI"),
        std::env::var("SLIPWAY_TEST_PYPI_AUTH"),
    ) && answers(&url)
        && let Some((user, password)) = auth.split_once(':')
    {
        return Some((url, user.to_owned(), password.to_owned()));
    }
    static OWN: Mutex<Option<(String, PypiServer)>> = Mutex::new(None);
    let mut own = OWN.lock().unwrap();
    if own.is_none() {
        match PypiServer::spawn() {
            Some(s) => *own = Some((s.url.clone(), s)),
            None => {
                skip_or_fail(
                    "pypiserver is not running and cannot be started (scripts/install-test-deps.sh, scripts/services.sh start)",
                );
                return None;
            }
        }
    }
    own.as_ref().map(|(u, _)| {
        (
            u.clone(),
            "slipway".to_owned(),
            "pypi-own-password".to_owned(),
        )
    })
}

/// A pypiserver of this test run's own, from the test venv.
pub struct PypiServer {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PypiServer {
    fn spawn() -> Option<PypiServer> {
        let venv = venv();
        let dir = tempfile::tempdir().ok()?;
        let htpasswd = dir.path().join("htpasswd");
        let made = Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "import sys\nfrom passlib.apache import HtpasswdFile\nh = HtpasswdFile(sys.argv[1], new=True)\nh.set_password('slipway', 'pypi-own-password')\nh.save()",
            ])
            .arg(&htpasswd)
            .status()
            .ok()?;
        if !made.success() {
            return None;
        }
        let port = free_port()?;
        std::fs::create_dir_all(dir.path().join("packages")).ok()?;
        let child = Command::new(venv.join("bin/pypi-server"))
            .args([
                "run",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-a",
                "update",
                "-P",
            ])
            .arg(&htpasswd)
            .arg(dir.path().join("packages"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = PypiServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        up_within_10_s(|| TcpStream::connect(("127.0.0.1", port)).is_ok()).then_some(server)
    }
}

impl Drop for PypiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a plain GET to a loopback `http://` URL (empty when it cannot be had).
pub fn http_get(url: &str) -> String {
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// Runs `d`; the summary and the log of a deploy that went through, else fails showing both.
pub async fn deployed(d: &Deploy, ctx: &DeployContext) -> (String, MemorySink) {
    let log = MemorySink::default();
    match run_deploy(d, ctx, &log).await {
        Outcome::Deployed(summary) => (summary, log),
        out => panic!("{out:?} {:#?}", log.lines()),
    }
}

/// Runs `d`; the error and the log of a deploy that failed the job, else fails showing both.
pub async fn failed(d: &Deploy, ctx: &DeployContext) -> (Error, MemorySink) {
    let log = MemorySink::default();
    match run_deploy(d, ctx, &log).await {
        Outcome::Failed(e) => (e, log),
        out => panic!("{out:?} {:#?}", log.lines()),
    }
}

/// An S3 client on moto at `url` for checking what a deploy left there (path-style addressing,
/// as moto serves buckets).
pub async fn s3_at(url: &str, region: &str) -> aws_sdk_s3::Client {
    let conf = sdk(url, region).await;
    s3_client(&conf)
}

/// [`s3_at`] from a config the test already holds.
pub fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    )
}
