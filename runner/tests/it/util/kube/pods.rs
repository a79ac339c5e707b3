//! The stand-in's pods, run on the local Docker engine: a holder container owns the pod's
//! network namespace (and its host aliases), the sidecars join it in order, each started once its
//! start-up probe passes, then the job container. Nothing starts before every Secret the pod
//! mounts exists (until then the pod is pending with a `FailedMount` event); a secret volume is a
//! directory of the Secret's files, bind-mounted read-only where a container mounts it. A missing
//! image is not pulled: the pod stays pending with `ImagePullBackOff` and the events a kubelet
//! would record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Event, ObjectReference, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::StandIn;

/// Label on every Docker container the stand-in runs, holding the pod's name.
pub const POD_LABEL: &str = "standin.slipway.pod";

const HOLDER_CMD: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// One pod and how far the stand-in's kubelet got with it.
pub struct PodEntry {
    /// The pod as created.
    pub created: Pod,
    /// Containers running (or run) on Docker.
    pub started: BTreeSet<String>,
    /// Sidecars whose start-up probe passed.
    pub ready: BTreeSet<String>,
    /// Why a container waits (`ImagePullBackOff`), with the message.
    pub waiting: BTreeMap<String, (String, String)>,
    /// The pod's events.
    pub events: Vec<Event>,
    /// Log requests so far (the first may be cut short on purpose).
    pub log_requests: usize,
    /// The secret volumes' directories, by volume name; removed with the pod.
    secret_volumes: BTreeMap<String, tempfile::TempDir>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The Docker container running `container` of pod `pod`.
pub fn docker_container(pod: &str, container: &str) -> String {
    format!("standin-{pod}-{container}")
}

/// The Docker container of `container` in pod `pod`, once it was started.
pub fn docker_name(s: &StandIn, pod: &str, container: &str) -> Option<String> {
    let pods = s.pods.lock().unwrap();
    let entry = pods.get(pod)?;
    entry
        .started
        .contains(container)
        .then(|| docker_container(pod, container))
}

/// Records `pod` and starts running it.
pub async fn create(s: &Arc<StandIn>, mut pod: Pod) -> Pod {
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.uid = Some(format!("uid-{name}"));
    pod.metadata.resource_version = Some("1".into());
    pod.metadata.creation_timestamp = Some(Time(jiff::Timestamp::now()));
    let entry = PodEntry {
        created: pod.clone(),
        started: BTreeSet::new(),
        ready: BTreeSet::new(),
        waiting: BTreeMap::new(),
        events: vec![event(
            &pod,
            "Normal",
            "Scheduled",
            "Assigned to the stand-in's Docker engine",
        )],
        log_requests: 0,
        secret_volumes: BTreeMap::new(),
        task: None,
    };
    s.pods.lock().unwrap().insert(name.clone(), entry);
    let task = tokio::spawn(run(s.clone(), name.clone()));
    if let Some(e) = s.pods.lock().unwrap().get_mut(&name) {
        e.task = Some(task);
    }
    pod
}

/// Removes the pod and every Docker container it ran; the garbage collector then removes the
/// Secrets it owned.
pub async fn delete(s: &StandIn, name: &str) {
    let mut entry = s.pods.lock().unwrap().remove(name);
    if let Some(task) = entry.as_mut().and_then(|e| e.task.take()) {
        task.abort();
        let _ = task.await;
    }
    remove_containers(s, name).await;
    // Its secret volumes' directories go with it, once no container mounts them.
    if let Some(mut entry) = entry {
        s.past_events.lock().unwrap().append(&mut entry.events);
        s.past_pods.lock().unwrap().push(entry.created.clone());
    }
    super::secrets::collect_garbage(s);
}

async fn remove_containers(s: &StandIn, pod: &str) {
    let filters = HashMap::from([("label".to_string(), vec![format!("{POD_LABEL}={pod}")])]);
    let list = s
        .docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap_or_default();
    for c in list {
        if let Some(id) = c.id {
            let opts = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = s.docker.remove_container(&id, Some(opts)).await;
        }
    }
}

fn event(pod: &Pod, type_: &str, reason: &str, message: &str) -> Event {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{reason}")),
            namespace: pod.metadata.namespace.clone(),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: pod.metadata.namespace.clone(),
            ..Default::default()
        },
        type_: Some(type_.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        ..Default::default()
    }
}

fn with_entry(s: &StandIn, name: &str, f: impl FnOnce(&mut PodEntry)) {
    if let Some(e) = s.pods.lock().unwrap().get_mut(name) {
        f(e);
    }
}

/// Waits until every Secret pod `name` mounts exists, recording `FailedMount` while one does not,
/// and projects each into a directory: the host paths by volume name.
async fn mount_secrets(s: &StandIn, pod: &Pod) -> BTreeMap<String, std::path::PathBuf> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let volumes = pod.spec.iter().flat_map(|p| p.volumes.iter().flatten());
    let mut paths = BTreeMap::new();
    for volume in volumes {
        let Some(source) = &volume.secret else {
            continue;
        };
        let mut told = false;
        let dir = loop {
            if let Some(dir) = super::secrets::project(s, source) {
                break dir;
            }
            if !told {
                let message = format!(
                    "MountVolume.SetUp failed for volume \"{}\" : secret \"{}\" not found",
                    volume.name,
                    source.secret_name.clone().unwrap_or_default()
                );
                with_entry(s, &name, |e| {
                    e.events
                        .push(event(pod, "Warning", "FailedMount", &message));
                });
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        paths.insert(volume.name.clone(), dir.path().to_path_buf());
        with_entry(s, &name, |e| {
            e.secret_volumes.insert(volume.name.clone(), dir);
        });
    }
    paths
}

/// The kubelet's work for pod `name`.
async fn run(s: Arc<StandIn>, name: String) {
    let Some(pod) = s.created(&name) else { return };
    let secret_dirs = mount_secrets(&s, &pod).await;
    let spec = pod.spec.clone().unwrap_or_default();
    let init = spec.init_containers.clone().unwrap_or_default();
    for c in init.iter().chain(&spec.containers) {
        let image = c.image.clone().unwrap_or_default();
        if s.docker.inspect_image(&image).await.is_err() {
            let message = format!("Back-off pulling image {image:?}");
            with_entry(&s, &name, |e| {
                e.waiting
                    .insert(c.name.clone(), ("ImagePullBackOff".into(), message.clone()));
                e.events.push(event(
                    &pod,
                    "Normal",
                    "Pulling",
                    &format!("Pulling image {image:?}"),
                ));
                e.events.push(event(&pod, "Warning", "Failed", &format!(
                    "Failed to pull image {image:?}: the stand-in pulls nothing (build it with scripts/test-images.sh)"
                )));
                e.events.push(event(&pod, "Warning", "BackOff", &message));
            });
            return;
        }
    }
    let job_image = spec.containers[0].image.clone().unwrap_or_default();
    let hosts: Vec<String> = spec
        .host_aliases
        .iter()
        .flatten()
        .flat_map(|a| {
            a.hostnames
                .iter()
                .flatten()
                .map(move |h| format!("{h}:{}", a.ip))
        })
        .collect();
    let holder = ContainerCreateBody {
        image: Some(job_image),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), HOLDER_CMD.into()]),
        labels: Some(HashMap::from([(POD_LABEL.to_string(), name.clone())])),
        host_config: Some(HostConfig {
            extra_hosts: Some(hosts),
            ..Default::default()
        }),
        ..Default::default()
    };
    if !start_container(&s, &name, "pause", holder).await {
        return;
    }
    for c in &init {
        if !start_container(&s, &name, &c.name, body(&name, c, false, &secret_dirs)).await {
            return;
        }
        with_entry(&s, &name, |e| {
            e.started.insert(c.name.clone());
        });
        if !probe(&s, &pod, c).await {
            return;
        }
        with_entry(&s, &name, |e| {
            e.ready.insert(c.name.clone());
        });
    }
    for c in &spec.containers {
        if !start_container(&s, &name, &c.name, body(&name, c, true, &secret_dirs)).await {
            return;
        }
        with_entry(&s, &name, |e| {
            e.started.insert(c.name.clone());
            e.events.push(event(
                &pod,
                "Normal",
                "Started",
                &format!("Started container {}", c.name),
            ));
        });
    }
}

/// A container of the pod as a Docker container in the holder's namespaces; `secret_dirs` are
/// the pod's secret volumes as host directories.
fn body(
    pod: &str,
    c: &Container,
    main: bool,
    secret_dirs: &BTreeMap<String, std::path::PathBuf>,
) -> ContainerCreateBody {
    let env = c
        .env
        .iter()
        .flatten()
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    // Every other volume the executor uses is an emptyDir: an anonymous volume, removed with
    // the container.
    let mounts = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| match secret_dirs.get(&m.name) {
            Some(dir) => Mount {
                target: Some(m.mount_path.clone()),
                source: Some(dir.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            },
            None => Mount {
                target: Some(m.mount_path.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            },
        })
        .collect::<Vec<_>>();
    ContainerCreateBody {
        image: c.image.clone(),
        entrypoint: c.command.clone(),
        cmd: c.args.clone(),
        env: Some(env),
        working_dir: c.working_dir.clone(),
        open_stdin: c.stdin,
        stdin_once: c.stdin_once,
        attach_stdin: c.stdin.filter(|_| main),
        tty: c.tty,
        labels: Some(HashMap::from([(POD_LABEL.to_string(), pod.to_string())])),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{}", docker_container(pod, "pause"))),
            mounts: (!mounts.is_empty()).then_some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn start_container(
    s: &StandIn,
    pod: &str,
    container: &str,
    body: ContainerCreateBody,
) -> bool {
    let name = docker_container(pod, container);
    // A container of a deleted pod of the same name whose creation was still under way.
    let gone = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    let _ = s.docker.remove_container(&name, Some(gone)).await;
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    if let Err(e) = s.docker.create_container(Some(opts), body).await {
        eprintln!("stand-in: creating {name}: {e}");
        return false;
    }
    if let Err(e) = s.docker.start_container(&name, None).await {
        eprintln!("stand-in: starting {name}: {e}");
        return false;
    }
    true
}

/// Runs `c`'s start-up probe (exec only) until it passes or fails its threshold.
async fn probe(s: &StandIn, pod: &Pod, c: &Container) -> bool {
    let Some(probe) = &c.startup_probe else {
        return true;
    };
    let Some(cmd) = probe.exec.as_ref().and_then(|e| e.command.clone()) else {
        return true;
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let period =
        Duration::from_secs(u64::try_from(probe.period_seconds.unwrap_or(10)).unwrap_or(1));
    let tries = probe.failure_threshold.unwrap_or(3).max(1);
    let mut last = String::new();
    for _ in 0..tries {
        match exec_status(s, &docker_container(&name, &c.name), cmd.clone()).await {
            Some((0, _)) => return true,
            Some((_, out)) => last = out,
            None => last = "the probe could not run".into(),
        }
        tokio::time::sleep(period).await;
    }
    with_entry(s, &name, |e| {
        e.events.push(event(
            pod,
            "Warning",
            "Unhealthy",
            &format!("Startup probe failed: {}", last.trim()),
        ));
    });
    false
}

/// Runs `cmd` in a Docker container: its exit code and output.
pub async fn exec_status(s: &StandIn, container: &str, cmd: Vec<String>) -> Option<(i64, String)> {
    let exec = s
        .docker
        .create_exec(
            container,
            ExecConfig {
                cmd: Some(cmd),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .ok()?;
    let mut text = String::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } =
        s.docker.start_exec(&exec.id, None).await.ok()?
    {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    let inspect = s.docker.inspect_exec(&exec.id).await.ok()?;
    Some((inspect.exit_code.unwrap_or(-1), text))
}

/// The pod as the API reports it now: as created, with its status.
pub async fn current(s: &StandIn, name: &str) -> Option<Pod> {
    let (mut pod, started, ready, waiting) = {
        let pods = s.pods.lock().unwrap();
        let e = pods.get(name)?;
        (
            e.created.clone(),
            e.started.clone(),
            e.ready.clone(),
            e.waiting.clone(),
        )
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let mut phase = "Pending";
    let mut statuses = Vec::new();
    for c in &spec.containers {
        let state = if started.contains(&c.name) {
            let info = s
                .docker
                .inspect_container(&docker_container(name, &c.name), None)
                .await
                .ok();
            let st = info.and_then(|i| i.state);
            match st {
                Some(st) if st.running == Some(true) => {
                    phase = "Running";
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(Time(jiff::Timestamp::now())),
                        }),
                        ..Default::default()
                    }
                }
                Some(st) => {
                    let code = st.exit_code.unwrap_or(-1);
                    phase = if code == 0 { "Succeeded" } else { "Failed" };
                    ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: i32::try_from(code).unwrap_or(-1),
                            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                }
                None => waiting_state(None),
            }
        } else {
            waiting_state(waiting.get(&c.name))
        };
        statuses.push(status_of(c, state, false));
    }
    let init_statuses = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let state = if started.contains(&c.name) {
                ContainerState {
                    running: Some(ContainerStateRunning { started_at: None }),
                    ..Default::default()
                }
            } else {
                waiting_state(waiting.get(&c.name))
            };
            status_of(c, state, ready.contains(&c.name))
        })
        .collect::<Vec<_>>();
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ..Default::default()
    });
    Some(pod)
}

fn waiting_state(why: Option<&(String, String)>) -> ContainerState {
    let (reason, message) = why
        .cloned()
        .unwrap_or(("PodInitializing".into(), String::new()));
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason),
            message: (!message.is_empty()).then_some(message),
        }),
        ..Default::default()
    }
}

fn status_of(c: &Container, state: ContainerState, ready: bool) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready,
        restart_count: 0,
        started: Some(state.running.is_some()),
        state: Some(state),
        ..Default::default()
    }
}

/// The Docker container's log as the API streams it (stdout and stderr merged), cut after
/// `cut` lines when `cut` is not 0.
pub fn logs(
    s: &StandIn,
    docker_name: &str,
    follow: bool,
    timestamps: bool,
    since: Option<jiff::Timestamp>,
    cut: usize,
) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let mut opts = LogsOptionsBuilder::default()
        .follow(follow)
        .stdout(true)
        .stderr(true)
        .timestamps(timestamps);
    if let Some(t) = since {
        opts = opts.since(i32::try_from(t.as_second()).unwrap_or(0));
    }
    let stream = s
        .docker
        .logs(docker_name, Some(opts.build()))
        .map(|item| item.map(|o| o.into_bytes()).map_err(std::io::Error::other));
    let limit = if cut == 0 { usize::MAX } else { cut };
    stream.take(limit)
}
