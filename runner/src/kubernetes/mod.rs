//! The Kubernetes executor: the [`Executor`] seam implemented with kube-rs, one pod per job.
//!
//! [`pod`] builds the pod (pure), [`secret`] the Secret owned by the pod that holds the job's
//! secret files, [`status`] reads where the pod is, [`logs`] follows the job's output, [`files`]
//! streams the other files and the workspace in and reads files back, [`sweep`] removes what a
//! dead runner left. Like the Docker executor it keeps no per-job state: every call derives the
//! pod's name from the job id.
//!
//! The lifecycle maps onto the pod as follows: `setup` creates the pod, then its Secret (owned by
//! the pod, so deleted with it), and waits until its job container runs (services first, each
//! started once its readiness check passes), erroring with the pod's events when it stays pending
//! longer than `pending_timeout_seconds`; `start` streams the workspace and the files without
//! secrets over the job container's standard input and follows its log; `wait` reads the
//! exit code from the job container's terminated state, nothing else; `kill` deletes the pod with
//! its grace period; `teardown` deletes it at once. `activeDeadlineSeconds` backs the runner's
//! timeouts should the runner itself die.

#[cfg(feature = "testing")]
pub mod checked;
pub mod config;
mod files;
mod logs;
pub mod pod;
pub mod secret;
mod status;
mod sweep;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

pub use config::KubernetesConfig;

use crate::executor::{ExecError, Executor, JobSpec, JobStreams, Progress, SweepReport};
use status::{JobState, api_err, describe, is_not_found, job_state};

/// How often a pending pod is looked at.
const POLL: Duration = Duration::from_millis(500);

/// The Kubernetes executor.
#[derive(Clone)]
pub struct KubernetesExecutor {
    client: Client,
    config: KubernetesConfig,
}

impl std::fmt::Debug for KubernetesExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesExecutor")
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

impl KubernetesExecutor {
    /// Connects as `config` says (its kubeconfig, else in-cluster, else `KUBECONFIG` or
    /// `~/.kube/config`) and checks the API server answers.
    pub async fn connect(config: KubernetesConfig) -> Result<Self, ExecError> {
        let no_cluster = |reason: String| ExecError::Engine {
            action: "connecting to the Kubernetes API server".into(),
            reason,
        };
        let options = kube::config::KubeConfigOptions {
            context: config.context.clone(),
            ..Default::default()
        };
        let client_config = match &config.kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| no_cluster(format!("reading {}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| no_cluster(format!("{}: {e}", path.display())))?
            }
            None if config.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| no_cluster(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| no_cluster(e.to_string()))?,
        };
        let client = Client::try_from(client_config).map_err(|e| no_cluster(e.to_string()))?;
        client
            .apiserver_version()
            .await
            .map_err(|e| no_cluster(describe(&e)))?;
        Ok(Self::with_client(client, config))
    }

    /// An executor on an existing client (tests point one at a stand-in API server).
    pub fn with_client(client: Client, config: KubernetesConfig) -> Self {
        KubernetesExecutor { client, config }
    }

    /// The client (tests list what a build left).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The settings it runs with.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn events(&self) -> Api<Event> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    async fn delete_pod(&self, name: &str, grace: i64) -> Result<(), ExecError> {
        let params = DeleteParams {
            grace_period_seconds: Some(u32::try_from(grace.max(0)).unwrap_or(u32::MAX)),
            ..Default::default()
        };
        match self.pods().delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_err(format!("deleting pod {name}"))(e)),
        }
    }

    /// Deletes pod `name` at once, waits until it is gone, and creates `pod` in its place.
    async fn replace_pod(&self, name: &str, pod: &Pod) -> Result<Pod, ExecError> {
        self.delete_pod(name, 0).await?;
        let started = Instant::now();
        while self
            .pods()
            .get_opt(name)
            .await
            .map_err(api_err(format!("reading pod {name}")))?
            .is_some()
        {
            if started.elapsed() > Duration::from_secs(self.config.pending_timeout_seconds) {
                return Err(ExecError::Engine {
                    action: format!("replacing pod {name}"),
                    reason: "the earlier attempt's pod is still being deleted".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        self.pods()
            .create(&PostParams::default(), pod)
            .await
            .map_err(api_err(format!("creating pod {name}")))
    }

    /// Waits until the job container of pod `name` runs (or has already run), reporting each
    /// new reason it is pending for; errors with the pod's events past the pending timeout.
    async fn wait_running(&self, name: &str, progress: Progress<'_>) -> Result<(), ExecError> {
        let started = Instant::now();
        let limit = Duration::from_secs(self.config.pending_timeout_seconds);
        let pods = self.pods();
        let mut told: Vec<String> = Vec::new();
        loop {
            let reasons = match job_state(&pods, name).await? {
                JobState::Running | JobState::Terminated(_) => return Ok(()),
                JobState::Gone => {
                    return Err(ExecError::Engine {
                        action: format!("starting pod {name}"),
                        reason: "the pod was deleted before its job started".into(),
                    });
                }
                JobState::Failed(why) => {
                    return Err(ExecError::Engine {
                        action: format!("starting pod {name}"),
                        reason: format!(
                            "{why}\nevents:\n{}",
                            status::pod_events(&self.events(), name).await
                        ),
                    });
                }
                JobState::Pending(reasons) => reasons,
            };
            for r in &reasons {
                if !told.contains(r) {
                    progress(&format!("pod {name}: {r}"));
                    told.push(r.clone());
                }
            }
            if started.elapsed() >= limit {
                let events = status::pod_events(&self.events(), name).await;
                return Err(ExecError::Engine {
                    action: format!("starting pod {name}"),
                    reason: format!(
                        "still pending after {} s (pending_timeout_seconds){}\nevents:\n{events}",
                        limit.as_secs(),
                        if reasons.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", reasons.join("; "))
                        }
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[async_trait]
impl Executor for KubernetesExecutor {
    /// The cluster's nodes pull images themselves; a missing one shows as a pending pod.
    async fn ensure_image(&self, _image: &str, _progress: Progress<'_>) -> Result<(), ExecError> {
        Ok(())
    }

    /// No cache volume is kept between pods: each job starts with empty cache directories.
    async fn volume_exists(&self, _name: &str) -> Result<bool, ExecError> {
        Ok(false)
    }

    async fn setup(&self, spec: &JobSpec, progress: Progress<'_>) -> Result<(), ExecError> {
        let name = pod::pod_name(&spec.job_id);
        let secret_name = secret::secret_name(&name)?;
        let pod = pod::job_pod(spec, &self.config, &secret_name)?;
        let secret = secret::job_secret(spec, &self.config, &secret_name)?;
        for s in &spec.services {
            progress(&format!("starting service {} ({})", s.name, s.image));
        }
        let created = match self.pods().create(&PostParams::default(), &pod).await {
            Ok(created) => created,
            // A pod of an earlier attempt of this job (its runner died): it goes first.
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 409) => {
                progress(&format!(
                    "pod {name} is left from an earlier attempt; replacing it"
                ));
                self.replace_pod(&name, &pod).await?
            }
            Err(e) => return Err(api_err(format!("creating pod {name}"))(e)),
        };
        progress(&format!(
            "pod {name} created in namespace {}",
            self.config.namespace
        ));
        // The kubelet starts no container of the pod before its Secret exists.
        if let Some(secret) = secret {
            self.secrets()
                .create(&PostParams::default(), &secret::owned_by(secret, &created)?)
                .await
                .map_err(api_err(format!(
                    "creating Secret {secret_name} of pod {name}"
                )))?;
            progress(&format!(
                "the job's secret files are in Secret {secret_name}, owned by the pod"
            ));
        }
        self.wait_running(&name, progress).await
    }

    async fn start(&self, spec: &JobSpec) -> Result<JobStreams, ExecError> {
        let name = pod::pod_name(&spec.job_id);
        let input = files::deliver(&self.pods(), &name, spec).await?;
        Ok(JobStreams {
            output: logs::follow(self.pods(), name),
            input,
        })
    }

    /// The exit code from the job container's terminated state, and from nothing else.
    async fn wait(&self, job_id: &str) -> Result<i64, ExecError> {
        let name = pod::pod_name(job_id);
        let pods = self.pods();
        loop {
            match job_state(&pods, &name).await? {
                JobState::Terminated(code) => return Ok(code),
                JobState::Gone => {
                    return Err(ExecError::Engine {
                        action: format!("waiting for pod {name}"),
                        reason: "the pod was deleted before its job container ended".into(),
                    });
                }
                JobState::Failed(why) => {
                    return Err(ExecError::Engine {
                        action: format!("waiting for pod {name}"),
                        reason: why,
                    });
                }
                JobState::Running | JobState::Pending(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn kill(&self, job_id: &str) -> Result<(), ExecError> {
        self.delete_pod(&pod::pod_name(job_id), self.config.grace_period_seconds)
            .await
    }

    async fn download(&self, job_id: &str, path: &str) -> Result<Vec<u8>, ExecError> {
        files::download(&self.pods(), &pod::pod_name(job_id), path).await
    }

    async fn teardown(&self, job_id: &str) -> Result<(), ExecError> {
        self.delete_pod(&pod::pod_name(job_id), 0).await
    }

    async fn sweep(&self) -> Result<SweepReport, ExecError> {
        sweep::sweep(&self.pods()).await
    }
}
