//! The `[kubernetes]` table: where job pods go and what they may use.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// CPU, memory and ephemeral storage, as Kubernetes quantities (`"500m"`, `"1Gi"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Resources {
    /// CPU (`"2"`, `"500m"`).
    pub cpu: Option<String>,
    /// Memory (`"4Gi"`).
    pub memory: Option<String>,
    /// Ephemeral storage (`"20Gi"`): the node evicts a pod that writes more.
    pub ephemeral_storage: Option<String>,
}

/// How the Kubernetes executor reaches its cluster and shapes its pods.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "snake_case")]
pub struct KubernetesConfig {
    /// The namespace job pods run in.
    pub namespace: String,
    /// A kubeconfig file; unset, the in-cluster service account (when running in a pod), else
    /// `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; unset, its current context.
    pub context: Option<String>,
    /// Requests of each container of a job (unset: the cluster's defaults, or the limits).
    pub requests: Resources,
    /// Limits of each container of a job; CPU and memory default to the runner's job limits.
    pub limits: Resources,
    /// Node labels a job pod must run on.
    pub node_selector: BTreeMap<String, String>,
    /// The service account job pods run as (unset: the namespace's `default`).
    pub service_account: Option<String>,
    /// Mount the service account's token into job pods. Off: a build must not be able to talk
    /// to the cluster as its pod unless the operator means it to.
    pub automount_service_account_token: bool,
    /// How long a pod may stay pending (pulling images, waiting for a node, starting services)
    /// before its job errors with the pod's events.
    pub pending_timeout_seconds: u64,
    /// How long services may take to answer their readiness check.
    pub service_ready_timeout_seconds: u64,
    /// Grace period of a pod deleted by a cancel or a timeout.
    pub grace_period_seconds: i64,
    /// The pod's own deadline (`activeDeadlineSeconds`): a backstop for the runner's timeouts,
    /// in case the runner itself dies.
    pub active_deadline_seconds: i64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: "default".into(),
            kubeconfig: None,
            context: None,
            requests: Resources::default(),
            limits: Resources::default(),
            node_selector: BTreeMap::new(),
            service_account: None,
            automount_service_account_token: false,
            pending_timeout_seconds: 300,
            service_ready_timeout_seconds: 60,
            grace_period_seconds: 10,
            active_deadline_seconds: 4 * 3600,
        }
    }
}
