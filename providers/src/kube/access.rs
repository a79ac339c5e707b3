//! Reaching the API server with kube-rs. Both ways in end in a kubeconfig: the one `kubernetes`
//! reads ([`super::kubeconfig`]), or the one `gke` writes from a service-account key and the GKE
//! API ([`super::gke`]); kube-rs turns it into a client (TLS, tokens, client certificates, exec
//! plugins where the kubeconfig may use them).

use std::path::PathBuf;

use kube::config::{
    AuthInfo, Cluster as KubeCluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};
use slipway_secrets::Secret;

use super::Kubernetes;
use crate::context::DeployContext;
use crate::error::Error;
use slipway_runner::DeployLog;

/// What to connect to: a kubeconfig and its context.
pub(super) struct Target {
    pub(super) kubeconfig: Kubeconfig,
    pub(super) context: String,
    /// The file it was read from (errors name it); `None` when written from a GKE key.
    pub(super) file: Option<PathBuf>,
}

impl Target {
    /// One server reached with a bearer token (`ca`: base64 PEM, as kubeconfigs and the GKE API
    /// give it).
    pub(super) fn token(server: String, ca: Option<String>, token: Secret<String>) -> Target {
        let name = "gke".to_owned();
        let kubeconfig = Kubeconfig {
            clusters: vec![NamedCluster {
                name: name.clone(),
                cluster: Some(KubeCluster {
                    server: Some(server),
                    certificate_authority_data: ca,
                    ..KubeCluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: name.clone(),
                auth_info: Some(AuthInfo {
                    token: Some(token.into_exposed().into()),
                    ..AuthInfo::default()
                }),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: name.clone(),
                context: Some(Context {
                    cluster: name.clone(),
                    user: Some(name.clone()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(name.clone()),
            ..Kubeconfig::default()
        };
        Target {
            kubeconfig,
            context: name,
            file: None,
        }
    }
}

/// A connected API server: the client and the namespace objects without one go to.
pub(super) struct Cluster {
    pub(super) client: kube::Client,
    pub(super) namespace: String,
}

/// A kube-rs error as one line: the API server's message and status, else each cause once.
pub(super) fn describe(e: &kube::Error) -> String {
    if let kube::Error::Api(s) = e {
        return format!("{} (HTTP {})", s.message, s.code);
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The status code of an error the API server answered with.
pub(super) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Kubernetes {
    pub(super) async fn connect(
        &self,
        ctx: &DeployContext,
        log: &dyn DeployLog,
    ) -> Result<Cluster, Error> {
        let target = match &self.access {
            super::Access::Gke(gke) => self.gke_target(ctx, gke, log).await?,
            super::Access::Kubeconfig { path, context } => {
                self.kubeconfig_target(ctx, path.as_deref(), context.as_deref(), log)?
            }
        };
        let bad = |m: String| match &target.file {
            Some(f) => self.file_err(f, m),
            None => self.api_err("connecting to the API server", m),
        };
        let options = KubeConfigOptions {
            context: Some(target.context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(target.kubeconfig.clone(), &options)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| bad(describe(&e)))?;
        Ok(Cluster { client, namespace })
    }
}

impl Kubernetes {
    /// The dry run's calls that reach the cluster: the token exchange and cluster lookup for
    /// `gke`, the kubeconfig load for `kubernetes`.
    pub(super) fn dry_run_access(&self, ctx: &DeployContext) -> Vec<crate::calls::ApiCall> {
        use crate::calls::ApiCall;
        let mut calls = Vec::new();
        match &self.access {
            super::Access::Gke(gke) => {
                let sa = ctx
                    .input(self.name, "key_file", &gke.key_file)
                    .ok()
                    .and_then(|p| super::gke::read_key_file(&p).ok());
                calls.push(
                    ApiCall::new("oauth", "POST token")
                        .param("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                        .param(
                            "iss",
                            sa.as_ref()
                                .map(|s| s.client_email.clone())
                                .unwrap_or_else(|| format!("(client_email of {})", gke.key_file)),
                        )
                        .param("assertion", "[secure]"),
                );
                calls.push(ApiCall::new("gke", format!("GET {}", gke.resource())));
            }
            super::Access::Kubeconfig { path, context } => {
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

impl Kubernetes {
    /// A kube-rs error of one call: the API server's refusal is an error of `refused`, a call
    /// that did not get an answer one of `action`.
    pub(super) fn kube_err(&self, action: &str, refused: &str, e: &kube::Error) -> Error {
        match status_code(e) {
            Some(_) => self.api_err(refused, describe(e)),
            None => self.api_err(action, describe(e)),
        }
    }
}
