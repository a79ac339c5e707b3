//! `provider: rubygems`: build the gem in the job and push it, as dpl does.
//!
//! `gem build` evaluates the gemspec (Ruby code of the project), so the job does it: the runner runs
//! [`job_step`] right before the deploy. The push happens here, with the key: each
//! `GEM-VERSION.gem` of the build dir is sent to `POST {host}/api/v1/gems` with
//! `Authorization: KEY`, as `gem push` does.

use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;
use slipway_http::{Http, Tls};
use slipway_runner::DeployLog;
use slipway_runner::script::sh_quote;
use slipway_secrets::Secret;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error, readable};
use crate::options::{Options, Text};

const NAME: &str = "rubygems";

/// Every option the rubygems provider takes.
pub const OPTIONS: &[&str] = &[
    "api_key",
    "username",
    "password",
    "gem",
    "gemspec",
    "gemspec_glob",
    "host",
];

/// Typed rubygems options.
#[derive(Debug)]
pub struct Rubygems {
    api_key: Option<Text>,
    basic: Option<(String, Text)>,
    gem: String,
    gemspec: String,
    host: String,
}

/// The job's shell text: `gem build` of each gemspec (`gemspec_glob`, else `gemspec`, else
/// `GEM.gemspec`; `gem` defaults to the repository's name, `$TRAVIS_REPO_SLUG`'s).
pub fn job_step(options: &indexmap::IndexMap<String, Value>) -> String {
    let text = |k: &str| {
        options
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let specs = match (text("gemspec_glob"), text("gemspec"), text("gem")) {
        // A glob is left to the shell to expand.
        (Some(glob), _, _) => glob.to_owned(),
        (None, Some(spec), _) => sh_quote(spec),
        (None, None, Some(gem)) => sh_quote(&format!("{gem}.gemspec")),
        (None, None, None) => "\"${TRAVIS_REPO_SLUG##*/}.gemspec\"".to_owned(),
    };
    format!(
        "for slipway_gemspec in {specs}; do echo \"rubygems: gem build $slipway_gemspec\"; gem build \"$slipway_gemspec\" || exit 1; done"
    )
}

impl Rubygems {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let ctx = o.ctx();
        let api_key = o.text(&["api_key"])?;
        let basic = o.user_password()?;
        let gem = o
            .string(&["gem"])?
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| ctx.repo_name().to_owned());
        let gemspec = o
            .string(&["gemspec"])?
            .unwrap_or_else(|| format!("{gem}.gemspec"));
        o.string(&["gemspec_glob"])?;
        let host = o.string(&["host"])?.filter(|h| !h.is_empty());
        o.finish(OPTIONS)?;
        // The options are all read first, so a wrong one is named before a missing address.
        let host = host
            .or_else(|| ctx.endpoints.rubygems.clone())
            .ok_or(Error::NoEndpoint {
                provider: NAME,
                service: "gem host",
                option: Some("host"),
                key: "rubygems",
            })?
            .trim_end_matches('/')
            .to_owned();
        Ok(Rubygems {
            api_key,
            basic,
            gem,
            gemspec,
            host,
        })
    }

    /// The built gems: `GEM-*.gem` at the top of the build dir, sorted.
    fn gems(&self, ctx: &DeployContext) -> Result<Vec<PathBuf>, Error> {
        let mut found = ctx
            .build_dir(NAME)?
            .glob(NAME, "gem", &format!("{}-*.gem", self.gem))?;
        found.sort();
        Ok(found)
    }

    fn credentials_of(&self, ctx: &DeployContext) -> Option<&'static str> {
        if self.api_key.is_some() {
            Some("the api_key option")
        } else if self.basic.is_some() {
            Some("username and password (the key is fetched)")
        } else if ctx.env.contains_key("RUBYGEMS_API_KEY") {
            Some("the job's RUBYGEMS_API_KEY")
        } else {
            None
        }
    }

    /// The API key: the option, the one the account's username and password fetch, or the
    /// job's `RUBYGEMS_API_KEY`.
    async fn key(&self, http: &Http, ctx: &DeployContext) -> Result<Secret<String>, Error> {
        if let Some(k) = &self.api_key {
            return Ok(k.clone().into_secret());
        }
        if let Some((user, password)) = &self.basic {
            use base64::Engine as _;
            let basic = Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()))
            ));
            let url = format!("{}/api/v1/api_key", self.host);
            let resp = http
                .send("GET", &url, &[("Authorization", basic.expose())], None)
                .await
                .map_err(|e| Error::api(NAME, "GET /api/v1/api_key", e.to_string()))?;
            if !resp.ok() {
                return Err(Error::api(
                    NAME,
                    "GET /api/v1/api_key",
                    format!("HTTP {}: {}", resp.status, readable(&resp.body)),
                ));
            }
            return Ok(Secret::new(resp.text().trim().to_owned()));
        }
        match ctx.env.get("RUBYGEMS_API_KEY") {
            Some(v) if !v.expose().is_empty() => Ok(Secret::new(v.expose().to_owned())),
            _ => Err(option_error(
                NAME,
                "api_key",
                "is required (secure), or username and password",
            )),
        }
    }
}

#[async_trait]
impl Deployer for Rubygems {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        self.credentials_of(ctx)
            .unwrap_or("none: give api_key (secure), or set RUBYGEMS_API_KEY")
            .to_owned()
    }

    fn dry_run(&self, _ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls = vec![
            ApiCall::new("job", format!("gem build {}", self.gemspec))
                .note("in the job's container, before the push"),
        ];
        if self.basic.is_some() {
            calls.push(ApiCall::new(
                NAME,
                format!("GET {}/api/v1/api_key", self.host),
            ));
        }
        calls.push(
            ApiCall::new(NAME, format!("POST {}/api/v1/gems", self.host))
                .param("gem", format!("{}-*.gem", self.gem))
                .note("each gem the build makes"),
        );
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let gems = self.gems(ctx)?;
        if gems.is_empty() {
            return Err(Error::Failed {
                provider: NAME,
                message: format!(
                    "no {}-*.gem in the build dir after `gem build {}`",
                    self.gem, self.gemspec
                ),
            });
        }
        let http = Http::new(Tls::default())
            .map_err(|e| Error::api(NAME, "TLS setup", e.to_string()))?
            .timeout(std::time::Duration::from_secs(600));
        let key = self.key(&http, ctx).await?;
        let url = format!("{}/api/v1/gems", self.host);
        for gem in &gems {
            let file = gem
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(gem).map_err(|e| Error::File {
                provider: NAME,
                path: gem.clone(),
                message: e.to_string(),
            })?;
            log.line(&format!(
                "rubygems: pushing {file} ({} bytes) to {}",
                bytes.len(),
                self.host
            ));
            let resp = http
                .send(
                    "POST",
                    &url,
                    &[
                        ("Authorization", key.expose()),
                        ("Content-Type", "application/octet-stream"),
                    ],
                    Some(bytes),
                )
                .await
                .map_err(|e| Error::api(NAME, format!("push of {file}"), e.to_string()))?;
            let answer = readable(&resp.body);
            if !resp.ok() {
                return Err(Error::api(
                    NAME,
                    format!("push of {file}"),
                    format!("HTTP {}: {answer}", resp.status),
                ));
            }
            log.line(&format!("rubygems: {answer}"));
        }
        Ok(format!("pushed {} gem(s) to {}", gems.len(), self.host))
    }
}
