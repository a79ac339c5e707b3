//! A loopback HTTP/1.1 stand-in for services no real server of can run here: it records every
//! request and answers through a handler that checks it as the service would (or forwards it to a
//! local AWS double). The registries' stand-ins (`npm`, `heroku`, `rubygems`, `packagecloud`) are
//! built on it and shared by this crate's tests and the binary's end-to-end tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub mod heroku;
pub mod npm;
pub mod packagecloud;
pub mod rubygems;

/// Every registry the providers publish to, configured at a name that cannot resolve
/// (`.invalid`): for checks where only a deploy's options decide and nothing may be sent.
pub fn unreachable_registries() -> crate::Endpoints {
    crate::Endpoints {
        heroku: Some("http://heroku.invalid".into()),
        packagecloud: Some("http://packagecloud.invalid".into()),
        pypi: Some("http://pypi.invalid/".into()),
        npm: Some("http://npm.invalid/".into()),
        rubygems: Some("http://gems.invalid".into()),
        ..crate::Endpoints::default()
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

/// `k=v&k=v` pairs, decoded, as a sorted map.
fn decoded_pairs(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

impl Request {
    /// The form-encoded body (AWS query protocol) as a sorted map.
    pub fn form(&self) -> BTreeMap<String, String> {
        decoded_pairs(&String::from_utf8_lossy(&self.body))
    }

    /// The query string's parameters as a sorted map.
    pub fn query_pairs(&self) -> BTreeMap<String, String> {
        decoded_pairs(&self.query)
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
