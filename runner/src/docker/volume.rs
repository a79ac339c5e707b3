//! The job's build directory on an anonymous volume of its own.
//!
//! Unpacking the workspace into the container's own filesystem is slow wherever the storage
//! driver is (fuse-overlayfs: 0.16–2.1 s for a small repository under load, against 0.06–0.15 s
//! into a volume). So the job container gets a labelled anonymous volume at its build directory:
//! the workspace still arrives over standard input as before and is unpacked into it, nothing of
//! the user's checkout is mounted, and the volume goes with the container. Writes into it escape
//! the engine's writable-layer sizes, so the disk watchdog walks the volume's directory on this
//! host as well ([`crate::disk::tree_usage`]); hence the volume is used only when the engine is
//! on this host and the runner can read its volumes, which a probe checks once per executor.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use bollard::Docker;
use bollard::models::{MountPoint, VolumeCreateRequest};
use bollard::query_parameters::{InspectContainerOptionsBuilder, ListContainersOptionsBuilder};

use super::{DockerExecutor, engine_err, label_filter};
use crate::executor::{ExecError, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER, LABEL_ROLE, names};

/// The role label of a job's workspace volume (and of the probe's).
pub const ROLE: &str = "workspace";

/// The jobs whose build directory is on a volume: the directory, and the volume's directory on
/// this host once the disk watchdog has looked it up.
#[derive(Debug, Default)]
pub(super) struct Volumes(Mutex<HashMap<String, (String, Option<PathBuf>)>>);

impl Volumes {
    pub(super) fn insert(&self, job_id: &str, dir: &str) {
        let mut jobs = self.0.lock().expect("workspace volumes");
        jobs.insert(job_id.into(), (dir.into(), None));
    }

    pub(super) fn remove(&self, job_id: &str) {
        self.0.lock().expect("workspace volumes").remove(job_id);
    }

    fn get(&self, job_id: &str) -> Option<(String, Option<PathBuf>)> {
        self.0
            .lock()
            .expect("workspace volumes")
            .get(job_id)
            .cloned()
    }

    fn found(&self, job_id: &str, host: PathBuf) {
        if let Some(entry) = self.0.lock().expect("workspace volumes").get_mut(job_id) {
            entry.1 = Some(host);
        }
    }
}

/// Whether jobs may have their build directory on a volume: the engine listens on a local socket,
/// and a labelled probe volume's directory exists and can be read here. A remote engine, or a
/// rootless or virtual-machine one whose volumes live where the runner cannot see them, says no,
/// and jobs unpack into their container's filesystem as without the volume.
pub(super) async fn probe(docker: &Docker, endpoint: &str) -> bool {
    if !endpoint.starts_with("unix://") {
        return false;
    }
    let mut random = [0u8; 6];
    if getrandom::fill(&mut random).is_err() {
        return false;
    }
    let name = format!("slipway-probe-{}", hex::encode(random));
    let labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_OWNER.to_string(), crate::executor::owner_label()),
        (LABEL_ROLE.to_string(), ROLE.to_string()),
    ]);
    let request = VolumeCreateRequest {
        name: Some(name.clone()),
        labels: Some(labels),
        ..Default::default()
    };
    let readable = match docker.create_volume(request).await {
        Ok(volume) => {
            let dir = PathBuf::from(&volume.mountpoint);
            dir.is_absolute() && tokio::fs::read_dir(&dir).await.is_ok()
        }
        Err(_) => return false,
    };
    // The answer is known: the removal goes on beside the job's create instead of before it.
    // Left over only if this process dies first; the sweep removes it then (its owner is gone).
    let docker = docker.clone();
    tokio::spawn(async move {
        let _ = docker
            .remove_volume(
                &name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
    });
    readable
}

/// The host directory of the volume mounted at `dir`, among a container's mounts.
fn host_dir(mounts: Option<&Vec<MountPoint>>, dir: &str) -> Option<PathBuf> {
    mounts?
        .iter()
        .find(|m| m.typ.as_deref() == Some("volume") && m.destination.as_deref() == Some(dir))
        .and_then(|m| m.source.as_deref())
        .map(PathBuf::from)
}

impl DockerExecutor {
    /// The bytes a job has written outside the storage driver's cap, for the disk watchdog: the
    /// writable layers of its containers (all of them when the driver caps nothing, else those of
    /// its services and namespace holder), plus its build directory's volume, walked here.
    pub(super) async fn usage(&self, job_id: &str) -> Result<Option<u64>, ExecError> {
        let lone = self.lone.lock().expect("lone jobs").contains(job_id);
        let volume = self.volumes.get(job_id);
        let quota = self.disk_quota().await;
        if lone && quota && volume.is_none() {
            return Ok(None);
        }
        let measuring = format!("measuring the disk use of job {job_id}");
        let dir = volume.as_ref().map_or("", |(dir, _)| dir.as_str());
        let cached = volume.as_ref().and_then(|(_, host)| host.clone());
        let (layers, host) = if lone && quota && cached.is_some() {
            (0, cached)
        } else if lone {
            let name = names::job_container(job_id);
            // A capped layer is not sized: the engine walks the whole layer to size it.
            let opts = InspectContainerOptionsBuilder::default()
                .size(!quota)
                .build();
            let info = self
                .docker
                .inspect_container(&name, Some(opts))
                .await
                .map_err(engine_err(measuring.clone()))?;
            let layer = if quota { 0 } else { info.size_rw.unwrap_or(0) };
            (layer.max(0) as u64, host_dir(info.mounts.as_ref(), dir))
        } else {
            let filters = label_filter(&[(LABEL_JOB, job_id)]);
            let opts = ListContainersOptionsBuilder::default()
                .all(true)
                .size(true)
                .filters(&filters)
                .build();
            let list = self
                .docker
                .list_containers(Some(opts))
                .await
                .map_err(engine_err(measuring.clone()))?;
            let layers = list.iter().map(|c| c.size_rw.unwrap_or(0).max(0) as u64);
            let job = names::job_container(job_id);
            let host = list
                .iter()
                .find(|c| {
                    c.names
                        .iter()
                        .flatten()
                        .any(|n| n.trim_start_matches('/') == job)
                })
                .and_then(|c| host_dir(c.mounts.as_ref(), dir));
            (layers.sum(), host)
        };
        if volume.is_none() {
            return Ok(Some(layers));
        }
        let host = host.ok_or_else(|| ExecError::Engine {
            action: measuring,
            reason: format!("the engine lists no volume at {dir}"),
        })?;
        self.volumes.found(job_id, host.clone());
        let walked = tokio::task::spawn_blocking(move || crate::disk::tree_usage(&host))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        let walked = walked.map_err(|source| ExecError::Io {
            action: format!("measuring the build directory of job {job_id}"),
            source,
        })?;
        Ok(Some(layers.saturating_add(walked)))
    }
}
