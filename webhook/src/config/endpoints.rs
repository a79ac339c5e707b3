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

/// Declares `[endpoints]` from one list of its keys: the settings, the table as written (unknown
/// keys refused) and the check that each value is an http(s) URL.
macro_rules! endpoints {
    ($($(#[$doc:meta])* $key:ident,)*) => {
        /// `[endpoints]`, each an http(s) base URL; unset means the deploy's options must name it.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "RawEndpoints")]
        pub struct EndpointSettings {
            $($(#[$doc])* pub $key: Option<String>,)*
        }

        /// `[endpoints]` as written.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct RawEndpoints {
            $($key: Option<String>,)*
        }

        impl TryFrom<RawEndpoints> for EndpointSettings {
            type Error = String;

            fn try_from(raw: RawEndpoints) -> Result<Self, String> {
                Ok(EndpointSettings {
                    $($key: url(stringify!($key), raw.$key)?,)*
                })
            }
        }
    };
}

endpoints! {
    /// S3 (path-style addressing is used whenever this is set).
    s3,
    /// Elastic Beanstalk.
    elasticbeanstalk,
    /// ECS.
    ecs,
    /// The GKE (Container) API.
    gke_container,
    /// A Kubernetes API server.
    kubernetes,
    /// Where GitHub serves git, for `pages` deploys that name no `url`.
    github,
    /// Heroku's Platform API.
    heroku,
    /// packagecloud's API.
    packagecloud,
    /// The Python package index's upload API.
    pypi,
    /// The npm registry.
    npm,
    /// The gem host.
    rubygems,
}

/// The value of `key`: blank is unset, anything else must be an http(s) URL.
fn url(key: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.starts_with("https://") || v.starts_with("http://") => Ok(Some(v)),
        Some(v) => Err(format!(
            "[endpoints] {key} = {v:?} is not an http(s) URL; write it as \"https://HOST/...\""
        )),
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
