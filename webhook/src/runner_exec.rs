//! The real [`JobRunner`]: each job goes to `slipway-runner` (one container, one script) on Docker.
//!
//! Trust is decided per build, from the event: the plan's `context.fork` comes from the webhook
//! payload (a pull request whose head repository is not the base repository, or was deleted),
//! and the runner withholds every secret from such a build. Pushes and pull requests from
//! branches of the same repository get the repository's secrets, when the server has its key.

use crate::job_runner::{JobRun, JobRunner};
use async_trait::async_trait;
use slipway_runner::runner::StoreSecrets;
use slipway_runner::{
    BuildEvent, BuildInfo, ExecError, JobEvent, JobOutcome, JobResult, Runner, RunnerOptions,
};
use slipway_secrets::{RepoSlug, SecretStore};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs jobs with [`slipway_runner::Runner`].
pub struct ServeRunner {
    /// For repositories whose key is in the store: secrets for trusted builds.
    keyed: Option<Arc<Runner>>,
    /// For every other repository: no secrets, and the log says no key is present.
    keyless: Arc<Runner>,
    store: Option<SecretStore>,
    /// Tells this server's resources from those of other servers on the same Docker engine.
    instance: String,
}

impl ServeRunner {
    /// The one runner configuration of the server: `options` apply to every job (limits, the
    /// deploy hook, whether trusted builds may use `services: docker`), and repository secrets
    /// come from `secrets` (the data directory's key store, the one `slipway secrets` writes).
    ///
    /// `options.secrets` is ignored: a job gets the store only when its repository already has a
    /// key there (no key is made for a repository nobody set secrets up for), and the runner
    /// then releases secrets only to builds that are not from forks.
    pub fn new(
        executor: Arc<dyn slipway_runner::Executor>,
        options: RunnerOptions,
        secrets: Option<SecretStore>,
    ) -> ServeRunner {
        let keyless = RunnerOptions {
            secrets: None,
            ..options.clone()
        };
        let keyed = secrets.clone().map(|store| {
            let options = RunnerOptions {
                secrets: Some(Arc::new(StoreSecrets(store))),
                ..options
            };
            Arc::new(Runner::new(executor.clone(), options))
        });
        ServeRunner {
            keyed,
            keyless: Arc::new(Runner::new(executor, keyless)),
            store: secrets,
            instance: String::new(),
        }
    }

    /// Names this server's containers and networks after its data directory too, so servers
    /// sharing one Docker engine never try to create the same name (each numbers its builds
    /// from 1).
    pub fn for_data_dir(mut self, data_dir: &std::path::Path) -> ServeRunner {
        use sha2::Digest as _;
        let dir = data_dir
            .canonicalize()
            .unwrap_or_else(|_| data_dir.to_path_buf());
        let hash = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
        self.instance = hex::encode(&hash[..3]);
        self
    }

    /// The runner for a repository: with its secrets when its key is in the store.
    fn runner_for(&self, repo: &str) -> Arc<Runner> {
        let has_key = match (&self.store, RepoSlug::parse(repo)) {
            (Some(store), Ok(slug)) => store.key_file(&slug).is_file(),
            _ => false,
        };
        match (&self.keyed, has_key) {
            (Some(runner), true) => runner.clone(),
            _ => self.keyless.clone(),
        }
    }
}

#[async_trait]
impl JobRunner for ServeRunner {
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let errored = |why: String| JobOutcome::ended(&job.job, JobResult::Errored, Some(why));
        let runner = self.runner_for(&job.plan.context.repo);
        let build_dir =
            slipway_runner::runner::build_dir(&runner.options().build_root, &job.plan.context.repo);
        let dir = job.workspace.clone();
        let packed =
            tokio::task::spawn_blocking(move || slipway_runner::workspace::pack(&dir, &build_dir))
                .await;
        let workspace = match packed {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => return errored(e.to_string()),
            Err(e) => return errored(format!("packing the workspace crashed: {e}")),
        };
        let info = BuildInfo {
            id: if self.instance.is_empty() {
                format!("b{}-j{}", job.build_id, job.job_id)
            } else {
                format!("{}-b{}-j{}", self.instance, job.build_id, job.job_id)
            },
            number: job.build_id as u64,
        };
        let (tx, mut rx) = mpsc::channel::<BuildEvent>(256);
        // The runner tags each event with the job's number; the queue runs one job at a time.
        let forwarder = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let _ = events.send(ev.event).await;
            }
        });
        let (plan, pjob) = (job.plan.clone(), job.job.clone());
        // Its own task, so a panic in the runner errors this job instead of the worker.
        let driven = tokio::spawn(async move {
            runner
                .run_job(&plan, &pjob, &info, Some(&workspace), tx, cancel)
                .await
        })
        .await;
        let _ = forwarder.await;
        driven.unwrap_or_else(|e| errored(format!("the runner crashed: {e}")))
    }

    async fn sweep(&self) -> Result<usize, ExecError> {
        let report = self.keyless.sweep().await?;
        Ok(report.containers.len() + report.networks.len() + report.volumes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_pipelines::plan::{Context, EventType};
    use slipway_runner::fake::{FakeExecutor, FakeRun};
    use slipway_secrets::Secret;
    use std::sync::Mutex;

    /// Runs the pipeline's only job for `ctx` on a fake engine; returns the job's script (with
    /// whatever secrets it was given) and its log.
    async fn run(
        executor_for: impl FnOnce(Arc<dyn slipway_runner::Executor>) -> ServeRunner,
        pipeline: &str,
        ctx: Context,
    ) -> (String, String) {
        let scripts = Arc::new(Mutex::new(Vec::new()));
        let seen = scripts.clone();
        let fake = FakeExecutor::new(move |spec| {
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(spec.files[0].contents.expose()).into_owned());
            FakeRun::default()
        });
        let executor = executor_for(fake);
        let plan = slipway_pipelines::plan(".travis.yml", pipeline.as_bytes(), &ctx).unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        let job = JobRun {
            build_id: 1,
            job_id: 1,
            job: plan.stages[0].jobs[0].clone(),
            plan,
            workspace: workspace.path().to_path_buf(),
        };
        executor.run(job, tx, CancellationToken::new()).await;
        let mut log = String::new();
        while let Some(ev) = rx.recv().await {
            if let JobEvent::Log(b) = ev {
                log.push_str(&String::from_utf8_lossy(&b));
            }
        }
        let script = scripts.lock().unwrap().join("\n");
        (script, log)
    }

    fn push(repo: &str) -> Context {
        Context {
            event: EventType::Push,
            branch: "master".into(),
            repo: repo.into(),
            ..Context::default()
        }
    }

    fn pull_request(repo: &str, head_repo: &str, fork: bool) -> Context {
        Context {
            event: EventType::PullRequest,
            pull_request: Some(3),
            fork,
            head_repo: Some(head_repo.into()),
            head_branch: Some("change".into()),
            ..push(repo)
        }
    }

    #[tokio::test]
    async fn pushes_and_same_repository_pull_requests_get_secrets_and_forks_do_not() {
        let data = tempfile::tempdir().unwrap();
        let store = SecretStore::new(data.path());
        let slug = RepoSlug::parse("acme/app").unwrap();
        let secure = store
            .encrypt_value(&slug, "DEPLOY_TOKEN", &Secret::new("tok-7f3a9c1e".into()))
            .unwrap();
        let pipeline = format!(
            "language: shell\nenv:\n  global:\n    - secure: \"{secure}\"\nscript: echo hi\n"
        );
        let make = |store: SecretStore| {
            move |fake| ServeRunner::new(fake, RunnerOptions::default(), Some(store))
        };

        let (script, log) = run(make(store.clone()), &pipeline, push("acme/app")).await;
        assert!(script.contains("tok-7f3a9c1e"), "{script}");
        assert!(!log.contains("tok-7f3a9c1e"), "{log}");

        let same_repo = pull_request("acme/app", "acme/app", false);
        let (script, _) = run(make(store.clone()), &pipeline, same_repo).await;
        assert!(script.contains("tok-7f3a9c1e"), "{script}");

        let fork = pull_request("acme/app", "eve/app", true);
        let (script, log) = run(make(store.clone()), &pipeline, fork).await;
        assert!(!script.contains("tok-7f3a9c1e"), "{script}");
        assert!(log.contains("pull request from a fork"), "{log}");
        assert!(log.contains("Secure variables are unset"), "{log}");
    }

    #[tokio::test]
    async fn a_repository_without_a_key_runs_without_secrets_and_gets_no_key_made() {
        let data = tempfile::tempdir().unwrap();
        let store = SecretStore::new(data.path());
        let other = SecretStore::new(tempfile::tempdir().unwrap().path());
        let secure = other
            .encrypt_value(
                &RepoSlug::parse("acme/app").unwrap(),
                "DEPLOY_TOKEN",
                &Secret::new("tok-elsewhere".into()),
            )
            .unwrap();
        let pipeline = format!(
            "language: shell\nenv:\n  global:\n    - secure: \"{secure}\"\nscript: echo hi\n"
        );
        let (script, log) = run(
            |fake| ServeRunner::new(fake, RunnerOptions::default(), Some(store.clone())),
            &pipeline,
            push("acme/app"),
        )
        .await;
        assert!(!script.contains("tok-elsewhere"), "{script}");
        assert!(log.contains("no key for acme/app is present here"), "{log}");
        let slug = RepoSlug::parse("acme/app").unwrap();
        assert!(!store.key_file(&slug).exists());
    }
}
