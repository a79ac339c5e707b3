//! The deploy seam: what a deploy provider is handed while the job's container waits, and the
//! runner's side of a deploy request from the job's script.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use slipway_pipelines::plan::{Context, Deploy, Job, Plan};
use slipway_secrets::Secret;
use tokio::sync::mpsc;

use crate::executor::{ExecError, Executor};
use crate::job::JobRun;
use crate::prepare::PreparedJob;
use crate::runner::Runner;
use crate::script;
use crate::secret_source::SecretSource;

/// Reads files from a running job, for deploy providers.
#[async_trait]
pub trait JobFiles: Send + Sync {
    /// A tar of `path` (absolute, or relative to the build dir).
    async fn tar(&self, path: &str) -> Result<Vec<u8>, ExecError>;
}

/// Where a deploy writes progress while it works: the one log seam of deploys, which the
/// providers write to directly. In a job each line reaches the job's log (through the masker) as
/// it is written, not when the deploy ends.
pub trait DeployLog: Send + Sync {
    /// Writes one line (no trailing newline).
    fn line(&self, line: &str);
}

/// Everything a deploy provider gets.
pub struct DeployRequest<'a> {
    /// The job deploying.
    pub job: &'a Job,
    /// The deploy entry (options still encrypted where `secure:`).
    pub deploy: &'a Deploy,
    /// The event.
    pub context: &'a Context,
    /// The build dir inside the job.
    pub build_dir: &'a str,
    /// The job's files.
    pub files: &'a dyn JobFiles,
    /// The job's environment as its shell had it right before the deploy (empty when it could
    /// not be read).
    pub env: Vec<(String, String)>,
    /// Values the log masks (secret settings and `secure:` variables): env values among them
    /// must never be shown.
    pub secret_values: &'a [Secret<String>],
    /// Decrypts the repository's `secure:` values; `None` when the job gets no secrets (fork pull
    /// requests, runners without keys), so `secure:` options cannot be read.
    pub secrets: Option<Arc<dyn SecretSource>>,
    /// Image references the build pushed: the job's `SLIPWAY_PUSHED_IMAGES` (space-separated).
    pub pushed_images: Vec<String>,
    /// The job's log, for progress as it happens.
    pub log: &'a dyn DeployLog,
}

/// What a deploy provider reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployReport {
    /// True when the deploy settled successfully.
    pub success: bool,
    /// Lines for the job's log, written after those sent to [`DeployRequest::log`].
    pub log: Vec<String>,
}

/// Performs deploys of providers other than `script`; called by the runner at the deploy step,
/// while the job's container waits.
#[async_trait]
pub trait DeployHook: Send + Sync {
    /// Deploys, and says how it went.
    async fn deploy(&self, request: DeployRequest<'_>) -> DeployReport;

    /// Shell text the job runs right before `deploy` is requested (after the cleanup), when the
    /// provider publishes something the job's own tools build (`python setup.py sdist`,
    /// `npm pack`): building runs the project's code, which belongs in the job's container, never
    /// where the deploy holds its credentials. Its output is the job's; if it fails, the deploy
    /// fails. `None` (the default) for providers that publish files as they are.
    fn job_step(&self, _deploy: &Deploy) -> Option<String> {
        None
    }
}

impl Runner {
    pub(crate) async fn deploy(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
        index: usize,
    ) -> i32 {
        let Some(step) = prepared.script.deploys.get(index) else {
            return 1;
        };
        let Some(hook) = &self.options.deploy_hook else {
            run.error(&format!(
                "Deploy provider {} is not available in this runner; nothing was deployed.",
                step.provider
            ))
            .await;
            return 1;
        };
        let files = ExecutorFiles {
            executor: self.executor.as_ref(),
            job_id: &prepared.spec.job_id,
            build_dir: &prepared.spec.working_dir,
        };
        let env = match self
            .executor
            .download(&prepared.spec.job_id, script::DEPLOY_ENV_PATH)
            .await
        {
            Ok(tar) => parse_env_dump(&tar),
            Err(_) => Vec::new(),
        };
        let pushed_images = env
            .iter()
            .find(|(k, _)| k == "SLIPWAY_PUSHED_IMAGES")
            .map(|(_, v)| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let secrets = match (&self.options.secrets, plan.context.fork) {
            (Some(s), false) => Some(s.clone()),
            _ => None,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = ChannelLog(tx);
        let request = DeployRequest {
            job,
            deploy: &job.deploys[step.index],
            context: &plan.context,
            build_dir: &prepared.spec.working_dir,
            files: &files,
            env,
            secret_values: &prepared.secrets,
            secrets,
            pushed_images,
            log: &sink,
        };
        let deploying = hook.deploy(request);
        tokio::pin!(deploying);
        let report = loop {
            tokio::select! {
                report = &mut deploying => break report,
                Some(line) = rx.recv() => run.log(Bytes::from(line)).await,
            }
        };
        // Lines sent in the deploy's last poll are already queued.
        while let Ok(line) = rx.try_recv() {
            run.log(Bytes::from(line)).await;
        }
        for line in &report.log {
            run.log(Bytes::from(format!("{line}\n"))).await;
        }
        i32::from(!report.success)
    }
}

/// Sends deploy log lines to the job loop, which writes them while the deploy runs.
pub(crate) struct ChannelLog(pub(crate) mpsc::UnboundedSender<String>);

impl DeployLog for ChannelLog {
    fn line(&self, line: &str) {
        let _ = self.0.send(format!("{line}\n"));
    }
}

/// The variables of an `env -0` dump, read from the tar the engine returns.
pub(crate) fn parse_env_dump(tar: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(tar);
    let mut data = Vec::new();
    if let Ok(mut entries) = archive.entries()
        && let Some(Ok(mut entry)) = entries.next()
    {
        let _ = std::io::Read::read_to_end(&mut entry, &mut data);
    }
    data.split(|b| *b == 0)
        .filter_map(|item| {
            let item = String::from_utf8_lossy(item);
            let (k, v) = item.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub(crate) struct ExecutorFiles<'a> {
    pub(crate) executor: &'a dyn Executor,
    pub(crate) job_id: &'a str,
    pub(crate) build_dir: &'a str,
}

#[async_trait]
impl JobFiles for ExecutorFiles<'_> {
    async fn tar(&self, path: &str) -> Result<Vec<u8>, ExecError> {
        let full = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", self.build_dir, path)
        };
        self.executor.download(self.job_id, &full).await
    }
}
