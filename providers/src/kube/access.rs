//! Reaching the API server: a kubeconfig (with its exec and token users) or, for `gke`, a
//! service-account key exchanged for a token and the cluster looked up in the GKE API.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use slipway_secrets::Secret;

use super::{Access, GKE_API, Kubernetes, SCOPE};
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::Error;
use crate::http::{Http, HttpError, Response, Tls};
use crate::inputs::BuildDir;
use slipway_runner::DeployLog;

/// The pieces of a Google service-account key the token exchange needs.
pub(super) struct ServiceAccount {
    pub(super) client_email: String,
    pub(super) private_key: Secret<String>,
    pub(super) token_uri: String,
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
        token_uri: s("token_uri").unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
    })
}

/// The claims of the OAuth JWT-bearer assertion Google's token endpoint reads.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The signed JWT assertion of the OAuth JWT-bearer flow (RFC 7523), RS256, valid for an hour.
pub(super) fn jwt_assertion(
    sa: &ServiceAccount,
    audience: &str,
    now: u64,
) -> Result<String, KeyError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(sa.private_key.expose().as_bytes())
        .map_err(KeyError::Key)?;
    let claims = Claims {
        iss: &sa.client_email,
        scope: SCOPE,
        aud: audience,
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

/// A connected API server: base URL, client and credentials.
pub(super) struct Cluster {
    pub(super) base: String,
    pub(super) http: Http,
    pub(super) auth: Option<String>,
    pub(super) namespace: String,
}

impl Cluster {
    pub(super) async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Response, HttpError> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut headers = vec![("Accept", "application/json")];
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.as_str()));
        }
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        self.http.send(method, &url, &headers, body).await
    }
}

/// The message of a Kubernetes `Status` error body, else the raw text.
pub(super) fn status_message(r: &Response) -> String {
    let v = r.json();
    match v.get("message").and_then(Value::as_str) {
        Some(m) => format!("{} (HTTP {})", m, r.status),
        None => format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)),
    }
}

impl Kubernetes {
    pub(super) async fn connect(
        &self,
        ctx: &DeployContext,
        log: &dyn DeployLog,
    ) -> Result<Cluster, Error> {
        match &self.access {
            Access::Gke {
                project,
                location,
                cluster,
                key_file,
            } => {
                let key_path = ctx.input(self.name, "key_file", key_file)?;
                let sa = read_key_file(&key_path)
                    .map_err(|e| self.file_err(&key_path, e.to_string()))?;
                let token_url = ctx
                    .endpoints
                    .gke_token
                    .clone()
                    .unwrap_or_else(|| sa.token_uri.clone());
                let assertion = jwt_assertion(&sa, &sa.token_uri, ctx.now)
                    .map_err(|e| self.file_err(&key_path, e.to_string()))?;
                let http = Http::new(Tls::default()).map_err(|m| self.api_err("TLS setup", m))?;
                let form = format!(
                    "grant_type={}&assertion={}",
                    utf8_percent_encode(
                        "urn:ietf:params:oauth:grant-type:jwt-bearer",
                        NON_ALPHANUMERIC
                    ),
                    assertion
                );
                let r = http
                    .send(
                        "POST",
                        &token_url,
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        Some(form.into_bytes()),
                    )
                    .await
                    .map_err(|m| self.api_err("OAuth token exchange", m))?;
                let v = r.json();
                let Some(token) = v
                    .get("access_token")
                    .and_then(Value::as_str)
                    .filter(|_| r.ok())
                else {
                    let err = v.get("error").and_then(Value::as_str).unwrap_or("error");
                    let desc = v
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    return Err(self.api_err(
                        "OAuth token exchange",
                        format!(
                            "HTTP {}: {err}: {desc} (service account {})",
                            r.status, sa.client_email
                        ),
                    ));
                };
                let token = Secret::new(format!("Bearer {token}"));
                log.line(&format!("gke: signed in as {}", sa.client_email));
                let api = ctx
                    .endpoints
                    .gke_container
                    .clone()
                    .unwrap_or_else(|| GKE_API.to_owned());
                let url = format!(
                    "{}/v1/projects/{project}/locations/{location}/clusters/{cluster}",
                    api.trim_end_matches('/')
                );
                let r = http
                    .send("GET", &url, &[("Authorization", token.expose())], None)
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
                    .unwrap_or_default();
                let ca = v
                    .pointer("/masterAuth/clusterCaCertificate")
                    .and_then(Value::as_str)
                    .and_then(|b| STANDARD.decode(b).ok());
                let (base, tls) = match &ctx.endpoints.kubernetes {
                    Some(url) => (url.clone(), Tls::default()),
                    None => (
                        format!("https://{endpoint}"),
                        Tls {
                            ca_pem: ca,
                            client_cert: None,
                        },
                    ),
                };
                log.line(&format!("gke: cluster {cluster} in {location} at {base}"));
                Ok(Cluster {
                    base,
                    http: Http::new(tls).map_err(|m| self.api_err("TLS setup", m))?,
                    auth: Some(token.into_exposed()),
                    namespace: self.namespace.clone().unwrap_or_else(|| "default".into()),
                })
            }
            Access::Kubeconfig { path, context } => {
                self.connect_kubeconfig(ctx, path.as_deref(), context.as_deref(), log)
            }
        }
    }

    pub(super) fn connect_kubeconfig(
        &self,
        ctx: &DeployContext,
        path: Option<&str>,
        context: Option<&str>,
        log: &dyn DeployLog,
    ) -> Result<Cluster, Error> {
        let (path, build) = self.kubeconfig_path(ctx, path)?;
        let bad = |m: String| self.file_err(&path, m);
        let text = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        let cfg = slipway_pipelines::yaml::load(&text, Default::default())
            .map_err(|e| bad(e.to_string()))?
            .map(|n| n.to_json())
            .unwrap_or(Value::Null);
        let named = |list: &str, name: &str, field: &str| -> Option<Value> {
            cfg.get(list)?
                .as_array()?
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
                .get(field)
                .cloned()
        };
        let ctx_name = context
            .map(str::to_owned)
            .or_else(|| {
                cfg.get("current-context")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| bad("no context given and no current-context".into()))?;
        let kctx = named("contexts", &ctx_name, "context")
            .ok_or_else(|| bad(format!("no context {ctx_name}")))?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let cluster_name = s(&kctx, "cluster").unwrap_or_default();
        let user_name = s(&kctx, "user").unwrap_or_default();
        let cluster = named("clusters", &cluster_name, "cluster")
            .ok_or_else(|| bad(format!("no cluster {cluster_name}")))?;
        let user = named("users", &user_name, "user").unwrap_or(Value::Null);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Files a kubeconfig of the build names must be files of the build too.
        let named_file = |dir: &Path, field: &str, f: &str| -> Result<PathBuf, Error> {
            match &build {
                Some(b) => b.resolve_from(self.name, &format!("kubeconfig {field}"), dir, f),
                None => Ok(dir.join(f)),
            }
        };
        let data_or_file = |v: &Value, data: &str, file: &str| -> Result<Option<Vec<u8>>, Error> {
            if let Some(d) = s(v, data) {
                return STANDARD
                    .decode(d.trim())
                    .map(Some)
                    .map_err(|_| bad(format!("{data} is not base64")));
            }
            if let Some(f) = s(v, file) {
                return std::fs::read(named_file(&dir, file, &f)?)
                    .map(Some)
                    .map_err(|e| bad(format!("{file}: {e}")));
            }
            Ok(None)
        };
        let ca = data_or_file(
            &cluster,
            "certificate-authority-data",
            "certificate-authority",
        )?;
        let cert = data_or_file(&user, "client-certificate-data", "client-certificate")?;
        let key = data_or_file(&user, "client-key-data", "client-key")?;
        if user.get("exec").is_some() || user.get("auth-provider").is_some() {
            return Err(bad(format!(
                "user {user_name} authenticates through a plugin; give a token or client certificate (or use provider gke)"
            )));
        }
        let mut auth = s(&user, "token").map(|t| format!("Bearer {t}"));
        if auth.is_none()
            && let Some(f) = s(&user, "tokenFile")
        {
            let t = std::fs::read_to_string(named_file(&dir, "tokenFile", &f)?)
                .map_err(|e| bad(e.to_string()))?;
            auth = Some(format!("Bearer {}", t.trim()));
        }
        if auth.is_none()
            && let (Some(u), Some(p)) = (s(&user, "username"), s(&user, "password"))
        {
            auth = Some(format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));
        }
        let base = ctx
            .endpoints
            .kubernetes
            .clone()
            .or_else(|| s(&cluster, "server"))
            .ok_or_else(|| bad(format!("cluster {cluster_name} has no server")))?;
        let tls = Tls {
            ca_pem: ca,
            client_cert: cert.zip(key),
        };
        log.line(&format!("kubernetes: context {ctx_name}, server {base}"));
        Ok(Cluster {
            base,
            http: Http::new(tls).map_err(|e| bad(e.to_string()))?,
            auth,
            namespace: self
                .namespace
                .clone()
                .or_else(|| s(&kctx, "namespace"))
                .unwrap_or_else(|| "default".into()),
        })
    }

    /// The kubeconfig to read, in this order: the `kubeconfig` option, the job's `KUBECONFIG`
    /// (both files of the build, returned with the build dir that confines the files they
    /// name), the server's kubeconfig for the repository, and only on one's own machine
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub(super) fn kubeconfig_path(
        &self,
        ctx: &DeployContext,
        path: Option<&str>,
    ) -> Result<(PathBuf, Option<BuildDir>), Error> {
        let job = ctx.env.get("KUBECONFIG").map(|v| v.expose().to_owned());
        let in_build = match (path, &job) {
            (Some(p), _) => Some(("kubeconfig", p.to_owned())),
            (None, Some(list)) => Some(("KUBECONFIG", first_path(list).to_owned())),
            (None, None) => None,
        };
        if let Some((option, p)) = in_build {
            let build = ctx.build_dir(self.name)?;
            return Ok((build.resolve(self.name, option, &p)?, Some(build)));
        }
        if let Some(server) = ctx.credentials.kubeconfig() {
            return Ok((server.clone(), None));
        }
        if !ctx.credentials.ambient() {
            return Err(Error::NoCredentials {
                provider: self.name,
                kind: "Kubernetes",
                repo: ctx.repo.clone(),
                fix: crate::credentials::KUBE_FIX,
            });
        }
        let path = match std::env::var("KUBECONFIG") {
            Ok(list) if !list.is_empty() => PathBuf::from(first_path(&list)),
            _ => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".kube/config"),
        };
        Ok((path, None))
    }

    /// Where the credentials come from (see [`Kubernetes::kubeconfig_path`]), never the values.
    pub(super) fn describe_credentials(&self, ctx: &DeployContext) -> String {
        match &self.access {
            Access::Gke { key_file, .. } => {
                format!("the service-account key {key_file} of the build dir")
            }
            Access::Kubeconfig { path: Some(p), .. } => {
                format!("the kubeconfig {p} of the build dir")
            }
            Access::Kubeconfig { path: None, .. } => {
                if ctx.env.contains_key("KUBECONFIG") {
                    "the kubeconfig the job's KUBECONFIG names (in the build dir)".to_owned()
                } else if let Some(p) = ctx.credentials.kubeconfig() {
                    format!(
                        "the server's [repos.deploy] kubeconfig for {} ({})",
                        ctx.repo,
                        p.display()
                    )
                } else if ctx.credentials.ambient() {
                    "$KUBECONFIG or ~/.kube/config of this machine".to_owned()
                } else {
                    format!(
                        "none: no Kubernetes credentials are configured for {}",
                        ctx.repo
                    )
                }
            }
        }
    }
}

/// The first file of a `KUBECONFIG` list (`a:b`), the one kubectl reads the context from.
pub(super) fn first_path(list: &str) -> &str {
    list.split(':').next().unwrap_or_default()
}

impl Kubernetes {
    /// The dry run's calls that reach the cluster: the token exchange and cluster lookup for
    /// `gke`, the kubeconfig load for `kubernetes`.
    pub(super) fn dry_run_access(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls = Vec::new();
        match &self.access {
            Access::Gke {
                project,
                location,
                cluster,
                key_file,
            } => {
                let sa = ctx
                    .input(self.name, "key_file", key_file)
                    .ok()
                    .and_then(|p| read_key_file(&p).ok());
                calls.push(
                    ApiCall::new("oauth", "POST token")
                        .param("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                        .param(
                            "iss",
                            sa.as_ref()
                                .map(|s| s.client_email.clone())
                                .unwrap_or_else(|| format!("(client_email of {key_file})")),
                        )
                        .param("assertion", "[secure]"),
                );
                calls.push(ApiCall::new(
                    "gke",
                    format!("GET projects/{project}/locations/{location}/clusters/{cluster}"),
                ));
            }
            Access::Kubeconfig { path, context } => {
                let mut c = ApiCall::new("kubeconfig", "Load").param(
                    "path",
                    path.clone()
                        .unwrap_or_else(|| self.describe_credentials(ctx)),
                );
                if let Some(cx) = context {
                    c = c.param("context", cx);
                }
                calls.push(c.note(format!(
                "namespaced objects without a namespace go to {}",
                self.namespace
                    .as_deref()
                    .unwrap_or("the context's namespace, else default")
            )));
            }
        }
        calls
    }
}
