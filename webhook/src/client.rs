//! A small blocking client of the JSON API, used by `slipway builds`, `logs`, `cancel` and
//! `restart`. Plain HTTP only (put a TLS proxy in front of a remote server).

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
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`), with an API token for
    /// cancel and restart.
    pub fn new(base: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
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

    /// `GET path` as JSON.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        Self::handle(self.agent.get(format!("{}{path}", self.base)).call())
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
