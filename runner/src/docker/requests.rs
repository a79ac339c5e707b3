//! Pure construction of every Docker Engine request a job makes, so it can be snapshot-tested
//! and printed by `--dry-run` without an engine.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, NetworkCreateRequest,
    VolumeCreateRequest,
};

use crate::executor::{
    JobSpec, LABEL_BUILD, LABEL_CACHE, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER, LABEL_ROLE,
    ServiceSpec, names,
};

/// Command of the network-namespace holder: sleeps until stopped, with nothing else to do.
const NETNS_CMD: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// Every create request of one job, in the order the executor sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequests {
    /// The job makes nothing but its own container, which the engine removes as it ends
    /// (`AutoRemove`).
    pub lone: bool,
    /// Volumes to create (caches), first.
    pub volumes: Vec<VolumeCreateRequest>,
    /// The job's own network, when it has services or its build is untrusted.
    pub network: Option<NetworkCreateRequest>,
    /// The container holding the shared network namespace, when the job has services.
    pub netns: Option<(String, ContainerCreateBody)>,
    /// Service containers, in `services:` order.
    pub services: Vec<(String, ContainerCreateBody)>,
    /// The job container.
    pub job: (String, ContainerCreateBody),
}

fn labels(spec: &JobSpec, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_JOB.to_string(), spec.job_id.clone()),
        (LABEL_BUILD.to_string(), spec.build_id.clone()),
        (LABEL_OWNER.to_string(), spec.owner.clone()),
        (LABEL_ROLE.to_string(), role.to_string()),
    ])
}

/// The capabilities a job's containers keep; every other one is dropped. What a CI job does as
/// root is file work (`apt-get install`, `chown`, writing `/etc` and `/usr`), switching users
/// (`sudo`, `su`, package scripts, `_apt`), signalling its own processes and binding low ports in
/// tests. Left out from Docker's defaults: `NET_RAW` (raw sockets: spoofed packets and ARP tricks on
/// the network), `MKNOD` (device nodes), `SYS_CHROOT`, `SETPCAP`, `SETFCAP`. `docs/runner.md`
/// lists why each one kept is kept.
pub const KEPT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETUID",
    "SETGID",
    "KILL",
    "AUDIT_WRITE",
    "NET_BIND_SERVICE",
];

/// Limits and hardening every container of a job gets: memory, CPU, processes, the capability
/// set above, and `no-new-privileges` (no setuid binary or file capability raises a process
/// above what it started with).
fn limits(spec: &JobSpec) -> HostConfig {
    HostConfig {
        memory: Some(spec.limits.memory_bytes),
        memory_swap: Some(spec.limits.memory_bytes),
        nano_cpus: Some(spec.limits.nano_cpus),
        pids_limit: Some(spec.limits.pids),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(KEPT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
        security_opt: Some(vec!["no-new-privileges".into()]),
        ..Default::default()
    }
}

fn env_list(env: &[(String, String)]) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Host names every service answers to inside the job's network namespace.
pub fn service_hosts(services: &[ServiceSpec]) -> Vec<String> {
    let mut hosts = Vec::new();
    for s in services {
        for name in std::iter::once(&s.name).chain(&s.aliases) {
            let entry = format!("{name}:127.0.0.1");
            if !hosts.contains(&entry) {
                hosts.push(entry);
            }
        }
    }
    hosts
}

/// Where a job with `services: docker` finds the Docker CLI: the host's own client, bound read-only
/// over this path, so images without a CLI can still run `docker build` and `docker push`.
pub const DOCKER_CLI_TARGET: &str = "/usr/local/bin/docker";

/// The job container's first command, run before the job's own: it receives the job's files (the
/// script, decrypted files, the workspace) as one tar on standard input and unpacks it, which
/// costs far less than the engine's archive upload (a mount and a helper process per upload,
/// most of a short job's overhead). It says which way it takes on its first line of output:
/// `slipway-unpack:stdin` (then it reads the archive's size on a line and that many bytes), or
/// `slipway-unpack:api` when it cannot unpack (no `tar` or `head` in the image, or a user who may
/// not write `/`) and waits for a line while the executor uploads instead. The job's command
/// follows ([`unpack_then`]).
pub const UNPACK_CMD: &str = "if [ -w / ] && command -v tar >/dev/null 2>&1 && command -v head >/dev/null 2>&1; then \
echo slipway-unpack:stdin; read -r n && head -c \"$n\" | tar -xf - -C / \
|| { echo \"slipway: unpacking the job's files failed\" >&2; exit 125; }; \
else echo slipway-unpack:api; read -r _; fi;";

/// [`UNPACK_CMD`] for a job that reads nothing else on standard input: the executor writes the
/// archive as soon as the container starts instead of waiting for the first line (a round trip
/// through the engine less), and closes standard input after it, so `tar` reads it to its end
/// without a size line or `head` in front (one process less). An image that cannot unpack reads
/// its standard input to the end instead (with `cat`, else the shell's `read`, byte by byte),
/// which the executor closes once its upload is done.
pub const UNPACK_AHEAD_CMD: &str = "if [ -w / ] && command -v tar >/dev/null 2>&1; then \
echo slipway-unpack:stdin; tar -xf - -C / \
|| { echo \"slipway: unpacking the job's files failed\" >&2; exit 125; }; \
else echo slipway-unpack:api; if command -v cat >/dev/null 2>&1; then cat >/dev/null; \
else while read -r _; do :; done; fi; fi;";

/// The handshake lines of [`UNPACK_CMD`].
pub const UNPACK_STDIN: &str = "slipway-unpack:stdin";
/// See [`UNPACK_STDIN`].
pub const UNPACK_API: &str = "slipway-unpack:api";

/// The job container's entrypoint: [`UNPACK_CMD`] (or [`UNPACK_AHEAD_CMD`] when the job reads
/// no replies), then `cmd`. A `cmd` that is itself a `/bin/sh -c` script (the job's, which picks
/// its shell) runs in the prelude's own shell: one program start less before the job's first
/// line. Any other command is `exec`'d.
pub fn unpack_then(cmd: &[String], open_stdin: bool) -> Vec<String> {
    let prelude = if open_stdin {
        UNPACK_CMD
    } else {
        UNPACK_AHEAD_CMD
    };
    if let [sh, c, script] = cmd
        && sh == "/bin/sh"
        && c == "-c"
    {
        return vec![sh.clone(), c.clone(), format!("{prelude} {script}")];
    }
    let mut out = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!("{prelude} exec \"$@\""),
        "slipway-unpack".to_string(),
    ];
    out.extend(cmd.iter().cloned());
    out
}

/// Builds the requests for `spec`. `docker_socket` is the engine socket's path on the host, bound
/// into the job for `services: docker`, together with the host's Docker CLI (`docker_cli`) when
/// one was found.
pub fn job_requests(spec: &JobSpec, docker_socket: &str, docker_cli: Option<&str>) -> JobRequests {
    let has_services = !spec.services.is_empty();
    let own_network = has_services || spec.own_network;
    let network_name = names::network(&spec.job_id);
    let netns_name = names::netns_container(&spec.job_id);

    let volumes: Vec<VolumeCreateRequest> = spec
        .volumes
        .iter()
        .filter(|v| !v.read_only)
        .map(|v| {
            let mut l: HashMap<String, String> = v.labels.iter().cloned().collect();
            l.insert(LABEL_MANAGED.into(), "true".into());
            l.insert(LABEL_CACHE.into(), "true".into());
            VolumeCreateRequest {
                name: Some(v.volume.clone()),
                labels: Some(l),
                ..Default::default()
            }
        })
        .collect();

    // The bridge's name is what the packet-filter rules match (`crate::netguard`).
    let network = own_network.then(|| NetworkCreateRequest {
        name: network_name.clone(),
        driver: Some("bridge".into()),
        labels: Some(labels(spec, "network")),
        options: Some(HashMap::from([(
            "com.docker.network.bridge.name".to_string(),
            crate::netguard::bridge_name(&spec.job_id),
        )])),
        ..Default::default()
    });

    let netns = has_services.then(|| {
        (
            netns_name.clone(),
            ContainerCreateBody {
                image: Some(spec.image.clone()),
                // An entrypoint replaces the image's entrypoint and command together.
                entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), NETNS_CMD.into()]),
                hostname: Some("slipway-job".into()),
                labels: Some(labels(spec, "netns")),
                host_config: Some(HostConfig {
                    network_mode: Some(network_name.clone()),
                    extra_hosts: Some(service_hosts(&spec.services)),
                    ..limits(spec)
                }),
                ..Default::default()
            },
        )
    });

    let services = spec
        .services
        .iter()
        .map(|s| {
            (
                names::service_container(&spec.job_id, &s.name),
                ContainerCreateBody {
                    image: Some(s.image.clone()),
                    env: Some(env_list(&s.env)),
                    cmd: s.cmd.clone(),
                    labels: Some({
                        let mut l = labels(spec, "service");
                        l.insert("dev.slipway.service".into(), s.name.clone());
                        l
                    }),
                    host_config: Some(HostConfig {
                        network_mode: Some(format!("container:{netns_name}")),
                        ..limits(spec)
                    }),
                    ..Default::default()
                },
            )
        })
        .collect();

    let mounts = job_mounts(spec, docker_socket, docker_cli);
    // A job that makes nothing but its own container has the engine remove it as it ends, as
    // `docker run --rm` does (its build directory's anonymous volume with it).
    let lone = volumes.is_empty() && network.is_none() && !has_services;
    let mut env = spec.env.clone();
    if spec.docker_socket {
        env.push(("DOCKER_HOST".into(), "unix:///var/run/docker.sock".into()));
    }
    let job = (
        names::job_container(&spec.job_id),
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            // Standard input carries the job's files first (`UNPACK_CMD`), then, when the job
            // asked for it, the runner's replies; it closes when the runner closes it.
            entrypoint: Some(unpack_then(&spec.cmd, spec.open_stdin)),
            env: Some(env_list(&env)),
            working_dir: Some("/".into()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            labels: Some(labels(spec, "job")),
            host_config: Some(HostConfig {
                network_mode: if has_services {
                    Some(format!("container:{netns_name}"))
                } else {
                    own_network.then(|| network_name.clone())
                },
                mounts: (!mounts.is_empty()).then_some(mounts),
                auto_remove: lone.then_some(true),
                ..limits(spec)
            }),
            ..Default::default()
        },
    );

    JobRequests {
        lone,
        volumes,
        network,
        netns,
        services,
        job,
    }
}

/// The job's build directory as an anonymous volume of the job container, labelled like every
/// resource of the job (teardown and the sweep find it; it also goes with its container). Nothing
/// of the user's checkout is mounted: the workspace is unpacked into it from standard input.
pub fn workspace_volume(spec: &JobSpec) -> Mount {
    Mount {
        target: Some(spec.working_dir.clone()),
        typ: Some(MountType::VOLUME),
        read_only: Some(false),
        volume_options: Some(MountVolumeOptions {
            labels: Some(labels(spec, super::volume::ROLE)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Puts the job's build directory on [`workspace_volume`] in the job container's request.
pub fn with_workspace_volume(job: &mut ContainerCreateBody, spec: &JobSpec) {
    let host = job.host_config.get_or_insert_with(Default::default);
    host.mounts
        .get_or_insert_with(Vec::new)
        .insert(0, workspace_volume(spec));
}

/// The job container's mounts: its volumes, and the engine's socket (with the `docker` CLI when
/// the host has one) for `services: docker`.
fn job_mounts(spec: &JobSpec, docker_socket: &str, docker_cli: Option<&str>) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = spec
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.target.clone()),
            source: Some(v.volume.clone()),
            typ: Some(MountType::VOLUME),
            read_only: Some(v.read_only),
            ..Default::default()
        })
        .collect();
    if spec.docker_socket {
        mounts.push(Mount {
            target: Some("/var/run/docker.sock".into()),
            source: Some(docker_socket.to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        });
        if let Some(cli) = docker_cli {
            mounts.push(Mount {
                target: Some(DOCKER_CLI_TARGET.into()),
                source: Some(cli.to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sh_script_runs_in_the_preludes_own_shell_and_any_other_command_is_execd() {
        let script = ["/bin/sh", "-c", "exec sh /slipway/job.sh"].map(String::from);
        assert_eq!(
            unpack_then(&script, false),
            [
                "/bin/sh".to_string(),
                "-c".into(),
                format!("{UNPACK_AHEAD_CMD} exec sh /slipway/job.sh")
            ]
        );
        let other = ["/usr/bin/env", "bash", "-c", "true"].map(String::from);
        let entrypoint = unpack_then(&other, true);
        assert_eq!(entrypoint[2], format!("{UNPACK_CMD} exec \"$@\""));
        assert_eq!(
            entrypoint[3..],
            ["slipway-unpack", "/usr/bin/env", "bash", "-c", "true"].map(String::from)
        );
    }
}
