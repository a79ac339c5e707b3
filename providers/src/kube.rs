//! `provider: kubernetes` and `provider: gke`: `kubectl apply -f DIR`, `kubectl set image` and
//! `kubectl create secret generic` as Kubernetes API calls through kube-rs (server-side apply and
//! strategic-merge patches), then watching each deployment until it has rolled out. `gke` gets
//! its cluster and a token from a service-account key file; `kubernetes` reads a kubeconfig.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, one_line, option_error};
use crate::options::{Options, Text};
use slipway_runner::DeployLog;

mod access;
mod apply;
mod gke;
mod kubeconfig;
mod rollout;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, Patch, PatchParams};

use apply::{Resource, group_path};

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

/// The field manager of everything the deploy applies and patches.
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
    Gke(GkeCluster),
}

/// Where a GKE cluster is and the key that reaches it, as `gke` options name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GkeCluster {
    /// Google Cloud project id.
    pub project: String,
    /// Zone or region of the cluster.
    pub location: String,
    /// Cluster name.
    pub cluster: String,
    /// The decrypted service-account key file, relative to the working tree.
    pub key_file: String,
}

impl GkeCluster {
    /// The cluster's name in the GKE API: `projects/P/locations/L/clusters/C`.
    pub fn resource(&self) -> String {
        format!(
            "projects/{}/locations/{}/clusters/{}",
            self.project, self.location, self.cluster
        )
    }
}

/// `kubectl set image deployments/DEPLOYMENT CONTAINER=IMAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetImage {
    pub deployment: String,
    /// The container in its pod template.
    pub container: String,
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
        let access = Access::Gke(GkeCluster {
            project,
            location,
            cluster,
            key_file,
        });
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

    fn api_err(&self, action: impl Into<String>, message: impl std::fmt::Display) -> Error {
        Error::Api {
            provider: self.name,
            action: action.into(),
            message: one_line(&message.to_string()),
        }
    }
}

/// Content type of a server-side apply (`kubectl apply --server-side`).
const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// Content type of a strategic-merge patch (`kubectl set image`).
const MERGE_PATCH: &str = "application/strategic-merge-patch+json";

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
        calls.extend(self.dry_run_access(ctx));
        let ns = self.namespace.clone().unwrap_or_else(|| "default".into());
        for s in &self.secrets {
            let mut c = ApiCall::new(
                "kubernetes",
                format!("PATCH /api/v1/namespaces/{ns}/secrets/{}", s.name),
            )
            .param("content-type", APPLY_PATCH);
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
                .param("content-type", APPLY_PATCH),
            );
        }
        for (d, patch) in self.image_patches() {
            let mut c = ApiCall::new(
                "kubernetes",
                format!("PATCH /apis/apps/v1/namespaces/{ns}/deployments/{d}"),
            )
            .param("content-type", MERGE_PATCH);
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
                        "then watched until rolled out, at most {} s in all",
                        self.timeout
                    )),
                );
            }
        }
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let manifests = self.load_manifests(ctx)?;
        let cluster = self.connect(ctx, log).await?;
        let ns = cluster.namespace.clone();
        let secret = Resource {
            api: ApiResource::erase::<Secret>(&()),
            namespaced: true,
        };
        for s in &self.secrets {
            let action = format!("apply secret {}", s.name);
            let body = self.secret_body(s, &ns);
            self.apply(&cluster, &secret, &ns, &body, &action, &action)
                .await?;
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
            let refused = format!("apply {} ({}/{})", m.file, m.kind, m.name);
            self.apply(
                &cluster,
                &res,
                &namespace,
                &body,
                &format!("apply {}", m.file),
                &refused,
            )
            .await?;
            log.line(&format!(
                "kubernetes: {}/{} configured ({})",
                res.api.plural, m.name, m.file
            ));
        }
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        let set_image = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        for (d, patch) in self.image_patches() {
            let action = format!("set image deployments/{d}");
            deployments
                .patch(&d, &set_image, &Patch::Strategic(&patch))
                .await
                .map_err(|e| self.kube_err(&action, &action, &e))?;
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
                self.wait_rollout(&cluster, n, d, deadline, log).await?;
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
