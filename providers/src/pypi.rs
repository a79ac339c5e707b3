//! `provider: pypi`: build the project's distributions in the job and upload them, as dpl does.
//!
//! Building runs the project's `setup.py`, so it happens in the job's container (the runner runs
//! [`job_step`] there right before the deploy); the upload happens here, with the password, through
//! the repository's upload API (PyPI's "legacy" API, which pypiserver and other indexes speak
//! too): one `multipart/form-data` POST per file of `dist/`, with its core metadata.

mod dist;

use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;
use slipway_http::{Http, Tls};
use slipway_runner::DeployLog;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error, readable};
use crate::multipart::{Form, sha256_hex};
use crate::options::{Options, Text};
use dist::Dist;

const NAME: &str = "pypi";

/// Every option the pypi provider takes.
pub const OPTIONS: &[&str] = &[
    "username",
    "password",
    "server",
    "distributions",
    "docs_dir",
    "skip_existing",
    "upload_docs",
    "skip_upload_docs",
    "twine_check",
    "remove_build_dir",
    "setuptools_version",
    "twine_version",
    "wheel_version",
];

/// Typed pypi options.
#[derive(Debug)]
pub struct Pypi {
    username: Option<Text>,
    password: Option<Text>,
    server: String,
    distributions: String,
    skip_existing: bool,
    pinned: Vec<(String, String)>,
}

/// The shell text the job runs before the upload: `python setup.py DISTRIBUTIONS`, with `python`
/// when the image has it, else `python3`. `distributions` is shell text of the job (as in dpl).
pub fn job_step(options: &indexmap::IndexMap<String, Value>) -> String {
    let dist = options
        .get("distributions")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .unwrap_or("sdist");
    format!(
        "if command -v python >/dev/null 2>&1; then slipway_python=python; else slipway_python=python3; fi\necho \"pypi: $slipway_python setup.py {dist}\"\n\"$slipway_python\" setup.py {dist}"
    )
}

impl Pypi {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let username = o.text(&["username"])?;
        let password = o.text(&["password"])?;
        let ctx = o.ctx();
        let server = o.string(&["server"])?.filter(|s| !s.is_empty());
        if let Some(server) = &server
            && !server.starts_with("https://")
            && !server.starts_with("http://")
        {
            return Err(option_error(
                NAME,
                "server",
                format!("`{server}` is not an http(s) URL of an upload API"),
            ));
        }
        let distributions = o
            .string(&["distributions"])?
            .unwrap_or_else(|| "sdist".into());
        o.string(&["docs_dir"])?;
        let skip_existing = o.bool(&["skip_existing"])?.unwrap_or(false);
        if o.bool(&["upload_docs"])? == Some(true) {
            return Err(option_error(
                NAME,
                "upload_docs",
                "PyPI no longer hosts documentation; publish it with pages or s3",
            ));
        }
        o.bool(&["skip_upload_docs"])?;
        o.bool(&["twine_check"])?;
        o.bool(&["remove_build_dir"])?;
        let mut pinned = Vec::new();
        for tool in ["setuptools_version", "twine_version", "wheel_version"] {
            if let Some(v) = o.string(&[tool])? {
                pinned.push((tool.to_owned(), v));
            }
        }
        o.finish(OPTIONS)?;
        // The options are all read first, so a wrong one is named before a missing address.
        let server = server
            .or_else(|| ctx.endpoints.pypi.clone())
            .ok_or(Error::NoEndpoint {
                provider: NAME,
                service: "upload server",
                option: Some("server"),
                key: "pypi",
            })?;
        Ok(Pypi {
            username,
            password,
            server,
            distributions,
            skip_existing,
            pinned,
        })
    }

    /// `username`/`user` (default `__token__`, for API tokens) and `password`, else the job's
    /// `PYPI_USERNAME`/`PYPI_PASSWORD` (dpl v2 reads them).
    fn credentials_of(&self, ctx: &DeployContext) -> Option<(String, Text)> {
        let password = self.password.clone().or_else(|| {
            ctx.env
                .get("PYPI_PASSWORD")
                .filter(|v| !v.expose().is_empty())
                .map(Text::from)
        })?;
        let user = self
            .username
            .as_ref()
            .map(|u| u.expose().to_owned())
            .or_else(|| ctx.env.get("PYPI_USERNAME").map(|v| v.expose().to_owned()))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "__token__".to_owned());
        Some((user, password))
    }

    /// The distributions in `dist/` of the build dir, sorted.
    fn dists(&self, ctx: &DeployContext) -> Result<Vec<(PathBuf, Dist)>, Error> {
        let build = ctx.build_dir(NAME)?;
        let mut out: Vec<(PathBuf, Dist)> = build
            .glob(NAME, "distributions", "dist/*")?
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                Dist::of(&name).map(|d| (p, d))
            })
            .collect();
        out.sort_by(|a, b| a.1.file_name.cmp(&b.1.file_name));
        Ok(out)
    }

    async fn upload(
        &self,
        http: &Http,
        authorization: &str,
        path: &std::path::Path,
        dist: &Dist,
        log: &dyn DeployLog,
    ) -> Result<bool, Error> {
        let meta = dist::metadata(path, dist).map_err(|m| Error::File {
            provider: NAME,
            path: path.to_path_buf(),
            message: format!("not a distribution Slipway can upload: {m}"),
        })?;
        let bytes = std::fs::read(path).map_err(|e| Error::File {
            provider: NAME,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut form = Form::new();
        form.text(":action", "file_upload")
            .text("protocol_version", "1")
            .text("filetype", dist.filetype)
            .text("pyversion", &dist.pyversion)
            .text("sha256_digest", &sha256_hex(&bytes));
        for (field, value) in &meta.fields {
            let key = match field.to_ascii_lowercase().as_str() {
                "classifier" => "classifiers".to_owned(),
                "project-url" => "project_urls".to_owned(),
                "description" => continue,
                other => other.replace('-', "_"),
            };
            form.text(&key, value);
        }
        form.text("description", &meta.description);
        form.file(
            "content",
            &dist.file_name,
            "application/octet-stream",
            &bytes,
        );
        let (content_type, body) = form.finish();
        log.line(&format!(
            "pypi: uploading {} ({} {}, {} bytes)",
            dist.file_name,
            meta.get("Name").unwrap_or_default(),
            meta.get("Version").unwrap_or_default(),
            bytes.len()
        ));
        let resp = http
            .send(
                "POST",
                &self.server,
                &[
                    ("Authorization", authorization),
                    ("Content-Type", &content_type),
                ],
                Some(body),
            )
            .await
            .map_err(|e| api_error(&dist.file_name, e.to_string()))?;
        if resp.ok() {
            return Ok(true);
        }
        let text = readable(&resp.body);
        let exists = resp.status == 409
            || (resp.status == 400
                && (text.contains("already exist") || text.contains("updating asset")))
            || (resp.status == 403 && text.contains("overwrite artifact"));
        if exists && self.skip_existing {
            log.line(&format!(
                "pypi: {} is already on the server; skipping it (skip_existing)",
                dist.file_name
            ));
            return Ok(false);
        }
        let mut message = format!("HTTP {}", resp.status);
        if !text.is_empty() {
            message.push_str(&format!(": {text}"));
        }
        if exists {
            message.push_str(" (skip_existing: true skips files already there)");
        }
        Err(api_error(&dist.file_name, message))
    }
}

fn api_error(file: &str, message: String) -> Error {
    Error::api(NAME, format!("upload of {file}"), message)
}

#[async_trait]
impl Deployer for Pypi {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        match (&self.password, self.credentials_of(ctx)) {
            (Some(_), Some((user, _))) => format!("username {user} and the password option"),
            (None, Some((user, _))) => format!("username {user} and the job's PYPI_PASSWORD"),
            (_, None) => "none: give password (secure), or set PYPI_PASSWORD".to_owned(),
        }
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls = vec![
            ApiCall::new("job", format!("python setup.py {}", self.distributions))
                .note("in the job's container, before the upload"),
        ];
        let upload = |file: &str| {
            ApiCall::new("pypi", format!("POST {}", self.server))
                .param(":action", "file_upload")
                .param("file", file)
        };
        match self.dists(ctx) {
            Ok(found) if !found.is_empty() => {
                for (_, d) in &found {
                    calls.push(
                        upload(&d.file_name)
                            .param("filetype", d.filetype)
                            .param("pyversion", &d.pyversion),
                    );
                }
                calls.push(upload("dist/*").note("and whatever else the build adds to dist/"));
            }
            Ok(_) => calls.push(upload("dist/*").note("each distribution the build makes")),
            Err(e) => calls.push(upload("dist/*").note(format!("nothing: {}", e.one_line()))),
        }
        if self.skip_existing
            && let Some(last) = calls.last_mut()
        {
            last.params.push(("skip_existing".into(), "true".into()));
        }
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        for (tool, version) in &self.pinned {
            log.line(&format!(
                "pypi: {tool} {version} has no effect: the job's own tools built the distributions"
            ));
        }
        let found = self.dists(ctx)?;
        if found.is_empty() {
            return Err(Error::Failed {
                provider: NAME,
                message: format!(
                    "dist/ holds no distribution after `python setup.py {}`",
                    self.distributions
                ),
            });
        }
        let Some((user, password)) = self.credentials_of(ctx) else {
            return Err(option_error(
                NAME,
                "password",
                "is required (secure): a PyPI API token (username __token__) or the account's password",
            ));
        };
        log.line(&format!("pypi: uploading to {} as {user}", self.server));
        let basic = slipway_secrets::Secret::new(base64_basic(&user, password.expose()));
        let http = Http::new(Tls::default())
            .map_err(|e| api_error("dist/*", e.to_string()))?
            .timeout(std::time::Duration::from_secs(600));
        let mut uploaded = 0;
        for (path, d) in &found {
            if self.upload(&http, basic.expose(), path, d, log).await? {
                uploaded += 1;
            }
        }
        Ok(format!(
            "uploaded {uploaded} of {} distribution(s) to {}",
            found.len(),
            self.server
        ))
    }
}

/// `Basic base64(user:password)`.
fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
