//! Waiting for rollouts the way `kubectl rollout status` does (a deployment read, then watched
//! until its status says the new replicas are all there), and saying why a pod is not ready.

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};

use super::Kubernetes;
use super::access::{Cluster, describe};
use super::apply::Manifest;
use crate::error::{Error, one_line};
use slipway_runner::DeployLog;

/// Where a deployment's rollout stands.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Rollout {
    /// Every replica runs the new template and is available.
    Done,
    /// Still rolling out: what it waits for.
    Waiting(String),
    /// The deployment controller gave up (`ProgressDeadlineExceeded`): what it waited for.
    Stalled(String),
}

/// The rollout state `kubectl rollout status` reads from a deployment.
pub(super) fn rollout_state(d: &Deployment) -> Rollout {
    let generation = d.metadata.generation.unwrap_or(0);
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let (updated, total, available) = (
        n(status.updated_replicas),
        n(status.replicas),
        n(status.available_replicas),
    );
    let state = if status.observed_generation.unwrap_or(0) < generation {
        "waiting for the spec update to be observed".to_owned()
    } else if updated < want {
        format!("{updated} of {want} new replicas updated")
    } else if total > updated {
        format!("{} old replicas pending termination", total - updated)
    } else if available < updated {
        format!("{available} of {updated} updated replicas available")
    } else {
        return Rollout::Done;
    };
    let stalled = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if stalled {
        Rollout::Stalled(state)
    } else {
        Rollout::Waiting(state)
    }
}

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

    /// Waits for one deployment: reads it, then watches it from that version until it has
    /// rolled out, its controller gives up, or `deadline` passes.
    pub(super) async fn wait_rollout(
        &self,
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        deadline: Instant,
        log: &dyn DeployLog,
    ) -> Result<(), Error> {
        let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
        let get_err =
            |e: kube::Error| self.api_err(format!("GET deployments/{name}"), describe(&e));
        let mut last = String::new();
        let mut current = api.get(name).await.map_err(get_err)?;
        loop {
            let state = rollout_state(&current);
            let waiting = match &state {
                Rollout::Done => {
                    log.line(&format!("kubernetes: deployment {name} rolled out"));
                    return Ok(());
                }
                Rollout::Waiting(s) | Rollout::Stalled(s) => s.clone(),
            };
            if waiting != last {
                log.line(&format!("kubernetes: deployment {name}: {waiting}"));
                last.clone_from(&waiting);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let stalled = matches!(state, Rollout::Stalled(_));
            if stalled || left.is_zero() {
                let detail = match self.failing_pod(cluster, namespace, &current).await {
                    Some(r) => format!("{waiting}; {r}"),
                    None => waiting,
                };
                return Err(self.rollout_failed(name, &detail, stalled));
            }
            let watched = tokio::time::timeout(left, next_change(&api, &current))
                .await
                .unwrap_or(Ok(Change::Ended))
                .map_err(get_err)?;
            current = match watched {
                Change::Version(d) => *d,
                Change::Ended => api.get(name).await.map_err(get_err)?,
                Change::Deleted => {
                    return Err(Error::Failed {
                        provider: self.name,
                        message: format!("deployment {name} was deleted while rolling out"),
                    });
                }
            };
        }
    }

    /// The error of a rollout that did not finish: stalled by its controller or out of time.
    fn rollout_failed(&self, name: &str, detail: &str, stalled: bool) -> Error {
        if stalled {
            return Error::Failed {
                provider: self.name,
                message: one_line(&format!(
                    "deployment {name} exceeded its progress deadline: {detail}"
                )),
            };
        }
        Error::Timeout {
            provider: self.name,
            what: format!("rollout of deployment {name}"),
            seconds: self.timeout,
            detail: Some(one_line(detail)),
        }
    }

    /// Why a pod of the deployment is not ready (`ImagePullBackOff: …`), when a pod says.
    pub(super) async fn failing_pod(
        &self,
        cluster: &Cluster,
        namespace: &str,
        deployment: &Deployment,
    ) -> Option<String> {
        let labels = deployment.spec.as_ref()?.selector.match_labels.as_ref()?;
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        list.items.iter().find_map(pod_problem)
    }
}

/// What a watch of one deployment saw next.
enum Change {
    /// A new version of it.
    Version(Box<Deployment>),
    /// Nothing: the watch ended (the server's timeout, an expired version); read it again.
    Ended,
    /// It was deleted.
    Deleted,
}

/// The deployment's next version, watched from `current`'s.
async fn next_change(api: &Api<Deployment>, current: &Deployment) -> Result<Change, kube::Error> {
    let name = current.metadata.name.clone().unwrap_or_default();
    let version = current
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let mut events = api.watch(&params, &version).await?.boxed();
    while let Some(event) = events.next().await {
        match event? {
            WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                return Ok(Change::Version(Box::new(d)));
            }
            WatchEvent::Deleted(_) => return Ok(Change::Deleted),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(_) => return Ok(Change::Ended),
        }
    }
    Ok(Change::Ended)
}

/// What keeps one pod from being ready: a container waiting for a reason other than starting,
/// one that exited with an error, or no node to run on.
fn pod_problem(pod: &Pod) -> Option<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref()?;
    let containers: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .collect();
    for cs in containers {
        let cname = &cs.name;
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or("");
            if !reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing" {
                let msg = w.message.as_deref().unwrap_or("");
                return Some(format!("pod {pod_name} container {cname}: {reason}: {msg}"));
            }
        }
        let terminated = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .or_else(|| cs.state.as_ref().and_then(|s| s.terminated.as_ref()));
        if let Some(t) = terminated
            && t.exit_code != 0
        {
            let reason = t.reason.as_deref().unwrap_or("Error");
            return Some(format!(
                "pod {pod_name} container {cname}: {reason} (exit code {})",
                t.exit_code
            ));
        }
    }
    status.conditions.iter().flatten().find_map(|c| {
        (c.type_ == "PodScheduled" && c.status == "False").then(|| {
            format!(
                "pod {pod_name} unschedulable: {}",
                c.message.as_deref().unwrap_or("")
            )
        })
    })
}
