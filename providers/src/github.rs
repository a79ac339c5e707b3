//! GitHub for the `releases` and `pages` providers: where the token comes from, and a client for
//! GitHub's REST API.
//!
//! The token is taken in dpl's order: the `token` option (dpl's `api_key` alias), `username` and
//! `password`, the job's `GITHUB_TOKEN` (dpl v2 reads it), then, for providers that talk only to
//! the configured GitHub API (`releases`), what the machine offers: on one's own machine
//! (`slipway run`) its `GITHUB_TOKEN`; on a server, the server's own GitHub access (`[github]`),
//! and only for the repository being built, so a pipeline cannot point the server's token at
//! another repository. `pages` pushes to a host its options may name, so it never falls back on
//! the machine's token.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use slipway_secrets::{MASK, Secret};

use crate::context::DeployContext;
use crate::credentials::GITHUB_FIX;
use crate::error::{Error, one_line, option_error};
use crate::http::{Http, Response, Tls};
use crate::options::{Options, Text};
use slipway_runner::DeployLog;

/// GitHub's public API.
pub(crate) const PUBLIC_API: &str = "https://api.github.com";

/// The credentials a GitHub deploy was given in its options.
#[derive(Clone, Debug)]
pub(crate) struct GitHubAuth {
    provider: &'static str,
    token: Option<Text>,
    basic: Option<(String, Text)>,
    /// Whether the machine's token (this machine's, or the server's) may be used.
    machine: bool,
}

/// A resolved credential and where it came from (for logs and dry runs).
pub(crate) struct Resolved {
    /// The `Authorization` header's value.
    pub authorization: Secret<String>,
    /// The token itself, for git over HTTPS (`None` with a username and password).
    pub token: Option<Secret<String>>,
    /// Where it came from, never the value.
    pub source: String,
}

impl GitHubAuth {
    /// Reads `token_names` (the token and its aliases) and, with `basic`, `username`/`user` and
    /// `password`; `machine` says whether the machine's token may be the last resort.
    pub(crate) fn read(
        o: &mut Options<'_>,
        provider: &'static str,
        token_names: &[&str],
        basic: bool,
        machine: bool,
    ) -> Result<Self, Error> {
        let token = o.text(token_names)?;
        let basic = if basic { o.user_password()? } else { None };
        Ok(GitHubAuth {
            provider,
            token,
            basic,
            machine,
        })
    }

    /// Where the credentials come from with `ctx` (never the values).
    pub(crate) fn describe(&self, ctx: &DeployContext, repo: &str) -> String {
        if self.token.is_some() {
            return format!("the token option ({MASK})");
        }
        if let Some((user, _)) = &self.basic {
            return format!("username {user} and password ({MASK})");
        }
        if ctx.env.contains_key("GITHUB_TOKEN") {
            return "the job's GITHUB_TOKEN".to_owned();
        }
        if !self.machine {
            return format!("none: give token (secure) or set GITHUB_TOKEN for {repo}");
        }
        if ctx.credentials.ambient() {
            return "this machine's GITHUB_TOKEN".to_owned();
        }
        if ctx.server_github.is_some() {
            if same_repo(repo, &ctx.repo) {
                return format!("the server's GitHub access for {}", ctx.repo);
            }
            return format!(
                "none: the server's GitHub access is only for {}, not {repo}",
                ctx.repo
            );
        }
        format!("none: no GitHub token for {repo}")
    }

    /// The credential to use for `repo`, in the order of the module's documentation.
    pub(crate) async fn resolve(&self, ctx: &DeployContext, repo: &str) -> Result<Resolved, Error> {
        let token = |t: Secret<String>, source: String| Resolved {
            authorization: Secret::new(format!("Bearer {}", t.expose())),
            token: Some(t),
            source,
        };
        let source = self.describe(ctx, repo);
        if let Some(t) = &self.token {
            return Ok(token(t.clone().into_secret(), source));
        }
        if let Some((user, password)) = &self.basic {
            let pair = format!("{user}:{}", password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            return Ok(Resolved {
                authorization: Secret::new(format!("Basic {encoded}")),
                token: None,
                source,
            });
        }
        if let Some(v) = ctx
            .env
            .get("GITHUB_TOKEN")
            .filter(|v| !v.expose().is_empty())
        {
            return Ok(token(Secret::new(v.expose().to_owned()), source));
        }
        if !self.machine {
            // Nothing of the machine's.
        } else if ctx.credentials.ambient() {
            if let Some(t) = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()) {
                return Ok(token(Secret::new(t), source));
            }
        } else if let Some(server) = &ctx.server_github
            && same_repo(repo, &ctx.repo)
        {
            let found = server.token(&ctx.repo).await.map_err(|m| Error::Api {
                provider: self.provider,
                action: "the server's GitHub token".to_owned(),
                message: one_line(&m),
            })?;
            if let Some(t) = found {
                return Ok(token(t, source));
            }
        }
        Err(Error::NoCredentials {
            provider: self.provider,
            kind: "GitHub",
            repo: repo.to_owned(),
            fix: GITHUB_FIX,
        })
    }
}

/// `owner/name` equality as GitHub has it (case-insensitive).
fn same_repo(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A client for GitHub's REST API with one credential.
pub(crate) struct Api {
    provider: &'static str,
    http: Http,
    /// The same client with the longer limit of uploads.
    uploads: Http,
    base: String,
    authorization: Secret<String>,
}

/// How long an upload may take.
const UPLOAD_LIMIT: Duration = Duration::from_secs(600);

impl Api {
    /// A client for the API of `ctx` (the endpoint override, else GitHub's public API).
    pub(crate) fn new(
        provider: &'static str,
        ctx: &DeployContext,
        credential: &Resolved,
    ) -> Result<Self, Error> {
        let http = Http::new(Tls::default()).map_err(|e| Error::Api {
            provider,
            action: "TLS setup".to_owned(),
            message: e.to_string(),
        })?;
        Ok(Api {
            provider,
            uploads: http.clone().timeout(UPLOAD_LIMIT),
            http,
            base: api_base(ctx),
            authorization: credential.authorization.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// One request; `action` names it in errors (`POST /repos/o/r/releases`).
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        upload: bool,
    ) -> Result<Response, Error> {
        let url = self.url(path);
        let mut headers = vec![
            ("Authorization", self.authorization.expose().as_str()),
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ];
        let (content_type, bytes) = match body {
            Some((t, b)) => (Some(t), Some(b)),
            None => (None, None),
        };
        if let Some(t) = content_type {
            headers.push(("Content-Type", t));
        }
        let client = if upload { &self.uploads } else { &self.http };
        client
            .send(method, &url, &headers, bytes)
            .await
            .map_err(|e| self.error(method, path, e.to_string()))
    }

    fn error(&self, method: &str, path: &str, message: String) -> Error {
        Error::Api {
            provider: self.provider,
            action: format!("{method} {}", path.split('?').next().unwrap_or(path)),
            message: one_line(&message),
        }
    }

    /// A JSON request whose answer must be 2xx; the answer's JSON.
    pub(crate) async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let resp = self.send(method, path, body, false).await?;
        self.check(method, path, &resp)?;
        Ok(resp.json())
    }

    /// A GET that may answer 404 (`None`).
    pub(crate) async fn find(&self, path: &str) -> Result<Option<Value>, Error> {
        let resp = self.send("GET", path, None, false).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        self.check("GET", path, &resp)?;
        Ok(Some(resp.json()))
    }

    /// Every item of a paged list (`per_page=100`, up to 50 pages).
    pub(crate) async fn list(&self, path: &str) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for page in 1..=50 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let items = self
                .json("GET", &format!("{path}{sep}per_page=100&page={page}"), None)
                .await?;
            let items = items.as_array().cloned().unwrap_or_default();
            let full = items.len() == 100;
            out.extend(items);
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Uploads `bytes` with `content_type` to `url` (an asset upload URL); the answer's JSON.
    pub(crate) async fn upload(
        &self,
        url: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, Error> {
        let resp = self
            .send("POST", url, Some((content_type, bytes)), true)
            .await?;
        self.check("POST", url, &resp)?;
        Ok(resp.json())
    }

    /// A DELETE whose answer must be 2xx.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), Error> {
        let resp = self.send("DELETE", path, None, false).await?;
        self.check("DELETE", path, &resp)
    }

    /// An error for a non-2xx answer, with GitHub's message and its validation errors.
    fn check(&self, method: &str, path: &str, resp: &Response) -> Result<(), Error> {
        if resp.ok() {
            return Ok(());
        }
        let body = resp.json();
        let mut message = format!("HTTP {}", resp.status);
        if let Some(m) = body["message"].as_str() {
            message.push_str(&format!(": {m}"));
        } else if !resp.body.is_empty() {
            let text = String::from_utf8_lossy(&resp.body);
            message.push_str(&format!(": {}", text.chars().take(200).collect::<String>()));
        }
        if let Some(errors) = body["errors"].as_array() {
            let codes: Vec<String> = errors
                .iter()
                .map(|e| match (e["field"].as_str(), e["code"].as_str()) {
                    (Some(f), Some(c)) => format!("{f} {c}"),
                    (None, Some(c)) => c.to_owned(),
                    _ => e.to_string(),
                })
                .collect();
            message.push_str(&format!(" ({})", codes.join(", ")));
        }
        if resp.status == 401 {
            message.push_str("; check the token");
        }
        Err(self.error(method, path, message))
    }
}

/// The API base URL of `ctx`, without a trailing slash.
pub(crate) fn api_base(ctx: &DeployContext) -> String {
    ctx.endpoints
        .github_api
        .as_deref()
        .unwrap_or(PUBLIC_API)
        .trim_end_matches('/')
        .to_owned()
}

/// Logs where the credential came from.
pub(crate) fn log_source(provider: &str, credential: &Resolved, log: &dyn DeployLog) {
    log.line(&format!(
        "{provider}: credentials from {}",
        credential.source
    ));
}

/// `owner/name` percent-encoded for a URL path (each part on its own).
pub(crate) fn repo_path(repo: &str) -> String {
    repo.split('/')
        .map(|p| percent_encoding::utf8_percent_encode(p, PATH).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// What a path segment or query value must escape.
pub(crate) const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Checks `owner/name`.
pub(crate) fn check_repo(provider: &'static str, option: &str, repo: &str) -> Result<(), Error> {
    let ok = repo.split('/').count() == 2
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(option_error(
            provider,
            option,
            format!("`{repo}` is not a GitHub repository (owner/name)"),
        ))
    }
}
