//! Reading a job pod's state: where its job container is, why it is still pending, and the
//! pod's events for the log when it is stuck.

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::ListParams;

use super::pod::JOB_CONTAINER;
use crate::executor::ExecError;

/// Where the job container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobState {
    /// Not running yet; the reasons the pod gives (`ImagePullBackOff`, `Unschedulable`, a
    /// service not started yet), if any.
    Pending(Vec<String>),
    /// Running.
    Running,
    /// Terminated with this exit code.
    Terminated(i64),
    /// The pod is over without its job container having run to an end (evicted, deleted,
    /// past its deadline), with the pod's reason.
    Failed(String),
    /// The pod does not exist (deleted).
    Gone,
}

pub(super) fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ExecError {
    let action = action.into();
    move |e| ExecError::Engine {
        action,
        reason: describe(&e),
    }
}

pub(super) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

pub(super) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The job container's state in pod `name`.
pub(super) async fn job_state(pods: &Api<Pod>, name: &str) -> Result<JobState, ExecError> {
    match pods.get_opt(name).await {
        Ok(Some(pod)) => Ok(state_of(&pod)),
        Ok(None) => Ok(JobState::Gone),
        Err(e) => Err(api_err(format!("reading pod {name}"))(e)),
    }
}

/// The job container's state as `pod` reports it.
pub(super) fn state_of(pod: &Pod) -> JobState {
    let Some(status) = &pod.status else {
        return JobState::Pending(Vec::new());
    };
    let job = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == JOB_CONTAINER);
    if let Some(state) = job.and_then(|c| c.state.as_ref()) {
        if let Some(t) = &state.terminated {
            return JobState::Terminated(i64::from(t.exit_code));
        }
        if state.running.is_some() {
            return JobState::Running;
        }
    }
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        let why = [status.reason.as_deref(), status.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        return JobState::Failed(if why.is_empty() {
            "the pod ended before its job container ran".into()
        } else {
            why
        });
    }
    JobState::Pending(pending_reasons(pod))
}

/// Why the pod is not running yet: unschedulable conditions and waiting containers.
fn pending_reasons(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let mut reasons = Vec::new();
    for c in status.conditions.iter().flatten() {
        if c.status == "False"
            && let Some(reason) = &c.reason
        {
            reasons.push(match &c.message {
                Some(m) => format!("{reason}: {m}"),
                None => reason.clone(),
            });
        }
    }
    let containers: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    for c in containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = &w.reason
            && reason != "PodInitializing"
        {
            reasons.push(match &w.message {
                Some(m) => format!("{}: {reason}: {m}", c.name),
                None => format!("{}: {reason}", c.name),
            });
        }
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && c.name != JOB_CONTAINER
        {
            reasons.push(format!("{}: exited with code {}", c.name, t.exit_code));
        }
    }
    reasons
}

/// The pod's events, oldest first, one per line (`reason: message`).
pub(super) async fn pod_events(events: &Api<Event>, name: &str) -> String {
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    match events.list(&params).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
            items
                .iter()
                .map(|e| {
                    format!(
                        "  {} {}: {}",
                        e.type_.as_deref().unwrap_or("Normal"),
                        e.reason.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or("").trim()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("  (the pod's events could not be read: {})", describe(&e)),
    }
}
