//! `provider: packagecloud`: upload the build's packages to a packagecloud repository, as dpl does.
//!
//! Steps: `GET /api/v1/distributions.json` (when a package needs a distribution: `.deb`, `.rpm`,
//! `.dsc`, to turn `dist: ubuntu/xenial` into packagecloud's id) → for each package of
//! `local_dir` matching `package_glob`: with `force`, `DELETE` (yank) the one already there →
//! `POST /api/v1/repos/USER/REPO/packages.json` as `multipart/form-data`
//! (`package[distro_version_id]`, `package[package_file]`). The token is the Basic user name.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use slipway_http::{Http, Tls};
use slipway_runner::DeployLog;
use slipway_secrets::Secret;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error, readable};
use crate::multipart::Form;
use crate::options::{Options, Text};

const NAME: &str = "packagecloud";

/// Every option the packagecloud provider takes.
pub const OPTIONS: &[&str] = &[
    "username",
    "token",
    "repository",
    "local_dir",
    "dist",
    "package_glob",
    "force",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
];

/// Package types packagecloud takes, and whether they need a distribution.
const TYPES: &[(&str, bool)] = &[
    (".deb", true),
    (".rpm", true),
    (".dsc", true),
    (".gem", false),
    (".whl", false),
    (".egg", false),
    (".tar.gz", false),
    (".zip", false),
    (".tar.bz2", false),
    (".jar", false),
    (".aar", false),
    (".war", false),
    (".apk", true),
];

/// Typed packagecloud options.
#[derive(Debug)]
pub struct Packagecloud {
    username: String,
    token: Option<Text>,
    repository: String,
    local_dir: String,
    dist: Option<String>,
    globs: Vec<String>,
    force: bool,
    limit: Duration,
    /// The API's base URL, without a trailing slash.
    api: String,
}

impl Packagecloud {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let ctx = o.ctx();
        let username = o.required(&["username"])?;
        let token = o.text(&["token"])?;
        let repository = o.required(&["repository"])?;
        let local_dir = o.string(&["local_dir"])?.unwrap_or_else(|| ".".into());
        let dist = o.string(&["dist"])?.filter(|d| !d.is_empty());
        if let Some(d) = &dist
            && d.split('/').count() != 2
        {
            return Err(option_error(
                NAME,
                "dist",
                format!("`{d}` is not OS/VERSION, e.g. ubuntu/xenial or el/7"),
            ));
        }
        let mut globs = o.strings(&["package_glob"])?;
        if globs.is_empty() {
            globs.push("**/*".into());
        }
        let force = o.bool(&["force"])?.unwrap_or(false);
        let mut limit = Duration::from_secs(600);
        for t in ["connect_timeout", "read_timeout", "write_timeout"] {
            if let Some(s) = o.u64(&[t])? {
                limit = limit.max(Duration::from_secs(s));
            }
        }
        o.finish(OPTIONS)?;
        let api = Self::api(ctx)?;
        Ok(Packagecloud {
            api,
            username,
            token,
            repository,
            local_dir,
            dist,
            globs,
            force,
            limit,
        })
    }

    /// The API's address: only the machine's configuration names it (dpl has no option for it).
    fn api(ctx: &DeployContext) -> Result<String, Error> {
        ctx.endpoints
            .packagecloud
            .as_deref()
            .map(|a| a.trim_end_matches('/').to_owned())
            .ok_or(Error::NoEndpoint {
                provider: NAME,
                service: "API",
                option: None,
                key: "packagecloud",
            })
    }

    /// The packages: files of `local_dir` matching `package_glob`, of a type packagecloud takes.
    fn packages(&self, ctx: &DeployContext) -> Result<Vec<(PathBuf, String, bool)>, Error> {
        let build = ctx.build_dir(NAME)?;
        let dir = self.local_dir.trim_end_matches('/');
        let mut out: Vec<(PathBuf, String, bool)> = Vec::new();
        for glob in &self.globs {
            for path in build.glob(NAME, "package_glob", &format!("{dir}/{glob}"))? {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let lower = name.to_ascii_lowercase();
                let Some((_, needs_dist)) = TYPES.iter().find(|(ext, _)| lower.ends_with(ext))
                else {
                    continue;
                };
                if !out.iter().any(|(p, _, _)| *p == path) {
                    out.push((path, name, *needs_dist));
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    fn token_of(&self, ctx: &DeployContext) -> Option<(Secret<String>, &'static str)> {
        if let Some(t) = &self.token {
            return Some((t.clone().into_secret(), "the token option"));
        }
        ctx.env
            .get("PACKAGECLOUD_TOKEN")
            .filter(|v| !v.expose().is_empty())
            .map(|v| {
                (
                    Secret::new(v.expose().to_owned()),
                    "the job's PACKAGECLOUD_TOKEN",
                )
            })
    }
}

/// packagecloud's id of `dist` (`ubuntu/xenial`) in its distributions list.
fn distro_id(list: &Value, dist: &str) -> Option<u64> {
    let (os, version) = dist.split_once('/')?;
    list.as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter(|d| d["index_name"] == os)
        .flat_map(|d| d["versions"].as_array().cloned().unwrap_or_default())
        .find(|v| v["index_name"] == version)
        .and_then(|v| v["id"].as_u64())
}

#[async_trait]
impl Deployer for Packagecloud {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        match self.token_of(ctx) {
            Some((_, from)) => from.to_owned(),
            None => "none: give token (secure), or set PACKAGECLOUD_TOKEN".to_owned(),
        }
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let base = self.api.clone();
        let repo = format!("{}/{}", self.username, self.repository);
        let mut calls = Vec::new();
        if let Some(d) = &self.dist {
            calls.push(
                ApiCall::new(NAME, format!("GET {base}/api/v1/distributions.json"))
                    .param("dist", d),
            );
        }
        let post = |file: &str| {
            let mut c = ApiCall::new(
                NAME,
                format!("POST {base}/api/v1/repos/{repo}/packages.json"),
            )
            .param("package_file", file);
            if self.force {
                c = c.note("the package already there is yanked first (force)");
            }
            c
        };
        match self.packages(ctx) {
            Ok(found) if !found.is_empty() => {
                calls.extend(found.iter().map(|(_, name, _)| post(name)));
            }
            Ok(_) => calls.push(post(&format!(
                "{}/{}",
                self.local_dir,
                self.globs.join(",")
            ))),
            Err(e) => calls.push(post(&self.local_dir).note(format!("nothing: {}", e.one_line()))),
        }
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let found = self.packages(ctx)?;
        if found.is_empty() {
            return Err(Error::Failed {
                provider: NAME,
                message: format!(
                    "no package in {} matches {}",
                    self.local_dir,
                    self.globs.join(", ")
                ),
            });
        }
        let Some((token, from)) = self.token_of(ctx) else {
            return Err(option_error(NAME, "token", "is required (secure)"));
        };
        use base64::Engine as _;
        let auth = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", token.expose()))
        ));
        let http = Http::new(Tls::default())
            .map_err(|e| Error::api(NAME, "TLS setup", e.to_string()))?
            .timeout(self.limit);
        let base = self.api.clone();
        let repo = format!("{}/{}", self.username, self.repository);
        log.line(&format!(
            "packagecloud: {} package(s) to {repo}, credentials from {from}",
            found.len()
        ));
        let send = |method: &'static str,
                    path: String,
                    headers: Vec<(&'static str, String)>,
                    body: Option<Vec<u8>>| {
            let http = http.clone();
            let auth = auth.clone();
            let url = format!("{base}{path}");
            async move {
                let mut h: Vec<(&str, &str)> = vec![("Authorization", auth.expose())];
                h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
                http.send(method, &url, &h, body)
                    .await
                    .map_err(|e| Error::api(NAME, format!("{method} {path}"), e.to_string()))
                    .and_then(|r| {
                        if r.ok() {
                            Ok(r)
                        } else {
                            Err(Error::api(
                                NAME,
                                format!("{method} {path}"),
                                format!("HTTP {}: {}", r.status, readable(&r.body)),
                            ))
                        }
                    })
            }
        };
        let distro = match (&self.dist, found.iter().any(|(_, _, d)| *d)) {
            (Some(d), _) => {
                let list = send("GET", "/api/v1/distributions.json".into(), vec![], None)
                    .await?
                    .json();
                Some(distro_id(&list, d).ok_or_else(|| {
                    option_error(
                        NAME,
                        "dist",
                        format!("packagecloud knows no distribution {d}"),
                    )
                })?)
            }
            (None, true) => {
                return Err(option_error(
                    NAME,
                    "dist",
                    "is required for .deb, .rpm and .dsc packages (e.g. ubuntu/xenial)",
                ));
            }
            (None, false) => None,
        };
        for (path, name, needs_dist) in &found {
            if self.force
                && let Some(d) = &self.dist
            {
                let yank = format!("/api/v1/repos/{repo}/{d}/{name}");
                match send("DELETE", yank, vec![], None).await {
                    Ok(_) => log.line(&format!("packagecloud: yanked the {name} already there")),
                    Err(Error::Api { message, .. }) if message.starts_with("HTTP 404") => {}
                    Err(e) => return Err(e),
                }
            }
            let bytes = std::fs::read(path).map_err(|e| Error::File {
                provider: NAME,
                path: path.clone(),
                message: e.to_string(),
            })?;
            let mut form = Form::new();
            if let (Some(id), true) = (distro, needs_dist) {
                form.text("package[distro_version_id]", &id.to_string());
            }
            form.file(
                "package[package_file]",
                name,
                "application/octet-stream",
                &bytes,
            );
            let (content_type, body) = form.finish();
            log.line(&format!(
                "packagecloud: uploading {name} ({} bytes)",
                bytes.len()
            ));
            send(
                "POST",
                format!("/api/v1/repos/{repo}/packages.json"),
                vec![("Content-Type", content_type)],
                Some(body),
            )
            .await?;
        }
        Ok(format!("uploaded {} package(s) to {repo}", found.len()))
    }
}
