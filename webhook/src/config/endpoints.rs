//! `[endpoints]`: where the services deploys talk to live, for this server's builds.
//!
//! ```toml
//! [endpoints]
//! pypi = "https://pypi.internal/legacy/"      # pypi deploys whose `server` names none
//! npm = "https://npm.internal/"               # npm deploys without `registry` or publishConfig
//! rubygems = "https://gems.internal"          # rubygems deploys whose `host` names none
//! heroku = "https://heroku-api.internal"      # heroku's Platform API
//! packagecloud = "https://packages.internal"  # packagecloud's API
//! s3 = "http://127.0.0.1:9000"                # an S3-compatible store (path-style)
//! ```
//!
//! No package registry or hosting platform has a built-in address: a deploy whose options and
//! this table name none fails before sending anything, saying which option and which key to set.
//! The `SLIPWAY_<KEY>_ENDPOINT` variables of the server's environment win over the table, as they
//! are what `slipway run` reads.

use serde::Deserialize;

/// `[endpoints]`, each an http(s) base URL; unset means the deploy's options must name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawEndpoints")]
pub struct EndpointSettings {
    /// S3 (path-style addressing is used whenever this is set).
    pub s3: Option<String>,
    /// Elastic Beanstalk.
    pub elasticbeanstalk: Option<String>,
    /// ECS.
    pub ecs: Option<String>,
    /// The OAuth token endpoint GKE service-account keys are exchanged at.
    pub gke_token: Option<String>,
    /// The GKE (Container) API.
    pub gke_container: Option<String>,
    /// A Kubernetes API server.
    pub kubernetes: Option<String>,
    /// Where GitHub serves git, for `pages` deploys that name no `url`.
    pub github: Option<String>,
    /// Heroku's Platform API.
    pub heroku: Option<String>,
    /// packagecloud's API.
    pub packagecloud: Option<String>,
    /// The Python package index's upload API.
    pub pypi: Option<String>,
    /// The npm registry.
    pub npm: Option<String>,
    /// The gem host.
    pub rubygems: Option<String>,
}

/// `[endpoints]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEndpoints {
    s3: Option<String>,
    elasticbeanstalk: Option<String>,
    ecs: Option<String>,
    gke_token: Option<String>,
    gke_container: Option<String>,
    kubernetes: Option<String>,
    github: Option<String>,
    heroku: Option<String>,
    packagecloud: Option<String>,
    pypi: Option<String>,
    npm: Option<String>,
    rubygems: Option<String>,
}

impl TryFrom<RawEndpoints> for EndpointSettings {
    type Error = String;

    fn try_from(raw: RawEndpoints) -> Result<Self, String> {
        let check = |key: &str, v: Option<String>| -> Result<Option<String>, String> {
            match v.map(|v| v.trim().to_owned()) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) if v.starts_with("https://") || v.starts_with("http://") => Ok(Some(v)),
                Some(v) => Err(format!(
                    "[endpoints] {key} = {v:?} is not an http(s) URL; write it as \"https://HOST/...\""
                )),
            }
        };
        Ok(EndpointSettings {
            s3: check("s3", raw.s3)?,
            elasticbeanstalk: check("elasticbeanstalk", raw.elasticbeanstalk)?,
            ecs: check("ecs", raw.ecs)?,
            gke_token: check("gke_token", raw.gke_token)?,
            gke_container: check("gke_container", raw.gke_container)?,
            kubernetes: check("kubernetes", raw.kubernetes)?,
            github: check("github", raw.github)?,
            heroku: check("heroku", raw.heroku)?,
            packagecloud: check("packagecloud", raw.packagecloud)?,
            pypi: check("pypi", raw.pypi)?,
            npm: check("npm", raw.npm)?,
            rubygems: check("rubygems", raw.rubygems)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_urls_and_blank_means_unset() {
        let e: EndpointSettings =
            toml::from_str("pypi = \"http://127.0.0.1:5002/\"\nnpm = \" \"\n").unwrap();
        assert_eq!(e.pypi.as_deref(), Some("http://127.0.0.1:5002/"));
        assert_eq!(e.npm, None);
        let bad = toml::from_str::<EndpointSettings>("heroku = \"api.internal\"\n").unwrap_err();
        assert!(
            bad.to_string()
                .contains("[endpoints] heroku = \"api.internal\" is not an http(s) URL"),
            "{bad}"
        );
        let unknown = toml::from_str::<EndpointSettings>("pip = \"http://x\"\n").unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `pip`"),
            "{unknown}"
        );
    }
}
