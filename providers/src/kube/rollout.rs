//! Waiting for rollouts the way `kubectl rollout status` does, and saying why a pod is not ready.

use std::time::Instant;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::Kubernetes;
use super::access::{Cluster, status_message};
use super::apply::Manifest;
use crate::context::DeployContext;
use crate::error::{Error, one_line};
use slipway_runner::DeployLog;

impl Kubernetes {
    /// Deployments whose rollout the deploy waits for: applied ones and those given new images.
    pub(super) fn rollouts(
        &self,
        manifests: &[Manifest],
        namespace: &str,
    ) -> Vec<(String, String)> {
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
    /// Waits for one deployment the way `kubectl rollout status` does.
    pub(super) async fn wait_rollout(
        &self,
        ctx: &DeployContext,
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        deadline: Instant,
        log: &dyn DeployLog,
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
    pub(super) async fn failing_pod(
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
