//! A small blocking client of the JSON API, used by `slipway builds`, `logs`, `cancel` and
//! `restart`. Speaks HTTPS (the system's usual web roots, or a CA given with `--ca-cert` for a
//! server with its own certificate) and sends its API token on every call, reads included, since a
//! private repository's builds are readable only with it.

use serde_json::Value;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or answered with an error.
    #[error("{0}")]
    Http(String),
}

/// The API of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
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
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Http(format!("{}: {e}", path.display())))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(ClientError::Http(format!(
                    "{}: no PEM certificate in it (--ca-cert wants the server's CA certificate)",
                    path.display()
                )));
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            agent: config.build().into(),
        })
    }

    fn handle(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut resp = resp.map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Http(format!("{status}: {}", body.trim())));
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Http(format!("invalid JSON: {e}")))
    }

    /// `GET path` as JSON, with the token.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::handle(req.call())
    }

    /// `POST path` with the token.
    pub fn post(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        Self::handle(req.send_empty())
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
