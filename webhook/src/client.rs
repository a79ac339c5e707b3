//! A small blocking client of the JSON API, used by `slipway builds`, `logs`, `cancel` and
//! `restart`. Speaks HTTPS (the system's usual web roots, or a CA given with `--ca-cert` for a
//! server with its own certificate) and sends its API token on every call, reads included, since a
//! private repository's builds are readable only with it.

use serde_json::Value;
use slipway_http::{Blocking, HttpError, Tls};

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{0}")]
    Http(String),
    /// The CA file could not be read or used.
    #[error("{path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached.
    #[error(transparent)]
    Unreachable(#[from] HttpError),
}

/// The API of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: Blocking,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`), with an API token.
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client::with_ca(base, token, None).expect("no CA file to read")
    }

    /// Like [`Client::new`], trusting only the CA certificates of a PEM file for HTTPS.
    pub fn with_ca(
        base: &str,
        token: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Client, ClientError> {
        let mut tls = Tls::default();
        if let Some(path) = ca_cert {
            let ca = |reason: String| ClientError::Ca {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ca(
                    "no PEM certificate in it (--ca-cert wants the server's CA certificate)".into(),
                ));
            }
            tls.ca_pem = Some(pem);
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http: Blocking::new(tls)?,
        })
    }

    fn call(&self, method: &str, path: &str) -> Result<Value, ClientError> {
        let authorization = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Accept", "application/json")];
        if let Some(a) = &authorization {
            headers.push(("Authorization", a));
        }
        let resp = self
            .http
            .send(method, &format!("{}{path}", self.base), &headers, None)?;
        let body = resp.text();
        if !resp.ok() {
            let status = axum::http::StatusCode::from_u16(resp.status)
                .map_or_else(|_| resp.status.to_string(), |s| s.to_string());
            return Err(ClientError::Http(format!("{status}: {}", body.trim())));
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Http(format!("invalid JSON: {e}")))
    }

    /// `GET path` as JSON, with the token.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path)
    }

    /// `POST path` with the token.
    pub fn post(&self, path: &str) -> Result<Value, ClientError> {
        self.call("POST", path)
    }

    /// Recent builds, newest first.
    pub fn builds(&self, repo: Option<&str>, limit: u32) -> Result<Value, ClientError> {
        let mut path = format!("/api/builds?limit={limit}");
        if let Some(r) = repo {
            path.push_str(&format!("&repo={}", r.replace('/', "%2F")));
        }
        self.get(&path)
    }

    /// One build and its jobs.
    pub fn build(&self, id: i64) -> Result<Value, ClientError> {
        self.get(&format!("/api/builds/{id}"))
    }

    /// A job's log chunks after `after`, with the job's state.
    pub fn log(&self, job: i64, after: i64) -> Result<Value, ClientError> {
        self.get(&format!("/api/jobs/{job}/log?after={after}"))
    }

    /// Cancels a build.
    pub fn cancel(&self, build: i64) -> Result<Value, ClientError> {
        self.post(&format!("/api/builds/{build}/cancel"))
    }

    /// Restarts a build as a new one.
    pub fn restart(&self, build: i64) -> Result<Value, ClientError> {
        self.post(&format!("/api/builds/{build}/restart"))
    }
}
