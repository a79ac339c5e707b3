//! Receivers notifications are sent to in tests: an HTTP stand-in that checks each request as
//! Slack or a webhook receiver would and records it, readers of the SMTP sink's Maildir
//! (aiosmtpd) and an IRC client joined to a channel of the test ngircd.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// One request a stand-in received, with its verdict.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why the stand-in rejected it (answered 400), if it did.
    pub rejected: Option<String>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a stand-in checks.
#[derive(Clone)]
pub enum Checks {
    /// Slack's incoming-webhook endpoint as Travis posts to it.
    Slack { token: String },
    /// A receiver of Travis's webhook payload, verifying `Signature` with this Ed25519 key.
    Webhook {
        public_key: Arc<Mutex<Option<Vec<u8>>>>,
    },
}

/// An HTTP stand-in on 127.0.0.1.
pub struct StandIn {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    pub fn start(checks: Checks) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, checks) = (log.clone(), checks.clone());
                std::thread::spawn(move || serve_one(stream, &checks, &log));
            }
        });
        StandIn { url, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or panics after `secs`).
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn serve_one(stream: TcpStream, checks: &Checks, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let mut r = Received {
        method,
        target,
        headers,
        body,
        rejected: None,
    };
    r.rejected = check(checks, &r).err();
    let status = if r.rejected.is_some() {
        "400 Bad Request"
    } else {
        "200 OK"
    };
    log.lock().unwrap().push(r);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
    );
}

fn check(checks: &Checks, r: &Received) -> Result<(), String> {
    if r.method != "POST" {
        return Err(format!("method {}", r.method));
    }
    match checks {
        Checks::Slack { token } => {
            let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
            if path != "/services/hooks/travis" {
                return Err(format!("path {path}"));
            }
            if !query.split('&').any(|p| p == format!("token={token}")) {
                return Err(format!("query {query} lacks the room's token"));
            }
            if r.header("content-type") != Some("application/json") {
                return Err(format!("content-type {:?}", r.header("content-type")));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&r.body).map_err(|e| format!("body is not JSON: {e}"))?;
            let a = &v["attachments"][0];
            if !a["text"].is_string() || a["fallback"] != a["text"] {
                return Err(format!("attachment text/fallback: {v}"));
            }
            if !matches!(a["color"].as_str(), Some("good" | "danger" | "warning")) {
                return Err(format!("color: {v}"));
            }
            if let Some(c) = v.get("channel")
                && !c.as_str().is_some_and(|c| c.starts_with('#'))
            {
                return Err(format!("channel: {v}"));
            }
            Ok(())
        }
        Checks::Webhook { public_key } => {
            if r.header("content-type") != Some("application/x-www-form-urlencoded") {
                return Err(format!("content-type {:?}", r.header("content-type")));
            }
            let json = form_payload(&r.body)?;
            let v: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| format!("payload is not JSON: {e}"))?;
            for key in [
                "id", "number", "state", "commit", "branch", "message", "matrix",
            ] {
                if v.get(key).is_none() {
                    return Err(format!("payload lacks `{key}`: {v}"));
                }
            }
            let slug = format!(
                "{}/{}",
                v["repository"]["owner_name"].as_str().unwrap_or(""),
                v["repository"]["name"].as_str().unwrap_or("")
            );
            if r.header("travis-repo-slug") != Some(slug.as_str()) {
                return Err(format!(
                    "Travis-Repo-Slug {:?} is not {slug}",
                    r.header("travis-repo-slug")
                ));
            }
            let sig = r.header("signature").ok_or("no Signature header")?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|e| format!("Signature is not base64: {e}"))?;
            let key = public_key
                .lock()
                .unwrap()
                .clone()
                .ok_or("no public key to verify with")?;
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                .verify(json.as_bytes(), &sig)
                .map_err(|_| "the signature does not verify".to_owned())
        }
    }
}

/// The JSON text of a form body's `payload` field.
pub fn form_payload(body: &[u8]) -> Result<String, String> {
    let body = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let field = body
        .split('&')
        .find_map(|p| p.strip_prefix("payload="))
        .ok_or("the form has no payload field")?;
    percent_encoding::percent_decode_str(&field.replace('+', " "))
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| e.to_string())
}

/// The raw Ed25519 public key in a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
pub fn ed25519_from_pem(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    der[der.len() - 32..].to_vec()
}

/// The test services' addresses, or `None` (after saying so) when they are not running and CI
/// does not demand them.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} is not set: start the test services (scripts/services.sh)")
        }
        _ => {
            eprintln!("skipped: {var} is not set (eval \"$(scripts/services.sh env)\")");
            None
        }
    }
}

/// Messages in the SMTP sink's Maildir whose text contains `marker`.
pub fn mails_with(marker: &str) -> Vec<String> {
    let Some(dir) = std::env::var_os("SLIPWAY_TEST_MAILDIR").map(PathBuf::from) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(text) = std::fs::read_to_string(entry.path())
                && text.contains(marker)
            {
                out.push(text);
            }
        }
    }
    out
}

/// Waits for `n` mails containing `marker`.
pub fn wait_mails(marker: &str, n: usize, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = mails_with(marker);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} mails with {marker}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An IRC client joined to `channel` on the test server, collecting what is said there.
pub struct IrcWatcher {
    lines: Arc<Mutex<Vec<String>>>,
}

impl IrcWatcher {
    pub fn join(addr: &str, nick: &str, channel: &str) -> IrcWatcher {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "NICK {nick}\r\nUSER {nick} 0 * :watcher\r\n").unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (seen, joined) = (lines.clone(), Arc::new(Mutex::new(false)));
        let joined2 = joined.clone();
        let channel = channel.to_owned();
        let mut writer = stream;
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(arg) = line.strip_prefix("PING ") {
                    let _ = write!(writer, "PONG {arg}\r\n");
                }
                if line.split(' ').nth(1) == Some("001") {
                    let _ = write!(writer, "JOIN {channel}\r\n");
                }
                if line.split(' ').nth(1) == Some("366") {
                    *joined2.lock().unwrap() = true;
                }
                seen.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !*joined.lock().unwrap() {
            assert!(Instant::now() < deadline, "the watcher could not join");
            std::thread::sleep(Duration::from_millis(50));
        }
        IrcWatcher { lines }
    }

    /// Messages (PRIVMSG or NOTICE) seen so far, as `COMMAND text`.
    pub fn said(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let mut parts = l.splitn(4, ' ');
                let (_, cmd, _, text) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                matches!(cmd, "PRIVMSG" | "NOTICE")
                    .then(|| format!("{cmd} {}", text.trim_start_matches(':')))
            })
            .collect()
    }

    /// Waits until `n` messages were said.
    pub fn wait_said(&self, n: usize, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let said = self.said();
            if said.len() >= n {
                return said;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} IRC messages: {said:?}",
                said.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
