//! What the stand-in refuses, as the API server would: bodies that are not their type (read into
//! the `k8s-openapi` type by the runner's `kubernetes::checked`, with every field the type drops
//! named), and pods and Secrets breaking the rules the executor must keep.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};

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

/// The most data one Secret holds.
const MAX_SECRET_BYTES: usize = 1 << 20;

/// The rules of a Secret created in namespace `ns`.
pub fn secret(secret: &Secret, ns: &str) -> Result<(), String> {
    let meta = &secret.metadata;
    let name = meta.name.as_deref().unwrap_or("");
    // A DNS subdomain: DNS labels joined by dots.
    if name.len() > 253 || !name.split('.').all(dns_label) {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be a DNS subdomain"
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
    for (i, o) in meta.owner_references.iter().flatten().enumerate() {
        if o.api_version.is_empty() || o.kind.is_empty() || o.name.is_empty() || o.uid.is_empty() {
            return Err(format!(
                "metadata.ownerReferences[{i}]: apiVersion, kind, name and uid are required"
            ));
        }
    }
    if !matches!(secret.type_.as_deref(), None | Some("Opaque")) {
        return Err(format!(
            "type: the stand-in keeps only Opaque Secrets, not {:?}",
            secret.type_
        ));
    }
    let mut size = 0;
    for (key, value) in secret.data.iter().flatten() {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!("data[{key:?}]: Invalid value: a valid config key"));
        }
        size += value.0.len();
    }
    if size > MAX_SECRET_BYTES {
        return Err(format!(
            "data: Too long: must have at most {MAX_SECRET_BYTES} bytes"
        ));
    }
    Ok(())
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
    for v in spec.volumes.iter().flatten() {
        if let Some(secret) = &v.secret {
            if secret.secret_name.as_deref().is_none_or(str::is_empty) {
                return Err(format!(
                    "volumes[{}].secret.secretName: Required value",
                    v.name
                ));
            }
            if secret
                .default_mode
                .is_some_and(|m| !(0..=0o777).contains(&m))
            {
                return Err(format!(
                    "volumes[{}].secret.defaultMode: Invalid value",
                    v.name
                ));
            }
        }
    }
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
