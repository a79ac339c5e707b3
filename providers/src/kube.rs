//! `provider: kubernetes` and `provider: gke`: `kubectl apply -f DIR`, `kubectl set image` and
//! `kubectl create secret generic` as Kubernetes API calls (server-side apply and strategic-merge
//! patches over plain HTTP), then waiting for each deployment's rollout. `gke` gets its cluster
//! and a token from a service-account key file; `kubernetes` reads a kubeconfig.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use slipway_secrets::Secret;

use crate::Deployer;
use crate::calls::{ApiCall, LogSink};
use crate::context::DeployContext;
use crate::error::{Error, one_line, option_error};
use crate::http::{Http, Response, Tls};
use crate::inputs::BuildDir;
use crate::options::{Options, Text};

/// Options of the kubernetes provider.
pub const KUBERNETES_OPTIONS: &[&str] = &[
    "kubeconfig",
    "context",
    "namespace",
    "manifests",
    "images",
    "secrets",
    "wait_until_deployed",
    "timeout",
];

/// Options of the gke provider.
pub const GKE_OPTIONS: &[&str] = &[
    "project",
    "zone",
    "region",
    "cluster",
    "key_file",
    "namespace",
    "manifests",
    "images",
    "secrets",
    "wait_until_deployed",
    "timeout",
];

/// The public GKE API; overridable through [`crate::Endpoints::gke_container`].
const GKE_API: &str = "https://container.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const FIELD_MANAGER: &str = "slipway";

/// How the provider reaches the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// A kubeconfig file (`kubeconfig:`, else `$KUBECONFIG`, else `~/.kube/config`).
    Kubeconfig {
        /// The path as given, if any.
        path: Option<String>,
        /// The context, else the file's current context.
        context: Option<String>,
    },
    /// A GKE cluster reached with a service-account key.
    Gke {
        /// Google Cloud project id.
        project: String,
        /// Zone or region of the cluster.
        location: String,
        /// Cluster name.
        cluster: String,
        /// The decrypted service-account key file, relative to the working tree.
        key_file: String,
    },
}

/// `kubectl set image deployments/DEPLOYMENT CONTAINER=IMAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetImage {
    /// The deployment.
    pub deployment: String,
    /// The container in its pod template.
    pub container: String,
    /// The new image.
    pub image: String,
}

/// A generic Secret created or updated from secure values.
#[derive(Clone, Debug)]
pub struct SecretSpec {
    /// The Secret's name.
    pub name: String,
    /// Keys and values (values usually secret).
    pub data: Vec<(String, Text)>,
}

/// Typed kubernetes/gke options.
#[derive(Debug)]
pub struct Kubernetes {
    name: &'static str,
    access: Access,
    namespace: Option<String>,
    manifests: Vec<String>,
    images: Vec<SetImage>,
    secrets: Vec<SecretSpec>,
    wait: bool,
    timeout: u64,
}

/// One object from a manifest file.
#[derive(Clone, Debug)]
struct Manifest {
    file: String,
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
    body: Value,
}

/// What discovery says about a kind.
#[derive(Clone, Debug)]
struct Resource {
    plural: String,
    namespaced: bool,
}

impl Kubernetes {
    pub(crate) fn parse_kubeconfig(mut o: Options<'_>) -> Result<Self, Error> {
        let access = Access::Kubeconfig {
            path: o.string(&["kubeconfig"])?,
            context: o.string(&["context"])?,
        };
        Self::parse_rest("kubernetes", access, o, KUBERNETES_OPTIONS)
    }

    pub(crate) fn parse_gke(mut o: Options<'_>) -> Result<Self, Error> {
        let project = o.required(&["project"])?;
        let location = match (o.string(&["zone"])?, o.string(&["region"])?) {
            (Some(z), None) => z,
            (None, Some(r)) => r,
            (Some(_), Some(_)) => {
                return Err(option_error(
                    "gke",
                    "region",
                    "give zone or region, not both",
                ));
            }
            (None, None) => {
                return Err(option_error(
                    "gke",
                    "zone",
                    "is required (or region, for a regional cluster)",
                ));
            }
        };
        let cluster = o.required(&["cluster"])?;
        let key_file = o.required(&["key_file"])?;
        let access = Access::Gke {
            project,
            location,
            cluster,
            key_file,
        };
        Self::parse_rest("gke", access, o, GKE_OPTIONS)
    }

    fn parse_rest(
        name: &'static str,
        access: Access,
        mut o: Options<'_>,
        known: &[&str],
    ) -> Result<Self, Error> {
        let namespace = o.string(&["namespace"])?;
        let manifests = o.strings(&["manifests"])?;
        let mut images = Vec::new();
        if let Some((opt, map)) = o.map(&["images"])? {
            for (key, value) in &map {
                let key_clean = key
                    .strip_prefix("deployments/")
                    .or_else(|| key.strip_prefix("deployment/"))
                    .unwrap_or(key);
                match value {
                    Value::Object(containers) if !containers.contains_key("secure") => {
                        for (container, v) in containers {
                            let image = o.text_value(&format!("{opt}.{key}.{container}"), v)?;
                            images.push(SetImage {
                                deployment: key_clean.to_owned(),
                                container: container.clone(),
                                image: image.expose().to_owned(),
                            });
                        }
                    }
                    v => {
                        let Some((deployment, container)) = key_clean.split_once('/') else {
                            return Err(option_error(
                                name,
                                format!("{opt}.{key}"),
                                "name the container: `DEPLOYMENT/CONTAINER: IMAGE` or `DEPLOYMENT: {CONTAINER: IMAGE}`",
                            ));
                        };
                        let image = o.text_value(&format!("{opt}.{key}"), v)?;
                        images.push(SetImage {
                            deployment: deployment.to_owned(),
                            container: container.to_owned(),
                            image: image.expose().to_owned(),
                        });
                    }
                }
            }
        }
        let mut secrets = Vec::new();
        if let Some((opt, map)) = o.map(&["secrets"])? {
            for (secret, entries) in &map {
                let Value::Object(entries) = entries else {
                    return Err(option_error(
                        name,
                        format!("{opt}.{secret}"),
                        "expected a mapping of keys to (secure) values",
                    ));
                };
                let mut data = Vec::new();
                for (k, v) in entries {
                    data.push((k.clone(), o.text_value(&format!("{opt}.{secret}.{k}"), v)?));
                }
                secrets.push(SecretSpec {
                    name: secret.clone(),
                    data,
                });
            }
        }
        let wait = o.bool(&["wait_until_deployed"])?.unwrap_or(true);
        let timeout = o.u64(&["timeout"])?.unwrap_or(600);
        o.finish(known)?;
        Ok(Kubernetes {
            name,
            access,
            namespace,
            manifests,
            images,
            secrets,
            wait,
            timeout,
        })
    }

    fn api_err(&self, action: impl Into<String>, message: impl AsRef<str>) -> Error {
        Error::Api {
            provider: self.name,
            action: action.into(),
            message: one_line(message.as_ref()),
        }
    }

    /// Reads every manifest: a directory gives its `.yaml`, `.yml` and `.json` files in name
    /// order (as `kubectl apply -f DIR`), a file gives its documents.
    fn load_manifests(&self, ctx: &DeployContext) -> Result<Vec<Manifest>, Error> {
        let build = ctx.build_dir(self.name)?;
        let mut files: Vec<PathBuf> = Vec::new();
        for m in &self.manifests {
            let path = build.resolve(self.name, "manifests", m)?;
            if path.is_dir() {
                let mut in_dir: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|e| self.file_err(&path, e.to_string()))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && matches!(
                                p.extension().and_then(|e| e.to_str()),
                                Some("yaml" | "yml" | "json")
                            )
                    })
                    .collect();
                in_dir.sort();
                for p in in_dir {
                    // A symlink in the directory must not lead out of the build dir either.
                    files.push(build.check(self.name, "manifests", &p)?);
                }
            } else {
                files.push(path);
            }
        }
        let mut out = Vec::new();
        for path in files {
            let text =
                std::fs::read_to_string(&path).map_err(|e| self.file_err(&path, e.to_string()))?;
            let rel = path
                .strip_prefix(build.root())
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            for doc in split_documents(&text) {
                let node = slipway_pipelines::yaml::load(doc.as_bytes(), Default::default())
                    .map_err(|e| self.file_err(&path, e.to_string()))?;
                let Some(node) = node else { continue };
                let value = node.to_json();
                if value.is_null() {
                    continue;
                }
                let items = if value.get("kind").and_then(Value::as_str) == Some("List") {
                    value
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    vec![value]
                };
                for body in items {
                    let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_owned);
                    let (Some(api_version), Some(kind), Some(name)) =
                        (s("/apiVersion"), s("/kind"), s("/metadata/name"))
                    else {
                        return Err(self.file_err(
                            &path,
                            "a document lacks apiVersion, kind or metadata.name".into(),
                        ));
                    };
                    out.push(Manifest {
                        file: rel.clone(),
                        api_version,
                        kind,
                        name,
                        namespace: s("/metadata/namespace"),
                        body,
                    });
                }
            }
        }
        Ok(out)
    }

    fn file_err(&self, path: &Path, message: String) -> Error {
        Error::File {
            provider: self.name,
            path: path.to_path_buf(),
            message,
        }
    }

    /// Deployments whose rollout the deploy waits for: applied ones and those given new images.
    fn rollouts(&self, manifests: &[Manifest], namespace: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut add = |ns: String, name: String| {
            if !out.contains(&(ns.clone(), name.clone())) {
                out.push((ns, name));
            }
        };
        for m in manifests.iter().filter(|m| m.kind == "Deployment") {
            add(
                m.namespace.clone().unwrap_or_else(|| namespace.to_owned()),
                m.name.clone(),
            );
        }
        for i in &self.images {
            add(namespace.to_owned(), i.deployment.clone());
        }
        out
    }

    /// `kubectl set image` for one deployment, all its containers at once.
    fn image_patches(&self) -> Vec<(String, Value)> {
        let mut by_deployment: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        let mut order = Vec::new();
        for i in &self.images {
            if !by_deployment.contains_key(i.deployment.as_str()) {
                order.push(i.deployment.as_str());
            }
            by_deployment
                .entry(&i.deployment)
                .or_default()
                .push(json!({"name": i.container, "image": i.image}));
        }
        order
            .into_iter()
            .map(|d| {
                (
                    d.to_owned(),
                    json!({"spec": {"template": {"spec": {"containers": by_deployment[d]}}}}),
                )
            })
            .collect()
    }

    fn secret_body(&self, s: &SecretSpec, namespace: &str) -> Value {
        let data: serde_json::Map<String, Value> = s
            .data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v.expose()))))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": s.name, "namespace": namespace},
            "type": "Opaque",
            "data": data,
        })
    }
}

/// Splits a YAML stream at `---` document markers.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            docs.push(String::new());
            continue;
        }
        if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

fn group_path(api_version: &str) -> String {
    if api_version == "v1" {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{api_version}")
    }
}

fn object_path(api_version: &str, res: &Resource, namespace: &str, name: &str) -> String {
    if res.namespaced {
        format!(
            "{}/namespaces/{namespace}/{}/{name}",
            group_path(api_version),
            res.plural
        )
    } else {
        format!("{}/{}/{name}", group_path(api_version), res.plural)
    }
}

fn apply_query() -> String {
    format!("?fieldManager={FIELD_MANAGER}&force=true")
}

/// The pieces of a Google service-account key the token exchange needs.
struct ServiceAccount {
    client_email: String,
    private_key: Secret<String>,
    token_uri: String,
}

fn read_key_file(path: &Path) -> Result<ServiceAccount, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|_| "not a JSON service-account key".to_owned())?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if s("type").as_deref() != Some("service_account") {
        return Err("not a service-account key (type is not service_account)".into());
    }
    Ok(ServiceAccount {
        client_email: s("client_email").ok_or("client_email is missing")?,
        private_key: Secret::new(s("private_key").ok_or("private_key is missing")?),
        token_uri: s("token_uri").unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
    })
}

/// The signed JWT assertion of the OAuth JWT-bearer flow (RFC 7523), RS256.
fn jwt_assertion(sa: &ServiceAccount, audience: &str, now: u64) -> Result<String, String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = json!({
        "iss": sa.client_email,
        "scope": SCOPE,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{claims}");
    let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(sa.private_key.expose().as_bytes())
        .map_err(|e| format!("private_key is not a PEM key: {e}"))?;
    let rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8) = der else {
        return Err("private_key is not a PKCS#8 RSA key".into());
    };
    let key = ring::signature::RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der())
        .map_err(|e| format!("private_key is not a usable RSA key: {e}"))?;
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing the token request failed".to_owned())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

use rustls::pki_types::pem::PemObject;

/// A connected API server: base URL, client and credentials.
struct Cluster {
    base: String,
    http: Http,
    auth: Option<String>,
    namespace: String,
}

impl Cluster {
    async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Response, String> {
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
fn status_message(r: &Response) -> String {
    let v = r.json();
    match v.get("message").and_then(Value::as_str) {
        Some(m) => format!("{} (HTTP {})", m, r.status),
        None => format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)),
    }
}

impl Kubernetes {
    async fn connect(&self, ctx: &DeployContext, log: &dyn LogSink) -> Result<Cluster, Error> {
        match &self.access {
            Access::Gke {
                project,
                location,
                cluster,
                key_file,
            } => {
                let key_path = ctx.input(self.name, "key_file", key_file)?;
                let sa = read_key_file(&key_path).map_err(|m| self.file_err(&key_path, m))?;
                let token_url = ctx
                    .endpoints
                    .gke_token
                    .clone()
                    .unwrap_or_else(|| sa.token_uri.clone());
                let assertion = jwt_assertion(&sa, &sa.token_uri, ctx.now)
                    .map_err(|m| self.file_err(&key_path, m))?;
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

    fn connect_kubeconfig(
        &self,
        ctx: &DeployContext,
        path: Option<&str>,
        context: Option<&str>,
        log: &dyn LogSink,
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
            http: Http::new(tls).map_err(bad)?,
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
    fn kubeconfig_path(
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
    fn describe_credentials(&self, ctx: &DeployContext) -> String {
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

    async fn discover(
        &self,
        cluster: &Cluster,
        cache: &mut BTreeMap<String, Value>,
        m: &Manifest,
    ) -> Result<Resource, Error> {
        if !cache.contains_key(&m.api_version) {
            let path = group_path(&m.api_version);
            let r = cluster
                .call("GET", &path, None, None)
                .await
                .map_err(|e| self.api_err(format!("GET {path}"), e))?;
            if r.status == 404 {
                return Err(self.api_err(
                    format!("apply {}", m.file),
                    format!(
                        "the cluster does not serve {} (kind {})",
                        m.api_version, m.kind
                    ),
                ));
            }
            if !r.ok() {
                return Err(self.api_err(format!("GET {path}"), status_message(&r)));
            }
            cache.insert(m.api_version.clone(), r.json());
        }
        let list = &cache[&m.api_version];
        list.get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                r.get("kind").and_then(Value::as_str) == Some(&m.kind)
                    && !r
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("/")
                        .contains('/')
            })
            .map(|r| Resource {
                plural: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                namespaced: r.get("namespaced").and_then(Value::as_bool).unwrap_or(true),
            })
            .ok_or_else(|| {
                self.api_err(
                    format!("apply {}", m.file),
                    format!("{} has no kind {}", m.api_version, m.kind),
                )
            })
    }

    /// Waits for one deployment the way `kubectl rollout status` does.
    async fn wait_rollout(
        &self,
        ctx: &DeployContext,
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        deadline: Instant,
        log: &dyn LogSink,
    ) -> Result<(), Error> {
        let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}");
        let mut last = String::new();
        loop {
            let r = cluster
                .call("GET", &path, None, None)
                .await
                .map_err(|e| self.api_err(format!("GET deployments/{name}"), e))?;
            if !r.ok() {
                return Err(self.api_err(format!("GET deployments/{name}"), status_message(&r)));
            }
            let d = r.json();
            let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            let generation = n("/metadata/generation");
            let observed = n("/status/observedGeneration");
            let want = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let updated = n("/status/updatedReplicas");
            let total = n("/status/replicas");
            let available = n("/status/availableReplicas");
            let deadline_exceeded = d
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Progressing")
                        && c.get("reason").and_then(Value::as_str)
                            == Some("ProgressDeadlineExceeded")
                });
            let state = if observed < generation {
                "waiting for the spec update to be observed".to_owned()
            } else if updated < want {
                format!("{updated} of {want} new replicas updated")
            } else if total > updated {
                format!("{} old replicas pending termination", total - updated)
            } else if available < updated {
                format!("{available} of {updated} updated replicas available")
            } else {
                log.line(&format!("kubernetes: deployment {name} rolled out"));
                return Ok(());
            };
            if state != last {
                log.line(&format!("kubernetes: deployment {name}: {state}"));
                last = state.clone();
            }
            if deadline_exceeded || Instant::now() >= deadline {
                let reason = self.failing_pod(cluster, namespace, &d).await;
                let detail = match reason {
                    Some(r) => format!("{state}; {r}"),
                    None => state,
                };
                if deadline_exceeded {
                    return Err(Error::Failed {
                        provider: self.name,
                        message: one_line(&format!(
                            "deployment {name} exceeded its progress deadline: {detail}"
                        )),
                    });
                }
                return Err(Error::Timeout {
                    provider: self.name,
                    what: format!("rollout of deployment {name}"),
                    seconds: self.timeout,
                    detail: Some(one_line(&detail)),
                });
            }
            tokio::time::sleep(ctx.poll_interval).await;
        }
    }

    /// Why a pod of the deployment is not ready (`ImagePullBackOff: …`), when a pod says.
    async fn failing_pod(
        &self,
        cluster: &Cluster,
        namespace: &str,
        deployment: &Value,
    ) -> Option<String> {
        let labels = deployment
            .pointer("/spec/selector/matchLabels")?
            .as_object()?;
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        let path = format!(
            "/api/v1/namespaces/{namespace}/pods?labelSelector={}",
            utf8_percent_encode(&selector, NON_ALPHANUMERIC)
        );
        let r = cluster.call("GET", &path, None, None).await.ok()?;
        let pods = r.json();
        for pod in pods.get("items")?.as_array()? {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
                .iter()
                .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
                .flatten();
            for cs in statuses {
                let cname = cs.get("name").and_then(Value::as_str).unwrap_or("?");
                if let Some(w) = cs.pointer("/state/waiting") {
                    let reason = w.get("reason").and_then(Value::as_str).unwrap_or("");
                    if !reason.is_empty()
                        && reason != "ContainerCreating"
                        && reason != "PodInitializing"
                    {
                        let msg = w.get("message").and_then(Value::as_str).unwrap_or("");
                        return Some(format!("pod {pod_name} container {cname}: {reason}: {msg}"));
                    }
                }
                if let Some(t) = cs
                    .pointer("/lastState/terminated")
                    .or_else(|| cs.pointer("/state/terminated"))
                {
                    let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or(0);
                    if code != 0 {
                        let reason = t.get("reason").and_then(Value::as_str).unwrap_or("Error");
                        return Some(format!(
                            "pod {pod_name} container {cname}: {reason} (exit code {code})"
                        ));
                    }
                }
            }
            for c in pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if c.get("type").and_then(Value::as_str) == Some("PodScheduled")
                    && c.get("status").and_then(Value::as_str) == Some("False")
                {
                    let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
                    return Some(format!("pod {pod_name} unschedulable: {msg}"));
                }
            }
        }
        None
    }
}

#[async_trait]
impl Deployer for Kubernetes {
    fn provider(&self) -> &'static str {
        self.name
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        self.describe_credentials(ctx)
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
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
        let ns = self.namespace.clone().unwrap_or_else(|| "default".into());
        for s in &self.secrets {
            let mut c = ApiCall::new(
                "kubernetes",
                format!("PATCH /api/v1/namespaces/{ns}/secrets/{}", s.name),
            )
            .param("content-type", "application/apply-patch+yaml");
            for (k, v) in &s.data {
                c = c.param(&format!("data.{k}"), v.shown());
            }
            calls.push(c);
        }
        let manifests = match self.load_manifests(ctx) {
            Ok(m) => m,
            Err(e) => {
                if !self.manifests.is_empty() {
                    calls.push(
                        ApiCall::new("kubernetes", "apply")
                            .param("manifests", self.manifests.join(","))
                            .note(e.one_line()),
                    );
                }
                Vec::new()
            }
        };
        let mut discovered = Vec::new();
        for m in &manifests {
            if !discovered.contains(&m.api_version) {
                discovered.push(m.api_version.clone());
                calls.push(
                    ApiCall::new("kubernetes", format!("GET {}", group_path(&m.api_version)))
                        .note("discovery"),
                );
            }
            calls.push(
                ApiCall::new(
                    "kubernetes",
                    format!("PATCH {} {}/{}", m.api_version, m.kind, m.name),
                )
                .param("file", &m.file)
                .param("content-type", "application/apply-patch+yaml"),
            );
        }
        for (d, patch) in self.image_patches() {
            let mut c = ApiCall::new(
                "kubernetes",
                format!("PATCH /apis/apps/v1/namespaces/{ns}/deployments/{d}"),
            )
            .param("content-type", "application/strategic-merge-patch+json");
            for ct in patch
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                c = c.param(
                    &format!("image.{}", ct["name"].as_str().unwrap_or("")),
                    ct["image"].as_str().unwrap_or(""),
                );
            }
            calls.push(c);
        }
        if self.wait {
            for (n, d) in self.rollouts(&manifests, &ns) {
                calls.push(
                    ApiCall::new(
                        "kubernetes",
                        format!("GET /apis/apps/v1/namespaces/{n}/deployments/{d}"),
                    )
                    .note(format!(
                        "until rolled out, at most {} s in all",
                        self.timeout
                    )),
                );
            }
        }
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn LogSink) -> Result<String, Error> {
        let manifests = self.load_manifests(ctx)?;
        let cluster = self.connect(ctx, log).await?;
        let ns = cluster.namespace.clone();
        for s in &self.secrets {
            let path = format!(
                "/api/v1/namespaces/{ns}/secrets/{}{}",
                s.name,
                apply_query()
            );
            let body = serde_json::to_vec(&self.secret_body(s, &ns)).unwrap_or_default();
            let r = cluster
                .call(
                    "PATCH",
                    &path,
                    Some("application/apply-patch+yaml"),
                    Some(body),
                )
                .await
                .map_err(|e| self.api_err(format!("apply secret {}", s.name), e))?;
            if !r.ok() {
                return Err(self.api_err(format!("apply secret {}", s.name), status_message(&r)));
            }
            log.line(&format!("kubernetes: secret/{} configured", s.name));
        }
        let mut cache = BTreeMap::new();
        for m in &manifests {
            let res = self.discover(&cluster, &mut cache, m).await?;
            let namespace = m.namespace.clone().unwrap_or_else(|| ns.clone());
            let mut body = m.body.clone();
            if res.namespaced && m.namespace.is_none() {
                body["metadata"]["namespace"] = Value::String(namespace.clone());
            }
            let path = format!(
                "{}{}",
                object_path(&m.api_version, &res, &namespace, &m.name),
                apply_query()
            );
            let r = cluster
                .call(
                    "PATCH",
                    &path,
                    Some("application/apply-patch+yaml"),
                    Some(serde_json::to_vec(&body).unwrap_or_default()),
                )
                .await
                .map_err(|e| self.api_err(format!("apply {}", m.file), e))?;
            if !r.ok() {
                return Err(self.api_err(
                    format!("apply {} ({}/{})", m.file, m.kind, m.name),
                    status_message(&r),
                ));
            }
            log.line(&format!(
                "kubernetes: {}/{} configured ({})",
                res.plural, m.name, m.file
            ));
        }
        for (d, patch) in self.image_patches() {
            let path = format!(
                "/apis/apps/v1/namespaces/{ns}/deployments/{d}?fieldManager={FIELD_MANAGER}"
            );
            let r = cluster
                .call(
                    "PATCH",
                    &path,
                    Some("application/strategic-merge-patch+json"),
                    Some(serde_json::to_vec(&patch).unwrap_or_default()),
                )
                .await
                .map_err(|e| self.api_err(format!("set image deployments/{d}"), e))?;
            if !r.ok() {
                return Err(self.api_err(format!("set image deployments/{d}"), status_message(&r)));
            }
            for i in self.images.iter().filter(|i| i.deployment == d) {
                log.line(&format!(
                    "kubernetes: deployment/{d} container {} image set to {}",
                    i.container, i.image
                ));
            }
        }
        let rollouts = self.rollouts(&manifests, &ns);
        if self.wait {
            let deadline = Instant::now() + Duration::from_secs(self.timeout);
            for (n, d) in &rollouts {
                self.wait_rollout(ctx, &cluster, n, d, deadline, log)
                    .await?;
            }
        }
        Ok(format!(
            "{} object(s) applied, {} image(s) set, {} rollout(s) {}",
            manifests.len() + self.secrets.len(),
            self.images.len(),
            rollouts.len(),
            if self.wait { "complete" } else { "started" }
        ))
    }
}

/// The first file of a `KUBECONFIG` list (`a:b`), the one kubectl reads the context from.
fn first_path(list: &str) -> &str {
    list.split(':').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_markers() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- \n\n---\nc: 3\n");
        assert_eq!(docs, ["a: 1\n", "b: 2\n", "c: 3\n"]);
    }

    #[test]
    fn object_paths_follow_scope() {
        let ns = Resource {
            plural: "deployments".into(),
            namespaced: true,
        };
        let cl = Resource {
            plural: "clusterissuers".into(),
            namespaced: false,
        };
        assert_eq!(
            object_path("apps/v1", &ns, "prod", "web"),
            "/apis/apps/v1/namespaces/prod/deployments/web"
        );
        assert_eq!(
            object_path("cert-manager.io/v1", &cl, "prod", "le"),
            "/apis/cert-manager.io/v1/clusterissuers/le"
        );
        assert_eq!(
            object_path(
                "v1",
                &Resource {
                    plural: "services".into(),
                    namespaced: true
                },
                "d",
                "s"
            ),
            "/api/v1/namespaces/d/services/s"
        );
    }
}
