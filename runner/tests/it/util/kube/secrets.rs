//! The stand-in's Secrets: created (read into `k8s-openapi`'s `Secret` and held to the API
//! server's rules), written out for the pods that mount them, and removed with their owner pod
//! as the garbage collector would.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::{Secret, SecretVolumeSource};

use super::{StandIn, creating, json, status, validate};

pub(super) async fn create(
    State(s): State<Arc<StandIn>>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let mut secret: Secret = match creating(q, &body, &ns, validate::secret) {
        Ok(secret) => secret,
        Err(refused) => return *refused,
    };
    let name = secret.metadata.name.clone().unwrap_or_default();
    secret.metadata.uid = Some(format!("uid-secret-{name}"));
    secret.metadata.resource_version = Some("1".into());
    secret.metadata.namespace = Some(ns);
    {
        let mut secrets = s.secrets.lock().unwrap();
        if secrets.contains_key(&name) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("secrets \"{name}\" already exists"),
            );
        }
        secrets.insert(name, secret.clone());
    }
    // An owner that is already gone: the garbage collector deletes the Secret at once.
    collect_garbage(&s);
    (StatusCode::CREATED, json(&without_data(secret))).into_response()
}

/// The object as the answer shows it; the data is not echoed back to the tests' logs.
fn without_data(mut secret: Secret) -> Secret {
    secret.data = None;
    secret
}

/// Deletes every Secret that has owners none of which is a pod the stand-in holds.
pub(crate) fn collect_garbage(s: &StandIn) {
    let uids: Vec<String> = s
        .pods
        .lock()
        .unwrap()
        .values()
        .filter_map(|p| p.created.metadata.uid.clone())
        .collect();
    s.secrets.lock().unwrap().retain(|_, secret| {
        let owners = secret
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default();
        owners.is_empty() || owners.iter().any(|o| uids.contains(&o.uid))
    });
}

impl StandIn {
    /// Secrets labelled with build `id`.
    pub fn secrets_of_build(&self, id: &str) -> Vec<String> {
        let label = slipway_runner::kubernetes::pod::label_value(id);
        self.secrets
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("dev.slipway.build"))
                    .is_some_and(|b| *b == label)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The files of secret volume `source` written to a fresh directory, as the kubelet projects
/// them (each key a file, `defaultMode` its mode), or `None` while the Secret does not exist.
pub(crate) fn project(s: &StandIn, source: &SecretVolumeSource) -> Option<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let name = source.secret_name.clone().unwrap_or_default();
    let secret = s.secrets.lock().unwrap().get(&name).cloned()?;
    let dir = tempfile::Builder::new()
        .prefix("slipway-standin-secret-")
        .tempdir()
        .unwrap();
    let mode = u32::try_from(source.default_mode.unwrap_or(0o644)).unwrap();
    for (key, value) in secret.data.iter().flatten() {
        let path = dir.path().join(key);
        std::fs::write(&path, &value.0).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    Some(dir)
}
