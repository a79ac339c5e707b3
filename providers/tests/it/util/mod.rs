//! Test harness: a local AWS double (moto), an HTTP stand-in that records requests and answers
//! like the real service (or forwards to moto), the course files, and deploy contexts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use slipway_pipelines::plan::{Decision, Deploy};
use slipway_providers::{DeployContext, Endpoints};

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

/// A moto server of this test's own, for settings that moto reads from its environment.
pub struct MotoServer {
    /// Base URL.
    pub url: String,
    child: Child,
}

impl MotoServer {
    /// Starts `moto_server` from the test venv on a free loopback port with `env`.
    pub fn spawn(env: &[(&str, &str)]) -> Option<MotoServer> {
        let venv = std::env::var("SLIPWAY_VENV").unwrap_or_else(|_| "/var/tmp/slipway-venv".into());
        let bin = PathBuf::from(venv).join("bin/moto_server");
        if !bin.exists() {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
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
        for _ in 0..100 {
            if answers(&server.url) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
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

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The query string.
    pub query: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

fn url_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

impl Request {
    /// The form-encoded body (AWS query protocol) as a sorted map.
    pub fn form(&self) -> BTreeMap<String, String> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (url_decode(k), url_decode(v))
            })
            .collect()
    }

    /// The AWS query-protocol action, or the JSON-protocol target.
    pub fn action(&self) -> String {
        if let Some(t) = self.header("x-amz-target") {
            return t.rsplit('.').next().unwrap_or(&t).to_owned();
        }
        self.form().get("Action").cloned().unwrap_or_default()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the stand-in does with a request.
pub enum Reply {
    /// Answers itself.
    Respond {
        /// Status code.
        status: u16,
        /// Content type.
        content_type: &'static str,
        /// Body.
        body: String,
    },
    /// Passes the request on to this base URL (moto) and relays the answer.
    Forward(String),
}

impl Reply {
    /// An XML answer (AWS query protocol, S3).
    pub fn xml(status: u16, body: impl Into<String>) -> Reply {
        Reply::Respond {
            status,
            content_type: "text/xml",
            body: body.into(),
        }
    }
    /// A JSON answer.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Respond {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A loopback HTTP/1.1 server that records every request and answers through a handler.
pub struct StandIn {
    /// Base URL.
    pub url: String,
    log: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Starts the stand-in.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log2 = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                let log = log2.clone();
                std::thread::spawn(move || serve(conn, &*handler, &log));
            }
        });
        StandIn { url, log }
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// `METHOD path` or the AWS action of each request, in order.
    pub fn actions(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                let a = r.action();
                if a.is_empty() {
                    format!("{} {}", r.method, r.path)
                } else {
                    a
                }
            })
            .collect()
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let start = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Some((start, headers))
}

fn read_body(r: &mut impl BufRead, headers: &[(String, String)]) -> Vec<u8> {
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                let _ = r.read_line(&mut end);
                break;
            }
            let mut chunk = vec![0; n];
            if r.read_exact(&mut chunk).is_err() {
                break;
            }
            out.extend(chunk);
            let mut crlf = String::new();
            let _ = r.read_line(&mut crlf);
        }
        return out;
    }
    let len = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    body
}

fn serve(conn: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    while let Some((start, headers)) = read_head(&mut reader) {
        let body = read_body(&mut reader, &headers);
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let (path, query) = target
            .split_once('?')
            .map(|(p, q)| (p.to_owned(), q.to_owned()))
            .unwrap_or((target.clone(), String::new()));
        let req = Request {
            method,
            path,
            query,
            headers,
            body,
        };
        log.lock().unwrap().push(req.clone());
        let (status, ctype, bytes) = match handler(&req) {
            Reply::Respond {
                status,
                content_type,
                body,
            } => (status, content_type.to_owned(), body.into_bytes()),
            Reply::Forward(upstream) => forward(&upstream, &req, &target),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            bytes.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&bytes).is_err() {
            return;
        }
    }
}

fn forward(upstream: &str, req: &Request, target: &str) -> (u16, String, Vec<u8>) {
    let addr = upstream.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!("{} {target} HTTP/1.1\r\n", req.method);
    for (k, v) in &req.headers {
        if k == "connection" || k == "transfer-encoding" || k == "content-length" {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        req.body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&req.body).unwrap();
    let mut reader = BufReader::new(s);
    let (start, headers) = read_head(&mut reader).unwrap();
    let status = start
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let body = if headers
        .iter()
        .any(|(k, _)| k == "content-length" || k == "transfer-encoding")
    {
        read_body(&mut reader, &headers)
    } else {
        let mut b = Vec::new();
        let _ = reader.read_to_end(&mut b);
        b
    };
    (status, ctype, body)
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
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(url)
        .http_client(http)
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
        let venv = PathBuf::from(
            std::env::var("SLIPWAY_VENV").unwrap_or_else(|_| "/var/tmp/slipway-venv".into()),
        );
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
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
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
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
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
