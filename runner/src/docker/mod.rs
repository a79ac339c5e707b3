//! The Docker executor: the [`Executor`] seam implemented with `bollard` against a Docker Engine.
//!
//! It connects through `DOCKER_HOST` (or the default socket), negotiates the API version, and
//! keeps no per-job state: every request derives its names from the job id
//! ([`crate::executor::names`]) and teardown finds resources by label.

pub mod requests;
mod sweep;
mod unpack;
mod volume;

pub use sweep::{Kind, Labelled};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    KillContainerOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use crate::executor::{
    ExecError, Executor, FileSpec, JobSpec, JobStreams, LABEL_JOB, LABEL_MANAGED, Progress,
    SweepReport, names,
};

/// Default engine socket when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The Docker Engine executor.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    docker: Docker,
    endpoint: String,
    socket_path: String,
    docker_cli: Option<String>,
    ready_timeout: Duration,
    /// Jobs whose setup made nothing but their own container: teardown removes it by name
    /// instead of listing containers, networks and volumes by label (three engine calls saved
    /// on every short job). Their container is created with `AutoRemove`.
    lone: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The engine's answer, once it has removed a lone job's container, to a wait asked for
    /// before the container started: its exit code. `docker run --rm` waits the same way; the
    /// exit, the removal and the exit code then cost no request after the job's end.
    removals: Arc<std::sync::Mutex<HashMap<String, Removal>>>,
    /// Lone jobs whose container the engine has removed (their removal's wait answered).
    removed: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The storage driver caps a container's writable layer (`StorageOpt size`), as `docker
    /// info` describes it; asked in the background from [`DockerExecutor::connect`].
    disk_quota: Arc<OnceCell<bool>>,
    /// The driver turned out not to cap (a refused create): the watchdog enforces the limit.
    quota_refused: Arc<AtomicBool>,
    /// Jobs get their build directory on a volume ([`volume::probe`]); probed in the background
    /// from [`DockerExecutor::connect`].
    workspace_volume: Arc<OnceCell<bool>>,
    /// The jobs whose build directory is on a volume, for the disk watchdog.
    volumes: Arc<volume::Volumes>,
}

/// Whether a storage driver, as `docker info` describes it, can cap a container's writable layer
/// (overlay2 only on xfs mounted with project quotas, which a failed create reveals).
fn driver_caps_disk(info: &bollard::models::SystemInfo) -> bool {
    let backing = info
        .driver_status
        .iter()
        .flatten()
        .find(|kv| kv.first().map(String::as_str) == Some("Backing Filesystem"))
        .and_then(|kv| kv.get(1).cloned());
    match info.driver.as_deref() {
        Some("overlay2") => backing.as_deref() == Some("xfs"),
        Some("btrfs" | "zfs" | "devicemapper") => true,
        _ => false,
    }
}

/// The host's Docker CLI, bound into `services: docker` jobs: `SLIPWAY_DOCKER_CLI`, else `docker` on
/// `PATH`. Only a statically linked client works in every image; Debian's and Docker's are.
pub fn find_docker_cli() -> Option<String> {
    if let Ok(path) = std::env::var("SLIPWAY_DOCKER_CLI") {
        return (!path.is_empty()).then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("docker"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

fn engine_err(action: impl Into<String>) -> impl FnOnce(BollardError) -> ExecError {
    let action = action.into();
    move |e| ExecError::Engine {
        action,
        reason: describe(&e),
    }
}

fn describe(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_status(e: &BollardError, codes: &[u16]) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

fn label_filter(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
    )])
}

impl DockerExecutor {
    /// Connects through `DOCKER_HOST`, or the default socket, and checks the engine answers.
    pub async fn connect() -> Result<Self, ExecError> {
        let endpoint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| format!("unix://{DEFAULT_SOCKET}"));
        let no_engine = |reason: String| ExecError::NoEngine {
            endpoint: endpoint.clone(),
            reason,
        };
        let docker = Docker::connect_with_host(&endpoint).map_err(|e| no_engine(e.to_string()))?;
        // The version request is the engine's answer: no separate ping (one round trip less
        // before every `slipway run`).
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| no_engine(describe(&e)))?;
        let socket_path = endpoint
            .strip_prefix("unix://")
            .unwrap_or(DEFAULT_SOCKET)
            .to_string();
        let executor = DockerExecutor {
            docker,
            endpoint,
            socket_path,
            docker_cli: find_docker_cli(),
            ready_timeout: Duration::from_secs(60),
            lone: Default::default(),
            removals: Default::default(),
            removed: Default::default(),
            disk_quota: Default::default(),
            quota_refused: Default::default(),
            workspace_volume: Default::default(),
            volumes: Default::default(),
        };
        // Both answers are first needed when a job container is created: asked now, beside
        // whatever comes before (the sweep, image checks, packing the workspace), they cost
        // `slipway run` no time of its own.
        let asking = executor.clone();
        tokio::spawn(async move {
            tokio::join!(asking.disk_quota(), asking.workspace_volume());
        });
        Ok(executor)
    }

    /// Whether the engine caps each job container's writable layer itself; otherwise the
    /// runner's watchdog enforces the disk limit.
    pub async fn disk_quota(&self) -> bool {
        let caps = self.disk_quota.get_or_init(|| async {
            let info = self.docker.info().await;
            info.map(|info| driver_caps_disk(&info)).unwrap_or(false)
        });
        caps.await.to_owned() && !self.quota_refused.load(Ordering::Relaxed)
    }

    /// Whether jobs get their build directory on a volume of their own ([`volume::probe`]).
    pub async fn workspace_volume(&self) -> bool {
        let probed = self
            .workspace_volume
            .get_or_init(|| volume::probe(&self.docker, &self.endpoint));
        *probed.await
    }

    /// Decides whether jobs get their build directory on a volume instead of probing the engine:
    /// `false` keeps the workspace in the container's own filesystem.
    pub fn with_workspace_volume(mut self, on: bool) -> Self {
        self.workspace_volume = Arc::new(OnceCell::new_with(Some(on)));
        self
    }

    /// How long services may take to become ready (default 60 s).
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The underlying client, for image builds and pushes ([`crate::images`]).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Where the engine was reached.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The engine socket's path on this host (bound into jobs with `services: docker`).
    pub fn socket_path(&self) -> &str {
        &self.socket_path
    }

    /// Creates (and starts) a container. An image not present locally is pulled when the create
    /// says so, and the create tried again: a present image, almost always the case, then costs no
    /// inspect request before every job.
    async fn create_and_start(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
        start: bool,
        platform: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<(), ExecError> {
        let opts = || {
            let mut opts =
                bollard::query_parameters::CreateContainerOptionsBuilder::default().name(name);
            if let Some(platform) = platform {
                opts = opts.platform(platform);
            }
            opts.build()
        };
        let creating = format!("creating container {name}");
        match self
            .docker
            .create_container(Some(opts()), body.clone())
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, &[404]) && describe(&e).contains("No such image") => {
                self.pull(body.image.as_deref().unwrap_or_default(), progress)
                    .await?;
                self.docker
                    .create_container(Some(opts()), body)
                    .await
                    .map_err(engine_err(creating))?;
            }
            Err(e) => return Err(engine_err(creating)(e)),
        }
        if start {
            self.docker
                .start_container(name, None)
                .await
                .map_err(engine_err(format!("starting container {name}")))?;
        }
        Ok(())
    }

    /// Pulls `image`, with the engine's progress; fails clearly when it cannot.
    async fn pull(&self, image: &str, progress: Progress<'_>) -> Result<(), ExecError> {
        progress(&format!("pulling image {image}"));
        let (name, tag) = split_reference(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        let mut last_status = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(status) = info.status
                        && status != last_status
                        && info.progress_detail.is_none_or(|d| d.total.is_none())
                    {
                        progress(&format!("  {status}"));
                        last_status = status;
                    }
                }
                Err(e) => {
                    return Err(ExecError::ImageUnavailable {
                        image: image.into(),
                        reason: describe(&e),
                    });
                }
            }
        }
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|e| ExecError::ImageUnavailable {
                image: image.into(),
                reason: describe(&e),
            })
    }

    async fn exec_status(
        &self,
        container: &str,
        cmd: &[String],
    ) -> Result<(i64, String), ExecError> {
        let exec = self
            .docker
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine_err(format!("exec in {container}")))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
            .map_err(engine_err(format!("exec in {container}")))?
        {
            while let Some(Ok(chunk)) = output.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(engine_err(format!("exec in {container}")))?;
        Ok((inspect.exit_code.unwrap_or(-1), text))
    }

    async fn wait_ready(
        &self,
        container: &str,
        service: &str,
        cmd: &[String],
        progress: Progress<'_>,
    ) -> Result<(), ExecError> {
        let started = Instant::now();
        let mut last;
        loop {
            // A service that exited will never be ready: say so at once.
            if let Ok(info) = self.docker.inspect_container(container, None).await
                && info.state.as_ref().and_then(|s| s.running) == Some(false)
            {
                return Err(ExecError::ServiceNotReady {
                    service: service.into(),
                    seconds: started.elapsed().as_secs(),
                    detail: format!(
                        ": it exited with code {}",
                        info.state.and_then(|s| s.exit_code).unwrap_or(-1)
                    ),
                });
            }
            match self.exec_status(container, cmd).await {
                Ok((0, _)) => {
                    progress(&format!(
                        "service {service} is ready ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    ));
                    return Ok(());
                }
                Ok((_, out)) => last = out,
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= self.ready_timeout {
                let detail = last.trim();
                return Err(ExecError::ServiceNotReady {
                    service: service.into(),
                    seconds: self.ready_timeout.as_secs(),
                    detail: if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The end-of-archive marker `tar::Builder` writes: two zero blocks.
pub(crate) const TAR_END: usize = 1024;

/// Files of the job as the head of the one tar a job unpacks: [`files_tar`] without its end
/// blocks, so that the workspace archive can follow and end it.
pub(crate) fn files_head(files: &[FileSpec]) -> Result<Vec<u8>, ExecError> {
    let mut head = files_tar(files).map_err(|source| ExecError::Io {
        action: "packing the job script".into(),
        source,
    })?;
    head.truncate(head.len().saturating_sub(TAR_END));
    Ok(head)
}

/// A tar holding `files`, paths relative to `/`. Their directories have no entries of their own:
/// `tar` (or the engine) makes the missing ones, and one that exists keeps its owner, mode and
/// times.
pub fn files_tar(files: &[FileSpec]) -> Result<Vec<u8>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(f.mode);
        h.set_size(f.contents.expose().len() as u64);
        h.set_mtime(0);
        builder.append_data(
            &mut h,
            f.path.trim_start_matches('/'),
            f.contents.expose().as_slice(),
        )?;
    }
    builder.into_inner()
}

#[async_trait]
impl Executor for DockerExecutor {
    /// Nothing to do ahead: an image missing locally is pulled when its first container is
    /// created ([`DockerExecutor::create_and_start`]).
    async fn ensure_image(&self, _image: &str, _progress: Progress<'_>) -> Result<(), ExecError> {
        Ok(())
    }

    async fn volume_exists(&self, name: &str) -> Result<bool, ExecError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, &[404]) => Ok(false),
            Err(e) => Err(engine_err(format!("inspecting volume {name}"))(e)),
        }
    }

    async fn setup(&self, spec: &JobSpec, progress: Progress<'_>) -> Result<(), ExecError> {
        let mut req = requests::job_requests(spec, &self.socket_path, self.docker_cli.as_deref());
        if self.workspace_volume().await {
            requests::with_workspace_volume(&mut req.job.1, spec);
            self.volumes.insert(&spec.job_id, &spec.working_dir);
        }
        if req.lone {
            self.lone
                .lock()
                .expect("lone jobs")
                .insert(spec.job_id.clone());
        }
        for v in req.volumes {
            let name = v.name.clone().unwrap_or_default();
            self.docker
                .create_volume(v)
                .await
                .map_err(engine_err(format!("creating volume {name}")))?;
        }
        if let Some(net) = req.network {
            let name = net.name.clone();
            self.docker
                .create_network(net)
                .await
                .map_err(engine_err(format!("creating network {name}")))?;
        }
        if let Some((name, body)) = req.netns {
            self.create_and_start(&name, body, true, None, progress)
                .await?;
        }
        for ((name, body), svc) in req.services.into_iter().zip(&spec.services) {
            progress(&format!("starting service {} ({})", svc.name, svc.image));
            self.create_and_start(&name, body, true, None, progress)
                .await?;
        }
        for svc in &spec.services {
            if let Some(ready) = &svc.ready {
                let name = names::service_container(&spec.job_id, &svc.name);
                self.wait_ready(&name, &svc.name, ready, progress).await?;
            }
        }
        let (name, body) = req.job;
        let mut created = false;
        let platform = spec.platform.as_deref();
        if self.disk_quota().await {
            let mut capped = body.clone();
            if let Some(host) = capped.host_config.as_mut() {
                let size = spec.limits.disk_bytes.to_string();
                host.storage_opt = Some(HashMap::from([("size".to_string(), size)]));
            }
            match self
                .create_and_start(&name, capped, false, platform, progress)
                .await
            {
                Ok(()) => created = true,
                // overlay2 on xfs without project quotas: the watchdog takes over, for good.
                Err(ExecError::Engine { reason, .. }) if reason.contains("storage-opt") => {
                    self.quota_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        if !created {
            self.create_and_start(&name, body, false, platform, progress)
                .await?;
        }
        // The job's files and the workspace go in when it starts (`unpack`).
        Ok(())
    }

    async fn start(&self, spec: &JobSpec) -> Result<JobStreams, ExecError> {
        let name = names::job_container(&spec.job_id);
        if self.lone.lock().expect("lone jobs").contains(&spec.job_id) {
            // Asked before the attach and the start, so the engine knows of it long before the
            // container can end and be removed.
            let removal = tokio::spawn(exit_code(
                self.docker.wait_container(
                    &name,
                    Some(
                        WaitContainerOptionsBuilder::default()
                            .condition("removed")
                            .build(),
                    ),
                ),
                name.clone(),
            ));
            self.removals
                .lock()
                .expect("removals")
                .insert(spec.job_id.clone(), removal);
        }
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .stdin(true)
            .build();
        let attached = self
            .docker
            .attach_container(&name, Some(opts))
            .await
            .map_err(engine_err(format!("attaching to {name}")))?;
        let delivery = unpack::Delivery::begin(spec, attached.input).await?;
        if let Err(e) = self.docker.start_container(&name, None).await {
            delivery.abort();
            return Err(engine_err(format!("starting container {name}"))(e));
        }
        let output = attached
            .output
            .map_ok(|o| match o {
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message } => message,
            })
            .map_err(|e| ExecError::Engine {
                action: "reading the job's output".into(),
                reason: describe(&e),
            });
        let (output, mut input) = delivery
            .finish(&self.docker, &name, Box::pin(output))
            .await?;
        if !spec.open_stdin {
            // The job reads no replies: its standard input ends here, as `docker run`'s does.
            let _ = input.shutdown().await;
        }
        Ok(JobStreams {
            output,
            input: spec.open_stdin.then_some(input),
        })
    }

    async fn wait(&self, job_id: &str) -> Result<i64, ExecError> {
        let name = names::job_container(job_id);
        let removal = self.removals.lock().expect("removals").remove(job_id);
        if let Some(removal) = removal {
            let code = removal.await.map_err(|e| ExecError::Engine {
                action: format!("waiting for {name}"),
                reason: e.to_string(),
            })??;
            self.removed
                .lock()
                .expect("removed jobs")
                .insert(job_id.to_string());
            return Ok(code);
        }
        exit_code(self.docker.wait_container(&name, None), name).await
    }

    async fn kill(&self, job_id: &str) -> Result<(), ExecError> {
        let name = names::job_container(job_id);
        match self
            .docker
            .kill_container(
                &name,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal("KILL")
                        .build(),
                ),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, &[404, 409]) => Ok(()),
            Err(e) => Err(engine_err(format!("killing {name}"))(e)),
        }
    }

    async fn download(&self, job_id: &str, path: &str) -> Result<Vec<u8>, ExecError> {
        let name = names::job_container(job_id);
        let chunks: Vec<bytes::Bytes> = self
            .docker
            .download_from_container(
                &name,
                Some(
                    DownloadFromContainerOptionsBuilder::default()
                        .path(path)
                        .build(),
                ),
            )
            .try_collect()
            .await
            .map_err(engine_err(format!("reading {path} from {name}")))?;
        Ok(chunks.concat())
    }

    async fn teardown(&self, job_id: &str) -> Result<(), ExecError> {
        // The build directory's volume is anonymous: it goes with the job container.
        self.volumes.remove(job_id);
        if self.lone.lock().expect("lone jobs").remove(job_id) {
            let removal = self.removals.lock().expect("removals").remove(job_id);
            if self.removed.lock().expect("removed jobs").remove(job_id) {
                return Ok(());
            }
            let name = names::job_container(job_id);
            let opts = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            return match self.docker.remove_container(&name, Some(opts)).await {
                // 409: the engine is removing it (it ended): done when the removal's wait is.
                Err(e) if is_status(&e, &[409]) => {
                    if let Some(removal) = removal {
                        let _ = tokio::time::timeout(REMOVAL_TIMEOUT, removal).await;
                    }
                    Ok(())
                }
                Ok(()) => Ok(()),
                Err(e) if is_status(&e, &[404]) => Ok(()),
                Err(e) => Err(engine_err(format!("removing container {name}"))(e)),
            };
        }
        let filters = label_filter(&[(LABEL_JOB, job_id)]);
        for kind in [Kind::Container, Kind::Network, Kind::Volume] {
            self.remove_labelled(kind, &filters, false).await?;
        }
        Ok(())
    }

    /// The job's writable layers and its build directory's volume ([`volume`]).
    async fn disk_usage(&self, job_id: &str) -> Result<Option<u64>, ExecError> {
        self.usage(job_id).await
    }

    /// The three kinds are swept at once: every `slipway run` waits for the sweep, and it is
    /// almost always three empty listings. A network still in use by a leftover container is
    /// removed once the container is (the removal waits for it); a volume the engine refuses
    /// as in use is left to the next sweep (a container's anonymous volumes go with it).
    async fn sweep(&self) -> Result<SweepReport, ExecError> {
        let filters = label_filter(&[(LABEL_MANAGED, "true")]);
        let (containers, networks, volumes) = futures::try_join!(
            self.remove_labelled(Kind::Container, &filters, true),
            self.remove_labelled(Kind::Network, &filters, true),
            self.remove_labelled(Kind::Volume, &filters, true),
        )?;
        Ok(SweepReport {
            containers,
            networks,
            volumes,
        })
    }
}

/// The engine's wait for a lone job's container to be removed, answering its exit code.
type Removal = tokio::task::JoinHandle<Result<i64, ExecError>>;

/// How long teardown waits for the engine to finish removing a job container it is removing.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The exit code a container wait answers.
async fn exit_code(
    mut wait: impl futures::Stream<Item = Result<bollard::models::ContainerWaitResponse, BollardError>>
    + Unpin,
    name: String,
) -> Result<i64, ExecError> {
    match wait.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(engine_err(format!("waiting for {name}"))(e)),
        None => Err(ExecError::Engine {
            action: format!("waiting for {name}"),
            reason: "the engine closed the wait without an exit code".into(),
        }),
    }
}

/// Splits `name[:tag]` (a registry port is not a tag) for the pull API.
pub fn split_reference(image: &str) -> (&str, &str) {
    if let Some(at) = image.find('@') {
        return (&image[..at], &image[at + 1..]);
    }
    match image.rfind(':') {
        Some(i) if !image[i + 1..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        assert_eq!(split_reference("node:16"), ("node", "16"));
        assert_eq!(split_reference("redis"), ("redis", "latest"));
        assert_eq!(
            split_reference("127.0.0.1:5000/team/app"),
            ("127.0.0.1:5000/team/app", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/team/app:v1"),
            ("127.0.0.1:5000/team/app", "v1")
        );
    }
}
