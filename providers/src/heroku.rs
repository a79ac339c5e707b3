//! `provider: heroku`: build the app on Heroku from a source tarball of the build dir, through the
//! Platform API, as dpl's default (`api`) strategy does.
//!
//! Steps: `GET /account` (who the key is) → `POST /apps/{app}/sources` (a place for the tarball)
//! → `PUT` the tarball (the build dir as a `.tar.gz`, `.git` left out, links kept as links) →
//! `POST /apps/{app}/builds` → poll `GET /apps/{app}/builds/{id}` until it is no longer pending →
//! the build's output into the job's log; then each `run` command as a one-off dyno.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use slipway_http::{Http, Response, Tls};
use slipway_runner::DeployLog;
use slipway_secrets::Secret;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, one_line, option_error, readable};
use crate::options::{Options, Text};

const NAME: &str = "heroku";

/// How long a build may take.
const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Every option the heroku provider takes (`run` is one of every deploy's common keys, which
/// this provider acts on).
pub const OPTIONS: &[&str] = &[
    "strategy", "api_key", "username", "password", "app", "git", "run",
];

/// Typed heroku options.
#[derive(Debug)]
pub struct Heroku {
    api_key: Option<Text>,
    basic: Option<(String, Text)>,
    app: String,
    run: Vec<String>,
    /// The Platform API's base URL, without a trailing slash.
    api: String,
}

impl Heroku {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let ctx = o.ctx();
        let strategy = o.string(&["strategy"])?;
        if let Some(s) = strategy.as_deref().filter(|s| *s != "api") {
            return Err(option_error(
                NAME,
                "strategy",
                format!(
                    "`{s}`: Slipway deploys to Heroku with the Platform API (strategy: api), which builds from a source tarball"
                ),
            ));
        }
        let api_key = o.text(&["api_key"])?;
        let basic = o.user_password()?;
        let app = o
            .string(&["app"])?
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| ctx.repo_name().to_owned());
        if !app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(option_error(
                NAME,
                "app",
                format!("`{app}` is not a Heroku app name (lower-case letters, digits and dashes)"),
            ));
        }
        if o.string(&["git"])?.is_some() {
            return Err(option_error(
                NAME,
                "git",
                "belongs to the git strategy; Slipway builds from a source tarball (strategy: api)",
            ));
        }
        let run = o.strings(&["run"])?;
        o.finish(OPTIONS)?;
        let api = Self::api(ctx)?;
        Ok(Heroku {
            api,
            api_key,
            basic,
            app,
            run,
        })
    }

    /// The `Authorization` value and where it came from: `api_key`, `username` and `password`,
    /// else the job's `HEROKU_API_KEY`.
    fn authorization(&self, ctx: &DeployContext) -> Option<(Secret<String>, &'static str)> {
        use base64::Engine as _;
        if let Some(k) = &self.api_key {
            return Some((
                Secret::new(format!("Bearer {}", k.expose())),
                "the api_key option",
            ));
        }
        if let Some((u, p)) = &self.basic {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()));
            return Some((
                Secret::new(format!("Basic {pair}")),
                "username and password",
            ));
        }
        ctx.env
            .get("HEROKU_API_KEY")
            .filter(|v| !v.expose().is_empty())
            .map(|v| {
                (
                    Secret::new(format!("Bearer {}", v.expose())),
                    "the job's HEROKU_API_KEY",
                )
            })
    }

    /// The API's address: only the machine's configuration names it (dpl has no option for it).
    fn api(ctx: &DeployContext) -> Result<String, Error> {
        ctx.endpoints
            .heroku
            .as_deref()
            .map(|a| a.trim_end_matches('/').to_owned())
            .ok_or(Error::NoEndpoint {
                provider: NAME,
                service: "Platform API",
                option: None,
                key: "heroku",
            })
    }
}

/// The API client of one deploy.
struct Api<'a> {
    http: Http,
    base: String,
    authorization: &'a Secret<String>,
}

impl Api<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .send(
                method,
                &url,
                &[
                    ("Authorization", self.authorization.expose()),
                    ("Accept", "application/vnd.heroku+json; version=3"),
                    ("Content-Type", "application/json"),
                ],
                body.map(|b| b.to_string().into_bytes()),
            )
            .await
            .map_err(|e| api_error(method, path, e.to_string()))?;
        check(method, path, &resp)?;
        Ok(resp.json())
    }
}

fn check(method: &str, path: &str, resp: &Response) -> Result<(), Error> {
    if resp.ok() {
        return Ok(());
    }
    let body = resp.json();
    let why = match (body["id"].as_str(), body["message"].as_str()) {
        (Some(id), Some(m)) => format!("{id}: {m}"),
        (None, Some(m)) => m.to_owned(),
        _ => readable(&resp.body),
    };
    Err(api_error(
        method,
        path,
        format!("HTTP {}: {why}", resp.status),
    ))
}

fn api_error(method: &str, path: &str, message: String) -> Error {
    Error::Api {
        provider: NAME,
        action: format!("{method} {}", path.split('?').next().unwrap_or(path)),
        message: one_line(&message),
    }
}

/// The build dir as a gzipped tarball: `.git` left out, links stored as links (never followed).
fn source_tarball(root: &std::path::Path) -> Result<Vec<u8>, String> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let walk = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walk {
        let entry = entry.map_err(|e| e.to_string())?;
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        tar.append_path_with_name(entry.path(), rel)
            .map_err(|e| format!("{}: {e}", rel.display()))?;
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| e.to_string())
}

#[async_trait]
impl Deployer for Heroku {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        match self.authorization(ctx) {
            Some((_, from)) => from.to_owned(),
            None => "none: give api_key (secure), or set HEROKU_API_KEY".to_owned(),
        }
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let base = self.api.clone();
        let app = &self.app;
        let mut calls = vec![
            ApiCall::new(NAME, format!("GET {base}/account")),
            ApiCall::new(NAME, format!("POST {base}/apps/{app}/sources")),
            ApiCall::new(NAME, "PUT {source_blob.put_url}")
                .param("tarball", "the build dir, .git left out"),
            ApiCall::new(NAME, format!("POST {base}/apps/{app}/builds"))
                .param("source_blob.version", &ctx.commit),
            ApiCall::new(NAME, format!("GET {base}/apps/{app}/builds/{{id}}"))
                .note("until the build is no longer pending; then its output"),
        ];
        for cmd in &self.run {
            calls.push(
                ApiCall::new(NAME, format!("POST {base}/apps/{app}/dynos")).param("command", cmd),
            );
        }
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let root = ctx.build_dir(NAME)?.root().to_path_buf();
        let Some((authorization, from)) = self.authorization(ctx) else {
            return Err(option_error(NAME, "api_key", "is required (secure)"));
        };
        let http = Http::new(Tls::default()).map_err(|e| Error::Api {
            provider: NAME,
            action: "TLS setup".into(),
            message: e.to_string(),
        })?;
        let api = Api {
            http: http.clone(),
            base: self.api.clone(),
            authorization: &authorization,
        };
        let account = api.call("GET", "/account", None).await?;
        log.line(&format!(
            "heroku: authenticated as {} ({from})",
            account["email"].as_str().unwrap_or("?")
        ));
        let app = &self.app;
        let sources = api
            .call("POST", &format!("/apps/{app}/sources"), None)
            .await?;
        let (Some(put_url), Some(get_url)) = (
            sources["source_blob"]["put_url"].as_str(),
            sources["source_blob"]["get_url"].as_str(),
        ) else {
            return Err(Error::Failed {
                provider: NAME,
                message: format!("Heroku gave no source_blob URLs: {sources}"),
            });
        };
        let tarball = source_tarball(&root).map_err(|m| Error::File {
            provider: NAME,
            path: root.clone(),
            message: format!("the source tarball: {m}"),
        })?;
        log.line(&format!(
            "heroku: uploading the source ({} bytes)",
            tarball.len()
        ));
        // The blob URL is pre-signed: it carries its own authority, not the API key.
        let put = http
            .clone()
            .timeout(Duration::from_secs(600))
            .send("PUT", put_url, &[("Content-Type", "")], Some(tarball))
            .await
            .map_err(|e| api_error("PUT", "source_blob.put_url", e.to_string()))?;
        check("PUT", "source_blob.put_url", &put)?;
        let build = api
            .call(
                "POST",
                &format!("/apps/{app}/builds"),
                Some(json!({"source_blob": {"url": get_url, "version": ctx.commit}})),
            )
            .await?;
        let id = build["id"].as_str().unwrap_or_default().to_owned();
        log.line(&format!("heroku: build {id} of {app} started"));
        let started = Instant::now();
        let mut status = build;
        while status["status"] == "pending" {
            if started.elapsed() > BUILD_LIMIT {
                return Err(Error::Timeout {
                    provider: NAME,
                    what: format!("build {id} of {app}"),
                    seconds: BUILD_LIMIT.as_secs(),
                    detail: None,
                });
            }
            tokio::time::sleep(ctx.poll_interval).await;
            status = api
                .call("GET", &format!("/apps/{app}/builds/{id}"), None)
                .await?;
        }
        if let Some(stream) = status["output_stream_url"].as_str() {
            // Like the blob URL, the output stream needs no key.
            if let Ok(out) = http.send("GET", stream, &[], None).await
                && out.ok()
            {
                for line in out.text().lines() {
                    log.line(line);
                }
            }
        }
        if status["status"] != "succeeded" {
            return Err(Error::Failed {
                provider: NAME,
                message: format!(
                    "build {id} of {app} {}",
                    status["status"]
                        .as_str()
                        .unwrap_or("ended without a status")
                ),
            });
        }
        for cmd in &self.run {
            let dyno = api
                .call(
                    "POST",
                    &format!("/apps/{app}/dynos"),
                    Some(json!({"command": cmd, "attach": false})),
                )
                .await?;
            log.line(&format!(
                "heroku: `{cmd}` runs in one-off dyno {} (its output is in the app's logs)",
                dyno["name"].as_str().unwrap_or("?")
            ));
        }
        Ok(format!("build {id} of {app} succeeded"))
    }
}
