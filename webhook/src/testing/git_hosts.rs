//! Git hosts on loopback for tests of fetching: [`GitHttp`] serves real repositories over smart
//! HTTP like GitHub (private ones need their token) and records what each request carried;
//! [`Trickle`] answers one byte at a time forever and records when its clients go away;
//! [`GitDaemon`] serves a directory over the `git://` protocol.

use base64::Engine as _;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a [`GitHttp`] received: its path (with the query) and `Authorization` header.
#[derive(Debug, Clone)]
pub struct GitRequest {
    pub path: String,
    pub authorization: Option<String>,
    pub status: u16,
}

/// Bare repositories under `root` served over git's smart HTTP protocol by `git http-backend`
/// on loopback, for the life of the test process. A repository made private answers 401 unless the request carries
/// `x-access-token:<its token>` as Basic credentials, as GitHub does for an App or PAT.
#[derive(Clone)]
pub struct GitHttp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    requests: Arc<Mutex<Vec<GitRequest>>>,
    private: Arc<Mutex<HashMap<String, String>>>,
}

impl GitHttp {
    /// Serves `root` (a repository at `root/acme/app.git` is `<url>/acme/app.git`).
    pub fn start(root: &Path) -> GitHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let host = GitHttp {
            url,
            requests: Arc::default(),
            private: Arc::default(),
        };
        let (me, root) = (host.clone(), root.to_path_buf());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (me, root) = (me.clone(), root.clone());
                std::thread::spawn(move || me.serve(conn, &root));
            }
        });
        host
    }

    /// Makes the repository at `path` (`/acme/private.git`) answer only with `token`.
    pub fn private(&self, path: &str, token: &str) {
        self.private
            .lock()
            .unwrap()
            .insert(path.to_string(), token.to_string());
    }

    /// An HTTPS front for this host on a port of its own, serving `cert_pem` (the chain) with
    /// `key_pem`: each request is read, passed to the host, and its answer sent back. Returns
    /// `https://127.0.0.1:<port>`.
    pub fn tls_front(&self, cert_pem: &[u8], key_pem: &[u8]) -> String {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<_> = CertificateDer::pem_slice_iter(cert_pem)
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let backend = self.url.trim_start_matches("http://").to_string();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let (config, backend) = (config.clone(), backend.clone());
                std::thread::spawn(move || {
                    let Ok(server) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(server, tcp);
                    let Some(request) = read_request(&mut tls) else {
                        return;
                    };
                    let mut plain = TcpStream::connect(&backend).unwrap();
                    plain.write_all(&request).unwrap();
                    let mut answer = Vec::new();
                    let _ = plain.read_to_end(&mut answer);
                    let _ = tls.write_all(&answer);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        url
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GitRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn serve(&self, conn: TcpStream, root: &Path) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let mut parts = head.first().map(|l| l.split(' ')).into_iter().flatten();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let header = |name: &str| {
            head.iter().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let authorization = header("authorization");
        let mut body = vec![
            0u8;
            header("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0)
        ];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let needed = self
            .private
            .lock()
            .unwrap()
            .iter()
            .find(|(repo, _)| path.starts_with(repo.as_str()))
            .map(|(_, token)| token.clone());
        let expected = needed.map(|t| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"))
            )
        });
        let (status, headers, out) = match &expected {
            Some(e) if authorization.as_deref() != Some(e) => (
                401,
                vec!["WWW-Authenticate: Basic realm=\"GitHub\"".to_string()],
                Vec::new(),
            ),
            _ => backend(
                root,
                &method,
                path,
                query,
                header("content-type").as_deref(),
                &body,
            ),
        };
        self.requests.lock().unwrap().push(GitRequest {
            path: target.clone(),
            authorization,
            status,
        });
        let mut conn = conn;
        let mut answer = format!("HTTP/1.1 {status} X\r\n");
        for h in headers {
            answer.push_str(&h);
            answer.push_str("\r\n");
        }
        answer.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            out.len()
        ));
        let _ = conn.write_all(answer.as_bytes());
        let _ = conn.write_all(&out);
    }
}

/// One HTTP request (head, and a body of `Content-Length`), as read from `r`.
fn read_request(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    buf.extend(body);
    Some(buf)
}

/// Runs `git http-backend` (a CGI program) for one request; its status, headers and body.
fn backend(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<String>, Vec<u8>) {
    let exec = String::from_utf8(
        Command::new("git")
            .arg("--exec-path")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut child = Command::new(PathBuf::from(exec.trim()).join("git-http-backend"))
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", content_type.unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap().stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        return (500, Vec::new(), out);
    };
    let mut status = 200;
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(&out[..at]).lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => {
                status = v
                    .trim()
                    .split(' ')
                    .next()
                    .unwrap_or("500")
                    .parse()
                    .unwrap_or(500);
            }
            Some(_) => headers.push(line.trim().to_string()),
            None => {}
        }
    }
    (status, headers, out[at + sep..].to_vec())
}

/// A server on loopback that accepts every connection and sends one byte every `every`, forever
/// (an HTTP response head that never ends), so a fetch from it can only end by its time limit or
/// a cancel. It records when each connection came and when its client went away.
#[derive(Clone)]
pub struct Trickle {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    connections: Arc<Mutex<Vec<Connection>>>,
}

/// When a connection was accepted, and when its client was seen gone.
pub type Connection = (Instant, Option<Instant>);

impl Trickle {
    pub fn start(every: Duration) -> Trickle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let trickle = Trickle {
            addr: listener.local_addr().unwrap().to_string(),
            connections: Arc::default(),
        };
        let connections = trickle.connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let connections = connections.clone();
                let n = {
                    let mut c = connections.lock().unwrap();
                    c.push((Instant::now(), None));
                    c.len() - 1
                };
                std::thread::spawn(move || {
                    let bytes = b"HTTP/1.1 200 OK\r\nX-Slow: "
                        .iter()
                        .chain(std::iter::repeat(&b'a'));
                    for b in bytes {
                        if conn.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(every);
                    }
                    connections.lock().unwrap()[n].1 = Some(Instant::now());
                });
            }
        });
        trickle
    }

    /// When each connection was accepted and, once its client closed it, when that was seen.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections.lock().unwrap().clone()
    }
}

/// A `git daemon` serving every repository under a directory on a free loopback port; killed on
/// drop.
pub struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    /// Starts one serving `base` and waits (up to 10 s) until it answers; why not, when it
    /// cannot (no git, no free port, the daemon exited).
    pub fn start(base: &Path) -> Result<GitDaemon, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .map_err(|e| format!("git: {e}"))?;
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        // `git daemon` would run git-daemon as its child, which killing `git` leaves behind.
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{exec_path}/git-daemon: {e}"))?;
        let mut d = GitDaemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A repository that does not exist: any answer at all means the daemon is up.
            let answered = Command::new("git")
                .args(["ls-remote", &d.url("probe")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stderr).contains("remote error"))
                .unwrap_or(false);
            if answered {
                return Ok(d);
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(format!("git-daemon exited: {status}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("nothing answered on 127.0.0.1:{port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of the repository `<name>.git` under the served directory.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
