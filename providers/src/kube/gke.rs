//! `gke`: a service-account key exchanged for an access token (the OAuth JWT bearer grant of
//! RFC 7523, at the token endpoint the key itself names), and the cluster's address and CA
//! certificate from the GKE API. No Google address is built in: the token endpoint is the key's
//! `token_uri`, and the APIs' domain is the key's `universe_domain` (older keys, which lack it,
//! name it through their token endpoint `oauth2.DOMAIN`).

use std::path::Path;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use slipway_secrets::Secret;

use super::Kubernetes;
use super::access::Target;
use crate::context::DeployContext;
use crate::error::Error;
use crate::http::{Http, Tls};
use slipway_runner::DeployLog;

/// The pieces of a Google service-account key the token exchange needs.
pub(super) struct ServiceAccount {
    pub(super) client_email: String,
    private_key: Secret<String>,
    pub(super) token_uri: String,
    universe: Option<String>,
}

/// Why a service-account key cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum KeyError {
    /// The file could not be read.
    #[error("{0}")]
    Read(#[from] std::io::Error),
    /// The file is not JSON.
    #[error("not a JSON service-account key")]
    NotJson,
    /// The JSON is some other kind of key.
    #[error("not a service-account key (type is not service_account)")]
    NotServiceAccount,
    /// A field the exchange needs is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// Neither `universe_domain` nor the token endpoint says which APIs the key is for.
    #[error(
        "universe_domain is missing and token_uri {0} is not an oauth2.DOMAIN address: add universe_domain (the domain of the APIs the key is for) to the key"
    )]
    NoUniverse(String),
    /// `private_key` is not an RSA private key in PEM.
    #[error("private_key is not a PEM RSA private key ({0})")]
    Key(jsonwebtoken::errors::Error),
    /// The key parsed but could not sign.
    #[error("signing the token request failed: private_key is not a usable RSA key ({0})")]
    Sign(jsonwebtoken::errors::Error),
}

pub(super) fn read_key_file(path: &Path) -> Result<ServiceAccount, KeyError> {
    let bytes = std::fs::read(path)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| KeyError::NotJson)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if s("type").as_deref() != Some("service_account") {
        return Err(KeyError::NotServiceAccount);
    }
    Ok(ServiceAccount {
        client_email: s("client_email").ok_or(KeyError::Missing("client_email"))?,
        private_key: Secret::new(s("private_key").ok_or(KeyError::Missing("private_key"))?),
        token_uri: s("token_uri").ok_or(KeyError::Missing("token_uri"))?,
        universe: s("universe_domain").filter(|u| !u.trim().is_empty()),
    })
}

impl ServiceAccount {
    /// The domain of the APIs the key is for.
    pub(super) fn universe(&self) -> Result<String, KeyError> {
        if let Some(u) = &self.universe {
            return Ok(u.clone());
        }
        let host = self
            .token_uri
            .split_once("://")
            .map_or("", |(_, rest)| rest.split(['/', ':']).next().unwrap_or(""));
        match host.strip_prefix("oauth2.") {
            Some(domain) if domain.contains('.') => Ok(domain.to_owned()),
            _ => Err(KeyError::NoUniverse(self.token_uri.clone())),
        }
    }

    /// The OAuth scope of the whole cloud platform, in the key's universe.
    fn scope(&self) -> Result<String, KeyError> {
        Ok(format!(
            "https://www.{}/auth/cloud-platform",
            self.universe()?
        ))
    }
}

/// The claims of the OAuth JWT-bearer assertion the token endpoint reads.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The signed JWT assertion of the OAuth JWT-bearer flow (RFC 7523), RS256, valid for an hour;
/// its audience is the key's token endpoint.
pub(super) fn jwt_assertion(sa: &ServiceAccount, now: u64) -> Result<String, KeyError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(sa.private_key.expose().as_bytes())
        .map_err(KeyError::Key)?;
    let scope = sa.scope()?;
    let claims = Claims {
        iss: &sa.client_email,
        scope: &scope,
        aud: &sa.token_uri,
        iat: now,
        exp: now + 3600,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(KeyError::Sign)
}

impl Kubernetes {
    /// Exchanges the key for a token and looks the cluster up: the API server to talk to.
    pub(super) async fn gke_target(
        &self,
        ctx: &DeployContext,
        gke: &super::GkeCluster,
        log: &dyn DeployLog,
    ) -> Result<Target, Error> {
        let key_path = ctx.input(self.name, "key_file", &gke.key_file)?;
        let key_err = |e: KeyError| self.file_err(&key_path, e.to_string());
        let sa = read_key_file(&key_path).map_err(key_err)?;
        let assertion = jwt_assertion(&sa, ctx.now).map_err(key_err)?;
        let api = match &ctx.endpoints.gke_container {
            Some(api) => api.clone(),
            None => format!("https://container.{}", sa.universe().map_err(key_err)?),
        };
        let http = Http::new(Tls::default()).map_err(|m| self.api_err("TLS setup", m))?;
        let token = self
            .exchange(&http, &sa.token_uri, &assertion, &sa.client_email)
            .await?;
        log.line(&format!("gke: signed in as {}", sa.client_email));
        let url = format!("{}/v1/{}", api.trim_end_matches('/'), gke.resource());
        let bearer = Secret::new(format!("Bearer {}", token.expose()));
        let r = http
            .send("GET", &url, &[("Authorization", bearer.expose())], None)
            .await
            .map_err(|m| self.api_err("GetCluster", m))?;
        let v = r.json();
        if !r.ok() {
            let msg = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(self.api_err("GetCluster", format!("HTTP {}: {msg}", r.status)));
        }
        let endpoint = v
            .get("endpoint")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty());
        let (server, ca) = match (&ctx.endpoints.kubernetes, endpoint) {
            (Some(url), _) => (url.clone(), None),
            (None, Some(e)) => (
                format!("https://{e}"),
                v.pointer("/masterAuth/clusterCaCertificate")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            ),
            (None, None) => {
                let status = v.get("status").and_then(Value::as_str).unwrap_or("unknown");
                return Err(self.api_err(
                    "GetCluster",
                    format!(
                        "cluster {} has no endpoint yet (status {status})",
                        gke.cluster
                    ),
                ));
            }
        };
        log.line(&format!(
            "gke: cluster {} in {} at {server}",
            gke.cluster, gke.location
        ));
        Ok(Target::token(server, ca, token))
    }

    /// The JWT bearer grant: the signed assertion for an access token.
    async fn exchange(
        &self,
        http: &Http,
        token_url: &str,
        assertion: &str,
        client_email: &str,
    ) -> Result<Secret<String>, Error> {
        let form = format!(
            "grant_type={}&assertion={assertion}",
            utf8_percent_encode(
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                NON_ALPHANUMERIC
            ),
        );
        let r = http
            .send(
                "POST",
                token_url,
                &[("Content-Type", "application/x-www-form-urlencoded")],
                Some(form.into_bytes()),
            )
            .await
            .map_err(|m| self.api_err("OAuth token exchange", m))?;
        let v = r.json();
        match v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|_| r.ok())
        {
            Some(token) => Ok(Secret::new(token.to_owned())),
            None => {
                let err = v.get("error").and_then(Value::as_str).unwrap_or("error");
                let desc = v
                    .get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Err(self.api_err(
                    "OAuth token exchange",
                    format!(
                        "HTTP {}: {err}: {desc} (service account {client_email})",
                        r.status
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(token_uri: &str, universe: Option<&str>) -> ServiceAccount {
        ServiceAccount {
            client_email: "d@p.example".into(),
            private_key: Secret::new(String::new()),
            token_uri: token_uri.into(),
            universe: universe.map(str::to_owned),
        }
    }

    #[test]
    fn the_apis_domain_comes_from_the_key() {
        let named = account("https://sts.cloud.example/token", Some("cloud.example"));
        assert_eq!(named.universe().unwrap(), "cloud.example");
        assert_eq!(
            named.scope().unwrap(),
            "https://www.cloud.example/auth/cloud-platform"
        );
        let older = account("https://oauth2.cloud.example/token", None);
        assert_eq!(older.universe().unwrap(), "cloud.example");
        let neither = account("https://accounts.example/o/oauth2/token", None);
        assert!(matches!(neither.universe(), Err(KeyError::NoUniverse(_))));
        assert!(matches!(
            account("http://oauth2.localhost:8080/token", None).universe(),
            Err(KeyError::NoUniverse(_))
        ));
    }
}
