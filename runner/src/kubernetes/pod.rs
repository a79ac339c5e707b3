//! Pure construction of a job's pod from its [`JobSpec`], so it can be snapshot-tested without a
//! cluster.
//!
//! One job is one pod: the job container runs the job's command behind [`UNPACK_CMD`], services
//! are native sidecars (init containers with `restartPolicy: Always`) whose start-up probe is the
//! service's readiness check, so the kubelet starts the job only once every service answers on
//! `localhost`. The job's files and workspace are not in the pod at all: the workspace and the
//! files without secrets arrive over the job container's standard input (the attach stream) into
//! an `emptyDir` at the build dir; the secret files come from a Secret owned by the pod
//! ([`super::secret`]), mounted into the job container alone. No secret ever lands in the pod
//! spec or its annotations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, ExecAction, HostAlias, Pod, PodSpec,
    Probe, ResourceRequirements, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::config::KubernetesConfig;
use super::secret::{SECRET_DIR, has_secret_files};
use crate::docker::requests::{KEPT_CAPABILITIES, service_hosts};
use crate::executor::{
    ExecError, JobSpec, LABEL_BUILD, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER, LABEL_ROLE, ServiceSpec,
};

/// The job container's name inside the pod.
pub const JOB_CONTAINER: &str = "job";

/// The job container's first command, run before the job's own (`"$@"`): it reads the size of
/// the job's files (the script, decrypted files, the workspace) on a line of standard input,
/// then that many bytes of tar, unpacked as the container's root. The executor writes them over
/// the attach stream as soon as the container runs; the job's own command starts only once every
/// file is in place.
pub const UNPACK_CMD: &str = "read -r n && head -c \"$n\" | tar -xf - -C / \
|| { echo \"slipway: unpacking the job's files failed (the job image needs tar and head, and a writable /)\" >&2; exit 125; }; \
exec \"$@\"";

/// [`UNPACK_CMD`] behind the unpacking of the job's secret files from its Secret's volume: they
/// are in place before the rest arrives, as with the Docker executor, where they lead the tar.
pub const SECRET_UNPACK_CMD: &str = concat!(
    "tar -xf /run/slipway/secret/files.tar -C / \
|| { echo \"slipway: unpacking the job's secret files failed (the job image needs tar, and a writable /)\" >&2; exit 125; }; ",
    "read -r n && head -c \"$n\" | tar -xf - -C / \
|| { echo \"slipway: unpacking the job's files failed (the job image needs tar and head, and a writable /)\" >&2; exit 125; }; \
exec \"$@\""
);

/// The name of the job container's volume holding its Secret.
const SECRET_VOLUME: &str = "secret";

/// `defaultMode` of the Secret's files: read by the job's first command, as root, only.
const SECRET_MODE: i32 = 0o400;

/// The pod's name for a job: `slipway-` and the job id, lower-cased, anything but letters,
/// digits and `-` turned into `-` (a DNS label, at most 63 characters).
pub fn pod_name(job_id: &str) -> String {
    let mut name = format!("slipway-{}", dns_label(job_id));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// `value` as a DNS label: lower case, `[a-z0-9-]`.
fn dns_label(value: &str) -> String {
    value
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect()
}

/// `value` as a label value (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both
/// ends); the exact value is kept in an annotation of the same key.
pub fn label_value(value: &str) -> String {
    let mut v: String = value
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    v.truncate(63);
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The label selector of everything Slipway manages.
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED}=true")
}

/// The sidecar container's name for a service (`svc-` and its DNS label).
pub fn service_container(service: &str) -> String {
    let mut name = format!("svc-{}", dns_label(service));
    name.truncate(63);
    name
}

/// Builds the job's pod, or refuses what this executor cannot run. When the job has secret files
/// the pod mounts the Secret `secret_name` ([`super::secret::job_secret`]) into its job container.
pub fn job_pod(
    spec: &JobSpec,
    config: &KubernetesConfig,
    secret_name: &str,
) -> Result<Pod, ExecError> {
    if spec.docker_socket {
        return Err(docker_refused(spec));
    }
    let mut node_selector = config.node_selector.clone();
    if let Some(platform) = &spec.platform {
        let arch = platform.rsplit('/').next().unwrap_or(platform);
        node_selector.insert("kubernetes.io/arch".into(), arch.into());
    }
    let hosts = service_hosts(&spec.services);
    let host_aliases = (!hosts.is_empty()).then(|| {
        vec![HostAlias {
            ip: "127.0.0.1".into(),
            hostnames: Some(
                hosts
                    .iter()
                    .map(|h| h.trim_end_matches(":127.0.0.1").to_string())
                    .collect(),
            ),
        }]
    });
    let sidecars: Vec<Container> = spec
        .services
        .iter()
        .map(|s| service_sidecar(s, spec, config))
        .collect();
    Ok(Pod {
        metadata: metadata(spec, config),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(config.active_deadline_seconds),
            termination_grace_period_seconds: Some(config.grace_period_seconds),
            // A build reads no cluster credentials unless the operator says so.
            automount_service_account_token: Some(config.automount_service_account_token),
            service_account_name: config.service_account.clone(),
            // The cluster's services as environment variables are none of a build's business.
            enable_service_links: Some(false),
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            host_aliases,
            init_containers: (!sidecars.is_empty()).then_some(sidecars),
            containers: vec![job_container(spec, config)],
            volumes: Some(job_volumes(spec, secret_name)),
            ..Default::default()
        }),
        status: None,
    })
}

/// Why a job with `services: docker` cannot run here, naming the file that asks for it and the
/// two ways out: a pod has no container engine to hand to the job.
fn docker_refused(spec: &JobSpec) -> ExecError {
    let file = &spec.pipeline_file;
    ExecError::Engine {
        action: format!("preparing job {}", spec.job_id),
        reason: format!(
            "{file} asks for `services: docker` (a Docker engine for the job), which this runner \
             cannot give: it runs jobs as Kubernetes pods (`executor = \"kubernetes\"`), and a pod \
             has no container engine to hand to the job. Either run this repository's builds on \
             a runner with `executor = \"docker\"` (a trusted build gets the engine there), or \
             remove `docker` from `services:` in {file} and build images without an engine \
             (a daemonless builder such as kaniko or buildah)."
        ),
    }
}

/// The pod's name, labels and annotations; its Secret carries the same.
pub(super) fn metadata(spec: &JobSpec, config: &KubernetesConfig) -> ObjectMeta {
    let labels = BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_JOB.to_string(), label_value(&spec.job_id)),
        (LABEL_BUILD.to_string(), label_value(&spec.build_id)),
        (LABEL_ROLE.to_string(), "job".to_string()),
    ]);
    // Label values cannot hold the owner's `host:pid:start`, nor every job id: annotations can.
    let annotations = BTreeMap::from([
        (LABEL_JOB.to_string(), spec.job_id.clone()),
        (LABEL_BUILD.to_string(), spec.build_id.clone()),
        (LABEL_OWNER.to_string(), spec.owner.clone()),
    ]);
    ObjectMeta {
        name: Some(pod_name(&spec.job_id)),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..Default::default()
    }
}

/// The volumes: the workspace's `emptyDir`, one per cache mount (caches are not kept between
/// pods on this executor: each job starts with empty cache directories), and the Secret's.
fn job_volumes(spec: &JobSpec, secret_name: &str) -> Vec<Volume> {
    let empty = |name: String| Volume {
        name,
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    let secret = has_secret_files(spec).then(|| Volume {
        name: SECRET_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name.to_string()),
            default_mode: Some(SECRET_MODE),
            optional: Some(false),
            items: None,
        }),
        ..Default::default()
    });
    std::iter::once(empty("workspace".into()))
        .chain((0..spec.volumes.len()).map(|i| empty(format!("cache-{i}"))))
        .chain(secret)
        .collect()
}

fn job_container(spec: &JobSpec, config: &KubernetesConfig) -> Container {
    let secret = has_secret_files(spec);
    let mut command = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        if secret {
            SECRET_UNPACK_CMD
        } else {
            UNPACK_CMD
        }
        .to_string(),
        "slipway-unpack".to_string(),
    ];
    command.extend(spec.cmd.iter().cloned());
    let mounts = std::iter::once(VolumeMount {
        name: "workspace".into(),
        mount_path: spec.working_dir.clone(),
        ..Default::default()
    })
    .chain(spec.volumes.iter().enumerate().map(|(i, v)| VolumeMount {
        name: format!("cache-{i}"),
        mount_path: v.target.clone(),
        ..Default::default()
    }))
    .chain(secret.then(|| VolumeMount {
        name: SECRET_VOLUME.into(),
        mount_path: SECRET_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }))
    .collect();
    Container {
        name: JOB_CONTAINER.into(),
        image: Some(spec.image.clone()),
        command: Some(command),
        env: Some(env_vars(&spec.env)),
        working_dir: Some("/".into()),
        // Standard input carries the job's files first (`UNPACK_CMD`), then, when the job
        // asked for it, the runner's replies; it closes when the runner closes it.
        stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        volume_mounts: Some(mounts),
        resources: Some(resources(spec, config)),
        security_context: Some(security_context()),
        ..Default::default()
    }
}

fn service_sidecar(service: &ServiceSpec, spec: &JobSpec, config: &KubernetesConfig) -> Container {
    let period = 1;
    let startup_probe = service.ready.as_ref().map(|cmd| Probe {
        exec: Some(ExecAction {
            command: Some(cmd.clone()),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(
            i32::try_from(config.service_ready_timeout_seconds.max(1)).unwrap_or(i32::MAX),
        ),
        ..Default::default()
    });
    Container {
        name: service_container(&service.name),
        image: Some(service.image.clone()),
        args: service.cmd.clone(),
        env: (!service.env.is_empty()).then(|| env_vars(&service.env)),
        // A native sidecar: started before the job, in order, and stopped after it.
        restart_policy: Some("Always".into()),
        readiness_probe: startup_probe.clone().map(|p| Probe {
            failure_threshold: Some(3),
            ..p
        }),
        startup_probe,
        resources: Some(resources(spec, config)),
        security_context: Some(security_context()),
        ..Default::default()
    }
}

fn env_vars(env: &[(String, String)]) -> Vec<EnvVar> {
    env.iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect()
}

/// Requests as configured; limits as configured, else the runner's limits for the job.
fn resources(spec: &JobSpec, config: &KubernetesConfig) -> ResourceRequirements {
    let quantities = |r: &super::config::Resources| {
        let mut m = BTreeMap::new();
        if let Some(cpu) = &r.cpu {
            m.insert("cpu".to_string(), Quantity(cpu.clone()));
        }
        if let Some(memory) = &r.memory {
            m.insert("memory".to_string(), Quantity(memory.clone()));
        }
        if let Some(disk) = &r.ephemeral_storage {
            m.insert("ephemeral-storage".to_string(), Quantity(disk.clone()));
        }
        m
    };
    let requests = quantities(&config.requests);
    let mut limits = quantities(&config.limits);
    limits
        .entry("cpu".into())
        .or_insert_with(|| Quantity(format!("{}m", spec.limits.nano_cpus / 1_000_000)));
    limits
        .entry("memory".into())
        .or_insert_with(|| Quantity(spec.limits.memory_bytes.to_string()));
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: Some(limits),
        ..Default::default()
    }
}

/// The same capability set as the Docker executor's containers, and no privilege escalation
/// (`no-new-privileges`).
fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: Some(KEPT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{FileSpec, ResourceLimits, VolumeMount as JobVolume};
    use slipway_secrets::Secret;

    fn spec() -> JobSpec {
        JobSpec {
            job_id: "B42-1".into(),
            build_id: "B42".into(),
            owner: "host:12:345".into(),
            image: "slipway-test/debian:latest".into(),
            env: vec![("TRAVIS".into(), "true".into())],
            working_dir: "/home/travis/build/o/r".into(),
            cmd: vec!["/bin/bash".into(), "/home/travis/.slipway/job.sh".into()],
            files: vec![FileSpec {
                path: "/home/travis/.slipway/job.sh".into(),
                contents: Secret::new(b"export TOKEN=hunter2".to_vec()),
                mode: 0o700,
                secret: true,
            }],
            workspace_tar: None,
            services: vec![],
            volumes: vec![],
            docker_socket: false,
            pipeline_file: ".travis.yml".into(),
            own_network: true,
            limits: ResourceLimits {
                memory_bytes: 512 << 20,
                nano_cpus: 1_500_000_000,
                pids: 512,
                disk_bytes: 1 << 30,
            },
            open_stdin: false,
            platform: None,
        }
    }

    fn config() -> KubernetesConfig {
        KubernetesConfig {
            namespace: "ci".into(),
            ..Default::default()
        }
    }

    const SECRET_NAME: &str = "slipway-b42-1-0a1b2c3d";

    #[test]
    fn a_plain_job_is_one_container_reading_its_files_on_stdin() {
        let mut spec = spec();
        spec.files[0].secret = false;
        let pod = job_pod(&spec, &config(), SECRET_NAME).unwrap();
        insta::assert_yaml_snapshot!(pod);
    }

    #[test]
    fn services_are_sidecars_started_once_ready_and_named_on_localhost() {
        let mut spec = spec();
        spec.services = vec![ServiceSpec {
            name: "postgresql".into(),
            image: "postgres:16".into(),
            env: vec![("POSTGRES_HOST_AUTH_METHOD".into(), "trust".into())],
            cmd: None,
            ready: Some(vec!["pg_isready".into(), "-h".into(), "127.0.0.1".into()]),
            aliases: vec!["postgres".into()],
        }];
        spec.volumes = vec![JobVolume {
            volume: "slipway-cache-x".into(),
            target: "/home/travis/.cache/pip".into(),
            read_only: false,
            labels: vec![],
        }];
        spec.platform = Some("linux/arm64".into());
        let config = KubernetesConfig {
            namespace: "ci".into(),
            service_account: Some("builder".into()),
            node_selector: BTreeMap::from([("pool".into(), "ci".into())]),
            requests: super::super::config::Resources {
                cpu: Some("250m".into()),
                memory: Some("256Mi".into()),
                ephemeral_storage: None,
            },
            ..Default::default()
        };
        let pod = job_pod(&spec, &config, SECRET_NAME).unwrap();
        insta::assert_yaml_snapshot!(pod);
    }

    #[test]
    fn no_secret_of_the_job_is_in_the_pod() {
        let pod =
            serde_json::to_string(&job_pod(&spec(), &config(), SECRET_NAME).unwrap()).unwrap();
        assert!(!pod.contains("hunter2"), "{pod}");
        assert!(
            pod.contains("\"automountServiceAccountToken\":false"),
            "{pod}"
        );
    }

    #[test]
    fn services_docker_is_refused_with_the_way_out() {
        let mut spec = spec();
        spec.docker_socket = true;
        let err = job_pod(&spec, &config(), SECRET_NAME)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".travis.yml asks for `services: docker`"),
            "{err}"
        );
        assert!(err.contains("`executor = \"docker\"`"), "{err}");
        assert!(
            err.contains("remove `docker` from `services:` in .travis.yml"),
            "{err}"
        );
    }

    #[test]
    fn secret_files_come_from_the_secret_mounted_read_only_into_the_job_container_alone() {
        use crate::kubernetes::secret::{SECRET_KEY, job_secret, owned_by};
        let mut spec = spec();
        spec.files.push(crate::sudo::shim_file());
        spec.services = vec![ServiceSpec {
            name: "redis".into(),
            image: "redis:7".into(),
            env: vec![],
            cmd: None,
            ready: None,
            aliases: vec![],
        }];
        let pod = job_pod(&spec, &config(), SECRET_NAME).unwrap();
        let pod_spec = pod.spec.as_ref().unwrap();
        let volume = pod_spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.secret.is_some())
            .unwrap();
        let source = volume.secret.as_ref().unwrap();
        assert_eq!(source.secret_name.as_deref(), Some(SECRET_NAME));
        assert_eq!(source.default_mode, Some(0o400));
        let job = &pod_spec.containers[0];
        let mount = job
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume.name)
            .unwrap();
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            (SECRET_DIR, Some(true))
        );
        let command = job.command.as_ref().unwrap();
        assert_eq!(command[2], SECRET_UNPACK_CMD);
        assert!(SECRET_UNPACK_CMD.starts_with(&format!("tar -xf {SECRET_DIR}/{SECRET_KEY} -C / ")));
        for sidecar in pod_spec.init_containers.iter().flatten() {
            assert!(sidecar.volume_mounts.is_none(), "{sidecar:?}");
        }

        let secret = job_secret(&spec, &config(), SECRET_NAME).unwrap().unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some(SECRET_NAME));
        assert_eq!(secret.metadata.labels, pod.metadata.labels);
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec![SECRET_KEY]);
        let mut tar = tar::Archive::new(data[SECRET_KEY].0.as_slice());
        let paths: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .filter(|p| !p.ends_with('/'))
            .collect();
        assert_eq!(
            paths,
            vec!["home/travis/.slipway/job.sh"],
            "the shim holds no secret"
        );

        let mut created = pod.clone();
        created.metadata.uid = Some("4f1c-uid".into());
        let owned = owned_by(secret, &created).unwrap();
        let owner = &owned.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Pod", "slipway-b42-1", "4f1c-uid")
        );
        // Setting blockOwnerDeletion would need rights over the pod's finalizers.
        assert_eq!(owner.block_owner_deletion, None);
    }

    #[test]
    fn a_job_without_secrets_has_no_secret_and_mounts_none() {
        let mut spec = spec();
        spec.files[0].secret = false;
        let secret = crate::kubernetes::secret::job_secret(&spec, &config(), SECRET_NAME);
        assert!(secret.unwrap().is_none());
        let pod = serde_json::to_string(&job_pod(&spec, &config(), SECRET_NAME).unwrap()).unwrap();
        assert!(!pod.contains(SECRET_NAME), "{pod}");
        assert!(!pod.contains(SECRET_DIR), "{pod}");
    }

    #[test]
    fn names_and_label_values_are_what_the_api_accepts() {
        assert_eq!(pod_name("tAb12-3"), "slipway-tab12-3");
        assert_eq!(pod_name(&"x".repeat(80)).len(), 63);
        assert_eq!(label_value("host:12:345"), "host-12-345");
        assert_eq!(label_value("-a-"), "a");
        assert_eq!(service_container("my_db"), "svc-my-db");
    }
}
