//! Git's smart HTTP protocol on HTTP/1.1 over a [`Conn`]: `GET …/info/refs?service=git-upload-pack`
//! for the advertisement, one `POST …/git-upload-pack` per negotiation round. One request per
//! connection (`Connection: close`), bodies by length, chunks or close.

use super::policy::{Scope, same_origin};
use super::transport::Conn;
use base64::Engine as _;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::sync::Arc;

const USER_AGENT: &str = "git/2.0 (slipway)";
const ADVERTISEMENT: &str = "application/x-git-upload-pack-advertisement";
const RESULT: &str = "application/x-git-upload-pack-result";
const LS_SUFFIX: &str = "/info/refs?service=git-upload-pack";
const MAX_REDIRECTS: usize = 5;
const MAX_HEAD: usize = 64 * 1024;

/// The stream libgit2 reads the advertisement from, or writes a negotiation round into and
/// reads its answer from.
pub(super) struct HttpStream {
    scope: Arc<Scope>,
    /// The repository's URL (where `git-upload-pack` is posted to).
    url: String,
    token: Option<String>,
    request: Vec<u8>,
    response: Option<Body>,
}

/// Fetches the advertisement of the repository at `url`, following redirects. `token` is sent
/// (as GitHub's `x-access-token` user) only while the request stays on `url`'s origin. Returns
/// the stream and, when the repository moved, its new URL for the requests that follow (and
/// whether the token still goes there).
pub(super) fn advertisement(
    scope: &Arc<Scope>,
    url: &str,
    token: Option<&str>,
) -> io::Result<(HttpStream, Option<(String, bool)>)> {
    let mut base = url.trim_end_matches('/').to_string();
    let mut token = token.map(str::to_string);
    for _ in 0..=MAX_REDIRECTS {
        let target = format!("{base}{LS_SUFFIX}");
        let response = request(scope, "GET", &target, token.as_deref(), &[], None)?;
        if let Some(location) = response.location.clone().filter(|_| response.redirect()) {
            let next = url::Url::parse(&target)
                .and_then(|u| u.join(&location))
                .map_err(|e| io::Error::other(format!("redirect to {location}: {e}")))?
                .to_string();
            let Some(moved) = next.strip_suffix(LS_SUFFIX) else {
                return Err(io::Error::other(format!(
                    "redirected to {next}, which is not a git repository"
                )));
            };
            if !same_origin(&base, moved) {
                token = None;
            }
            base = moved.to_string();
            continue;
        }
        response.expect(200, ADVERTISEMENT, &target, token.is_some())?;
        let moved = (base != url.trim_end_matches('/')).then(|| (base.clone(), token.is_some()));
        let stream = HttpStream {
            scope: scope.clone(),
            url: base,
            token,
            request: Vec::new(),
            response: Some(response.body),
        };
        return Ok((stream, moved));
    }
    Err(io::Error::other(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

impl HttpStream {
    /// A negotiation round with the repository at `url`: what libgit2 writes is posted when it
    /// first reads the answer.
    pub(super) fn upload_pack(scope: &Arc<Scope>, url: &str, token: Option<&str>) -> HttpStream {
        HttpStream {
            scope: scope.clone(),
            url: url.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            request: Vec::new(),
            response: None,
        }
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            let target = format!("{}/git-upload-pack", self.url);
            let body = std::mem::take(&mut self.request);
            let headers = [
                ("Content-Type", "application/x-git-upload-pack-request"),
                ("Accept", RESULT),
            ];
            let response = request(
                &self.scope,
                "POST",
                &target,
                self.token.as_deref(),
                &headers,
                Some(&body),
            )?;
            response.expect(200, RESULT, &target, self.token.is_some())?;
            self.response = Some(response.body);
        }
        self.response.as_mut().expect("response").read(buf)
    }
}

impl Write for HttpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.response.is_some() {
            return Err(io::Error::other("the request was already sent"));
        }
        self.request.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A response's status, the headers that matter here, and its body.
struct Response {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: Body,
}

impl Response {
    fn redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }

    /// Fails unless the status and content type are the expected ones, saying what came instead.
    fn expect(
        &self,
        status: u16,
        content_type: &str,
        url: &str,
        sent_token: bool,
    ) -> io::Result<()> {
        match self.status {
            s if s == status => {}
            401 | 403 if sent_token => {
                return Err(io::Error::other(format!(
                    "HTTP {} for {url}: the server refused the credentials",
                    self.status
                )));
            }
            401 | 403 => {
                return Err(io::Error::other(format!(
                    "HTTP {} for {url}: authentication required, and no credentials are sent to this URL",
                    self.status
                )));
            }
            s => return Err(io::Error::other(format!("HTTP {s} for {url}"))),
        }
        if !self.content_type.eq_ignore_ascii_case(content_type) {
            return Err(io::Error::other(format!(
                "{url} is not a git repository served over smart HTTP (content type `{}`)",
                self.content_type
            )));
        }
        Ok(())
    }
}

/// Sends one request on a new connection and reads the response's head.
fn request(
    scope: &Arc<Scope>,
    method: &str,
    target: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Response> {
    let url = url::Url::parse(target).map_err(|e| io::Error::other(format!("bad URL: {e}")))?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(io::Error::other(format!("{other}:// is not HTTP"))),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let mut conn = Conn::open(scope, &host, port, tls)?;
    let mut head = format!(
        "{method} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n",
        url.path(),
        url.query().map(|q| format!("?{q}")).unwrap_or_default(),
        match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        },
    );
    if let Some(token) = token {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        head.push_str(&format!("Authorization: Basic {basic}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if let Some(body) = body {
        conn.write_all(body)?;
    }
    conn.flush()?;
    read_response(conn)
}

/// Reads a response head from `conn`; the rest of the connection is the body.
fn read_response(mut conn: Conn) -> io::Result<Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other(
                "the server closed the connection before answering",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let done = parsed
            .parse(&buf)
            .map_err(|e| io::Error::other(format!("a malformed HTTP response: {e}")))?;
        let httparse::Status::Complete(head_len) = done else {
            if buf.len() > MAX_HEAD {
                return Err(io::Error::other("the HTTP response head is too long"));
            }
            continue;
        };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let framing = if header("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked {
                left: 0,
                crlf: false,
                done: false,
            }
        } else if let Some(len) = header("content-length") {
            Framing::Length(
                len.parse()
                    .map_err(|_| io::Error::other(format!("a bad Content-Length `{len}`")))?,
            )
        } else {
            Framing::Close
        };
        let content_type = header("content-type")
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        let (status, location) = (parsed.code.unwrap_or(0), header("location"));
        let rest = buf.split_off(head_len);
        return Ok(Response {
            status,
            content_type,
            location,
            body: Body {
                reader: BufReader::new(Cursor::new(rest).chain(conn)),
                framing,
            },
        });
    }
}

/// How a body ends.
enum Framing {
    Length(u64),
    Chunked { left: u64, crlf: bool, done: bool },
    Close,
}

/// A response body, decoded.
struct Body {
    reader: BufReader<std::io::Chain<Cursor<Vec<u8>>, Conn>>,
    framing: Framing,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Close => self.reader.read(buf),
            Framing::Length(left) => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                read_at_most(&mut self.reader, buf, left)
            }
            Framing::Chunked { left, crlf, done } => {
                if *done || buf.is_empty() {
                    return Ok(0);
                }
                if *left == 0 {
                    if *crlf {
                        let mut end = [0u8; 2];
                        self.reader.read_exact(&mut end)?;
                        *crlf = false;
                    }
                    let size = read_line(&mut self.reader)?;
                    let size = size.split(';').next().unwrap_or_default().trim();
                    *left = u64::from_str_radix(size, 16)
                        .map_err(|_| io::Error::other(format!("a bad chunk size `{size}`")))?;
                    if *left == 0 {
                        // Trailers, up to the empty line.
                        while !read_line(&mut self.reader)?.is_empty() {}
                        *done = true;
                        return Ok(0);
                    }
                }
                let n = read_at_most(&mut self.reader, buf, left)?;
                *crlf = *left == 0;
                Ok(n)
            }
        }
    }
}

/// Reads into `buf` no more than the `left` bytes the framing still announces, and counts them
/// off; the stream ending first is an error.
fn read_at_most(reader: &mut impl Read, buf: &mut [u8], left: &mut u64) -> io::Result<usize> {
    let max = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
    let n = reader.read(&mut buf[..max])?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the response ended early",
        ));
    }
    *left -= n as u64;
    Ok(n)
}

/// One CRLF-terminated line (at most 4 KiB), without its ending.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let n = reader.take(4096).read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the response ended inside a chunk header",
        ));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}
