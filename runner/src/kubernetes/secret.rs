//! The job's secret files in a Kubernetes `Secret` owned by its pod.
//!
//! The files that hold secret values ([`FileSpec::secret`]: decrypted files, the script of a job
//! that has secrets) go as one tar under [`SECRET_KEY`] of an `Opaque` Secret labelled like the
//! pod, mounted read-only into the job container alone at [`SECRET_DIR`] and unpacked by its
//! prelude ([`super::pod::SECRET_UNPACK_CMD`]) before anything else. Nothing of them is in the
//! pod spec, its annotations or events. The Secret is created right after the pod (whose kubelet
//! waits for it before starting any container) with an owner reference to the pod's uid, so the
//! cluster's garbage collector deletes it with the pod: the runner needs no more than `create`
//! on secrets, and a runner dying between the two leaves nothing the pod's own deletion misses.
//! Its name is the pod's and a random suffix, so a pod never mounts the Secret of an earlier
//! attempt of its job that the garbage collector has not removed yet. A job without secrets (a
//! pull request from a fork) gets no Secret at all.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::config::KubernetesConfig;
use super::pod;
use crate::docker::files_tar;
use crate::executor::{ExecError, FileSpec, JobSpec};

/// Where the job container sees its Secret (read-only).
pub const SECRET_DIR: &str = "/run/slipway/secret";

/// The Secret's one key: a tar of the secret files, paths relative to `/`.
pub const SECRET_KEY: &str = "files.tar";

/// The most data the API server takes in one Secret.
pub const MAX_SECRET_BYTES: usize = 1 << 20;

/// Whether the job has files that go in a Secret.
pub fn has_secret_files(spec: &JobSpec) -> bool {
    spec.files.iter().any(|f| f.secret)
}

/// The files that do not: they travel with the workspace over the attach stream.
pub fn plain_files(spec: &JobSpec) -> Vec<FileSpec> {
    spec.files.iter().filter(|f| !f.secret).cloned().collect()
}

/// A fresh name for the Secret of pod `pod`: its name and 8 random hex digits.
pub fn secret_name(pod: &str) -> Result<String, ExecError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| ExecError::Engine {
        action: format!("naming the Secret of pod {pod}"),
        reason: e.to_string(),
    })?;
    let mut base = pod.to_string();
    base.truncate(63 - 9);
    Ok(format!("{}-{}", base.trim_end_matches('-'), hex::encode(b)))
}

/// The Secret named `name` holding the job's secret files, or `None` when it has none. It has
/// no owner yet: [`owned_by`] gives it the pod once the API server has named the pod's uid.
pub fn job_secret(
    spec: &JobSpec,
    config: &KubernetesConfig,
    name: &str,
) -> Result<Option<Secret>, ExecError> {
    let files: Vec<FileSpec> = spec.files.iter().filter(|f| f.secret).cloned().collect();
    if files.is_empty() {
        return Ok(None);
    }
    let tar = files_tar(&files).map_err(|source| ExecError::Io {
        action: "packing the job's secret files".into(),
        source,
    })?;
    if tar.len() > MAX_SECRET_BYTES {
        return Err(ExecError::Engine {
            action: format!("preparing job {}", spec.job_id),
            reason: format!(
                "the job's secret files (the script and decrypted files) take {} bytes packed, \
                 and a Kubernetes Secret holds at most {MAX_SECRET_BYTES}: keep large files \
                 encrypted in the repository and decrypt them in the job, or run it on a Docker \
                 runner",
                tar.len()
            ),
        });
    }
    let mut metadata = pod::metadata(spec, config);
    metadata.name = Some(name.to_string());
    Ok(Some(Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(SECRET_KEY.to_string(), ByteString(tar))])),
        immutable: Some(true),
        ..Default::default()
    }))
}

/// `secret` owned by `pod` (as the API server returned it, with its uid): deleted with it.
pub fn owned_by(mut secret: Secret, pod: &Pod) -> Result<Secret, ExecError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().ok_or_else(|| ExecError::Engine {
        action: format!("creating the Secret of pod {name}"),
        reason: "the API server returned the pod without a uid".into(),
    })?;
    secret.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name,
        uid,
        ..Default::default()
    }]);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::ResourceLimits;
    use slipway_secrets::Secret as Sealed;

    fn spec(files: Vec<FileSpec>) -> JobSpec {
        JobSpec {
            job_id: "B7-1".into(),
            build_id: "B7".into(),
            owner: "host:1:2".into(),
            image: "busybox".into(),
            env: vec![],
            working_dir: "/home/travis/build/o/r".into(),
            cmd: vec![],
            files,
            workspace_tar: None,
            services: vec![],
            volumes: vec![],
            docker_socket: false,
            pipeline_file: ".travis.yml".into(),
            own_network: false,
            limits: ResourceLimits::default(),
            open_stdin: false,
            platform: None,
        }
    }

    fn file(path: &str, len: usize, secret: bool) -> FileSpec {
        FileSpec {
            path: path.into(),
            contents: Sealed::new(vec![b'x'; len]),
            mode: 0o600,
            secret,
        }
    }

    #[test]
    fn secret_files_over_what_a_secret_holds_error_before_anything_is_created() {
        let config = KubernetesConfig::default();
        let big = spec(vec![file("/home/travis/build/o/r/blob", 2 << 20, true)]);
        let err = job_secret(&big, &config, "s").unwrap_err().to_string();
        assert!(
            err.contains("a Kubernetes Secret holds at most 1048576"),
            "{err}"
        );
        // The same size without secrets travels with the workspace instead.
        let plain = spec(vec![file("/home/travis/build/o/r/blob", 2 << 20, false)]);
        assert!(job_secret(&plain, &config, "s").unwrap().is_none());
    }

    #[test]
    fn each_pod_gets_a_fresh_secret_name_that_the_api_accepts() {
        let pod = format!("slipway-{}", "a".repeat(55));
        let (a, b) = (secret_name(&pod).unwrap(), secret_name(&pod).unwrap());
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("slipway-aaa"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
    }
}
