//! What the stand-in refuses, as the API server would: bodies that are not their type (read into
//! the `k8s-openapi` type by the runner's `kubernetes::checked`, with every field the type drops
//! named), and pods breaking the rules the executor must keep.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod};

pub use slipway_runner::kubernetes::checked::read as body;

fn dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

fn label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// The rules of a pod created in namespace `ns`.
pub fn pod(pod: &Pod, ns: &str) -> Result<(), String> {
    let meta = &pod.metadata;
    let name = meta.name.as_deref().unwrap_or("");
    if !dns_label(name) {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be a DNS label"
        ));
    }
    if meta.namespace.as_deref().is_some_and(|n| n != ns) {
        return Err("metadata.namespace: does not match the request's namespace".into());
    }
    for (k, v) in meta.labels.iter().flatten() {
        if !label_value(v) {
            return Err(format!("metadata.labels: Invalid value: {v:?} for {k}"));
        }
    }
    let Some(spec) = &pod.spec else {
        return Err("spec: Required value".into());
    };
    if !matches!(
        spec.restart_policy.as_deref(),
        None | Some("Always" | "OnFailure" | "Never")
    ) {
        return Err("spec.restartPolicy: Unsupported value".into());
    }
    if spec.containers.is_empty() {
        return Err("spec.containers: Required value".into());
    }
    let volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mut names = BTreeSet::new();
    let init = spec.init_containers.iter().flatten();
    for (c, is_init) in init
        .map(|c| (c, true))
        .chain(spec.containers.iter().map(|c| (c, false)))
    {
        container(c, is_init, &volumes)?;
        if !names.insert(c.name.as_str()) {
            return Err(format!("containers: Duplicate value: {:?}", c.name));
        }
    }
    for alias in spec.host_aliases.iter().flatten() {
        if alias.ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("spec.hostAliases: Invalid value: {:?}", alias.ip));
        }
    }
    Ok(())
}

fn container(c: &Container, is_init: bool, volumes: &BTreeSet<&str>) -> Result<(), String> {
    if !dns_label(&c.name) {
        return Err(format!(
            "containers: Invalid value: {:?}: must be a DNS label",
            c.name
        ));
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        return Err(format!("{}.image: Required value", c.name));
    }
    match (is_init, c.restart_policy.as_deref()) {
        (_, None) | (true, Some("Always")) => {}
        (_, Some(p)) => {
            return Err(format!(
                "{}.restartPolicy: Unsupported value: {p:?}",
                c.name
            ));
        }
    }
    if c.startup_probe.is_some() && !is_init && c.restart_policy.is_some() {
        return Err(format!("{}.startupProbe: Forbidden", c.name));
    }
    for m in c.volume_mounts.iter().flatten() {
        if !volumes.contains(m.name.as_str()) {
            return Err(format!(
                "{}.volumeMounts.name: Not found: {:?}",
                c.name, m.name
            ));
        }
        if !m.mount_path.starts_with('/') {
            return Err(format!(
                "{}.volumeMounts.mountPath: must be absolute",
                c.name
            ));
        }
    }
    for e in c.env.iter().flatten() {
        if e.name.is_empty() || e.name.contains('=') {
            return Err(format!("{}.env: Invalid value: {:?}", c.name, e.name));
        }
    }
    Ok(())
}
