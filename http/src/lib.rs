//! Slipway's one HTTP client: hyper and rustls (with `ring`), the stack the server (axum) and the
//! AWS SDKs already bring, so the binary carries one HTTP and one TLS implementation.
//!
//! Everything Slipway asks of another HTTP service goes through [`Http`]: GitHub's REST API and
//! OAuth, the GKE API and its token exchange, notifications, and (through [`Blocking`]) the CLI's
//! calls to a `slipway serve`. Requests and answers are small JSON documents, so an answer is read
//! whole. The AWS SDKs get theirs from [`aws`] (same connection code and TLS settings, their
//! timeouts and retries); kube-rs (the Kubernetes executor and deploys) keeps its own client, built
//! on the same hyper and rustls.

#[cfg(feature = "aws")]
pub mod aws;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A request that gets no answer within this long fails (unless [`Http::timeout`] says otherwise).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection that is not made within this long fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent when the caller names no `User-Agent` (GitHub refuses requests without one).
const DEFAULT_USER_AGENT: &str = concat!("slipway/", env!("CARGO_PKG_VERSION"));

/// Why a request got no answer, or a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A certificate or key given for TLS is unusable.
    #[error("{what}: {reason}")]
    Tls {
        /// Which one (`bad CA certificate`, `bad client key`, …).
        what: &'static str,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// The request could not be made or sent, or its answer not read.
    #[error("{method} {url}: {reason}")]
    Request {
        method: String,
        url: String,
        /// The error and its causes, outermost first.
        reason: String,
    },
    /// No whole answer within the time limit.
    #[error("{method} {url}: no answer within {secs} s")]
    Timeout {
        method: String,
        url: String,
        /// The limit.
        secs: u64,
    },
    /// The runtime of a [`Blocking`] client could not be started.
    #[error("starting the HTTP client's runtime: {0}")]
    Runtime(String),
}

/// An answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers in the order received, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// TLS settings for the servers a client talks to.
#[derive(Default, Clone)]
pub struct Tls {
    /// PEM certificates to trust instead of the system's roots (a server's own CA).
    pub ca_pem: Option<Vec<u8>>,
}

/// The client: one connection pool, cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// A client trusting `tls.ca_pem` (else the system's roots), speaking `http://` and
    /// `https://`.
    pub fn new(tls: Tls) -> Result<Self, HttpError> {
        let connector = connector(client_config(&tls)?, Some(CONNECT_TIMEOUT));
        Ok(Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another time limit per request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one request and reads the whole answer; any status is an answer, only a failure to
    /// get one is an error. An `Authorization` header is marked sensitive (never logged).
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, HttpError> {
        let failed = |reason: String| HttpError::Request {
            method: method.to_owned(),
            url: url.to_owned(),
            reason,
        };
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| failed(chain(&e)))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| failed(format!("header {name} has an invalid value")))?;
            if name == AUTHORIZATION {
                value.set_sensitive(true);
            }
            req = req.header(name, value);
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(USER_AGENT.as_str()))
        {
            req = req.header(USER_AGENT, DEFAULT_USER_AGENT);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| failed(chain(&e)))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| failed(chain(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {}", chain(&e))))?
                .to_bytes()
                .to_vec();
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                method: method.to_owned(),
                url: url.to_owned(),
                secs: self.timeout.as_secs(),
            })?
    }
}

/// [`Http`] for callers without a runtime (the CLI, tests): each call runs on the client's own
/// single-threaded runtime, on a thread of its own when the caller is inside another runtime.
#[derive(Clone, Debug)]
pub struct Blocking {
    http: Http,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Blocking {
    /// A blocking client with the TLS settings of [`Http::new`].
    pub fn new(tls: Tls) -> Result<Self, HttpError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HttpError::Runtime(e.to_string()))?;
        Ok(Blocking {
            http: Http::new(tls)?,
            runtime: Arc::new(runtime),
        })
    }

    /// The same client with another time limit per request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.timeout(timeout);
        self
    }

    /// [`Http::send`], waiting for the answer.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, HttpError> {
        let run = || {
            self.runtime
                .block_on(self.http.send(method, url, headers, body))
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return run();
        }
        std::thread::scope(|s| s.spawn(run).join()).unwrap_or_else(|_| {
            Err(HttpError::Runtime(
                "the request's thread panicked".to_owned(),
            ))
        })
    }
}

/// How every client of Slipway's connects: TCP with `connect_timeout`, then TLS with `config` for
/// `https://` (plain for `http://`), HTTP/1.1.
fn connector(
    config: rustls::ClientConfig,
    connect_timeout: Option<Duration>,
) -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(connect_timeout);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp)
}

/// The rustls configuration for `tls`: `ring`, TLS 1.2 and 1.3, the given or the system's roots.
fn client_config(tls: &Tls) -> Result<rustls::ClientConfig, HttpError> {
    let bad = |what: &'static str| {
        move |e: &dyn std::fmt::Display| HttpError::Tls {
            what,
            reason: e.to_string(),
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| bad("bad CA certificate")(&e))?;
                roots.add(cert).map_err(|e| bad("bad CA certificate")(&e))?;
            }
            if roots.is_empty() {
                return Err(HttpError::Tls {
                    what: "bad CA certificate",
                    reason: "no PEM certificate in it".to_owned(),
                });
            }
        }
        // A missing system bundle only matters for public endpoints, which then fail to verify.
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS setup")(&e))?
        .with_root_certificates(roots);
    Ok(builder.with_no_client_auth())
}

/// An error and its causes, outermost first (hyper's own message alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !msg.ends_with(&next) {
            msg = format!("{msg}: {next}");
        }
        source = s.source();
    }
    msg
}
