//! The API calls a deploy makes, as data: a dry run returns them and a real run logs each one
//! before making it, so what `slipway plan` shows is what the deploy then does.

use std::fmt;

use serde::Serialize;
use slipway_runner::DeployLog;

/// One API call with the parameters that matter to a reader (secrets shown as `[secure]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    /// The service (`s3`, `elasticbeanstalk`, `ecs`, `kubernetes`, `oauth`, `gke`).
    pub service: &'static str,
    /// The action (`PutObject`, `CreateApplicationVersion`, `PATCH apps/v1 deployments`, …).
    pub action: String,
    /// Parameters in a stable order.
    pub params: Vec<(String, String)>,
    /// Why the call is made or when it is skipped (e.g. "only if the bucket is missing").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ApiCall {
    /// A call with no parameters yet.
    pub fn new(service: &'static str, action: impl Into<String>) -> Self {
        ApiCall {
            service,
            action: action.into(),
            params: Vec::new(),
            note: None,
        }
    }

    /// Adds a parameter (builder style).
    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a note (builder style).
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.action)?;
        for (k, v) in &self.params {
            write!(f, " {k}={v}")?;
        }
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// A deploy log that keeps the lines, for tests and for callers that print later.
#[derive(Debug, Default)]
pub struct MemorySink(std::sync::Mutex<Vec<String>>);

impl MemorySink {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl DeployLog for MemorySink {
    fn line(&self, line: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push(line.to_owned());
        }
    }
}
