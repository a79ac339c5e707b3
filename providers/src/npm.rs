//! `provider: npm`: pack the package in the job and publish it to the registry, as `npm publish`
//! does.
//!
//! Packing runs the package's own `prepack`/`prepare` scripts, so it happens in the job's
//! container: the runner runs [`job_step`] (`npm pack` into [`PACK_DIR`]) right before the deploy.
//! The publish happens here, with the token: one `PUT {registry}/{name}` of the package document
//! npm sends (the manifest as version `VERSION`, the dist-tag, and the tarball as a base64
//! attachment with its SHA-1 and SHA-512 integrity).

use std::io::Read;
use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use slipway_http::{Http, Tls};
use slipway_runner::DeployLog;
use slipway_runner::script::sh_quote;
use slipway_secrets::Secret;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error, readable};
use crate::options::{Options, Text};

const NAME: &str = "npm";

/// A publish to no registry: neither the option, the package's `publishConfig` nor the
/// machine's configuration names one.
const NO_REGISTRY: Error = Error::NoEndpoint {
    provider: NAME,
    service: "registry",
    option: Some("registry"),
    key: "npm",
};

/// Where the job step packs the tarball, relative to the build dir (emptied first).
pub const PACK_DIR: &str = ".slipway-npm-pack";

/// Every option the npm provider takes.
pub const OPTIONS: &[&str] = &[
    "email",
    "api_token",
    "access",
    "registry",
    "src",
    "tag",
    "auth_method",
];

/// Typed npm options.
#[derive(Debug)]
pub struct Npm {
    token: Option<Text>,
    access: Option<String>,
    registry: Option<String>,
    src: String,
    tag: Option<String>,
    basic: bool,
}

/// The job's shell text: `npm pack` of `src` (default `.`) into [`PACK_DIR`].
pub fn job_step(options: &indexmap::IndexMap<String, Value>) -> String {
    let src = options
        .get("src")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(".");
    format!(
        "rm -rf \"$TRAVIS_BUILD_DIR/{PACK_DIR}\" && mkdir -p \"$TRAVIS_BUILD_DIR/{PACK_DIR}\" && echo \"npm: npm pack {src}\" && npm pack {} --pack-destination \"$TRAVIS_BUILD_DIR/{PACK_DIR}\"",
        sh_quote(src)
    )
}

impl Npm {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        o.text(&["email"])?;
        let token = o.text(&["api_token"])?;
        let access = o.string(&["access"])?;
        if let Some(a) = &access
            && a != "public"
            && a != "restricted"
        {
            return Err(option_error(
                NAME,
                "access",
                format!("`{a}` is not public or restricted"),
            ));
        }
        let registry = o.string(&["registry"])?.filter(|r| !r.is_empty());
        let src = o.string(&["src"])?.unwrap_or_else(|| ".".into());
        let tag = o.string(&["tag"])?.filter(|t| !t.is_empty());
        let basic = match o.string(&["auth_method"])?.as_deref() {
            None | Some("token") => false,
            Some("auth") => true,
            Some(other) => {
                return Err(option_error(
                    NAME,
                    "auth_method",
                    format!("`{other}` is not token or auth"),
                ));
            }
        };
        o.finish(OPTIONS)?;
        Ok(Npm {
            token,
            access,
            registry,
            src,
            tag,
            basic,
        })
    }

    /// `api_token`, else the job's `NPM_TOKEN` (dpl v2 reads `NPM_API_TOKEN`; both work).
    fn token_of(&self, ctx: &DeployContext) -> Option<(Secret<String>, &'static str)> {
        if let Some(t) = &self.token {
            return Some((t.clone().into_secret(), "the api_token option"));
        }
        for var in ["NPM_API_TOKEN", "NPM_TOKEN"] {
            if let Some(v) = ctx.env.get(var).filter(|v| !v.expose().is_empty()) {
                return Some((
                    Secret::new(v.expose().to_owned()),
                    if var == "NPM_TOKEN" {
                        "the job's NPM_TOKEN"
                    } else {
                        "the job's NPM_API_TOKEN"
                    },
                ));
            }
        }
        None
    }

    /// The tarball `npm pack` made.
    fn tarball(&self, ctx: &DeployContext) -> Result<PathBuf, Error> {
        let found = ctx
            .build_dir(NAME)?
            .glob(NAME, "src", &format!("{PACK_DIR}/*.tgz"))?;
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::Failed {
                provider: NAME,
                message: format!("`npm pack {}` left no tarball in {PACK_DIR}", self.src),
            }),
            _ => Err(Error::Failed {
                provider: NAME,
                message: format!("{PACK_DIR} holds more than one tarball"),
            }),
        }
    }
}

/// `package/package.json` of a packed tarball.
fn manifest(bytes: &[u8]) -> Result<Value, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path == std::path::Path::new("package/package.json") {
            let mut text = String::new();
            entry
                .take(4 << 20)
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            return serde_json::from_str(&text).map_err(|e| format!("package.json: {e}"));
        }
    }
    Err("it holds no package/package.json".into())
}

/// The registry's URL path of a package: a scoped name's `/` escaped, as npm does.
fn package_path(name: &str) -> String {
    name.replace('/', "%2f")
}

#[async_trait]
impl Deployer for Npm {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        match self.token_of(ctx) {
            Some((_, from)) => from.to_owned(),
            None => "none: give api_token (secure), or set NPM_TOKEN".to_owned(),
        }
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let registry = match self.registry.as_ref().or(ctx.endpoints.npm.as_ref()) {
            Some(r) => with_slash(r),
            None => "{publishConfig.registry}".to_owned(),
        };
        let mut publish = ApiCall::new(NAME, format!("PUT {registry}{{name}}"))
            .param("dist-tag", self.tag.as_deref().unwrap_or("latest"));
        if let Some(a) = &self.access {
            publish = publish.param("access", a);
        }
        let mut note = "the packed version, its tarball attached".to_owned();
        if self.registry.is_none() && ctx.endpoints.npm.is_none() {
            note.push_str(&format!(
                "; only if the package's publishConfig.registry names one, else {NO_REGISTRY}"
            ));
        }
        vec![
            ApiCall::new("job", format!("npm pack {}", self.src))
                .note("in the job's container, before the publish"),
            publish.note(note),
        ]
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let path = self.tarball(ctx)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::File {
            provider: NAME,
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut version_doc = manifest(&bytes).map_err(|m| Error::File {
            provider: NAME,
            path: path.clone(),
            message: format!("not an npm package tarball: {m}"),
        })?;
        let (Some(name), Some(version)) = (
            version_doc["name"].as_str().map(str::to_owned),
            version_doc["version"].as_str().map(str::to_owned),
        ) else {
            return Err(Error::Failed {
                provider: NAME,
                message: "package.json names no name and version".into(),
            });
        };
        if version_doc["private"] == true {
            return Err(Error::Failed {
                provider: NAME,
                message: format!(
                    "{name} is private (package.json \"private\": true): npm refuses to publish it"
                ),
            });
        }
        let publish = &version_doc["publishConfig"];
        let registry = with_slash(
            self.registry
                .as_deref()
                .or(publish["registry"].as_str())
                .or(ctx.endpoints.npm.as_deref())
                .ok_or(NO_REGISTRY)?,
        );
        let tag = self
            .tag
            .clone()
            .or_else(|| publish["tag"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "latest".into());
        let access = self
            .access
            .clone()
            .or_else(|| publish["access"].as_str().map(str::to_owned));
        let Some((token, from)) = self.token_of(ctx) else {
            return Err(option_error(NAME, "api_token", "is required (secure)"));
        };
        let file = format!(
            "{}-{version}.tgz",
            name.trim_start_matches('@').replace('/', "-")
        );
        let shasum = crate::multipart::hex(&sha1::Sha1::digest(&bytes));
        let integrity = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&bytes))
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        version_doc["_id"] = json!(format!("{name}@{version}"));
        version_doc["dist"] = json!({
            "shasum": shasum,
            "integrity": integrity,
            "tarball": format!("{registry}{name}/-/{file}"),
        });
        let body = json!({
            "_id": name,
            "name": name,
            "description": version_doc["description"],
            "dist-tags": {tag.clone(): version},
            "versions": {version.clone(): version_doc},
            "access": access,
            "_attachments": {file.clone(): {
                "content_type": "application/octet-stream",
                "data": b64,
                "length": bytes.len(),
            }},
        });
        log.line(&format!(
            "npm: publishing {name}@{version} ({} bytes) to {registry} with dist-tag {tag}, credentials from {from}",
            bytes.len()
        ));
        let authorization = Secret::new(if self.basic {
            format!("Basic {}", token.expose())
        } else {
            format!("Bearer {}", token.expose())
        });
        let url = format!("{registry}{}", package_path(&name));
        let resp = Http::new(Tls::default())
            .map_err(|e| api_error(&name, e.to_string()))?
            .timeout(std::time::Duration::from_secs(600))
            .send(
                "PUT",
                &url,
                &[
                    ("Authorization", authorization.expose()),
                    ("Content-Type", "application/json"),
                    ("npm-command", "publish"),
                ],
                Some(body.to_string().into_bytes()),
            )
            .await
            .map_err(|e| api_error(&name, e.to_string()))?;
        if !resp.ok() {
            let answer = resp.json();
            let why = answer["error"]
                .as_str()
                .or(answer["message"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| readable(&resp.body));
            return Err(api_error(&name, format!("HTTP {}: {why}", resp.status)));
        }
        Ok(format!("published {name}@{version} to {registry} ({tag})"))
    }
}

fn with_slash(url: &str) -> String {
    format!("{}/", url.trim_end_matches('/'))
}

fn api_error(name: &str, message: String) -> Error {
    Error::api(NAME, format!("publish of {name}"), message)
}
