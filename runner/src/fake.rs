//! A scriptable executor for unit tests of scheduling and lifecycle logic without an engine, and
//! a secret source that needs no keys.
//!
//! Each job's behaviour comes from a closure over its [`JobSpec`]: fail setup, print chunks
//! (markers included, see [`marker`]), hang until killed, exit with a code. Every call is
//! recorded so tests can assert the lifecycle (e.g. teardown after a failed setup).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::executor::{ExecError, Executor, JobSpec, JobStreams, Progress, SweepReport};
use crate::secret_source::SecretSource;
use slipway_secrets::Secret;

/// A [`SecretSource`] without keys: every `secure:` value "decrypts" to the variable `name` with
/// `prefix` followed by the ciphertext, so a test knows the plaintext to look for; it holds no
/// encrypted files.
#[derive(Debug, Clone, Copy)]
pub struct PrefixSecrets {
    /// The variable name every value decrypts to.
    pub name: &'static str,
    /// What each plaintext starts with.
    pub prefix: &'static str,
}

impl SecretSource for PrefixSecrets {
    fn decrypt_env(
        &self,
        _repo: &str,
        ciphertext: &str,
    ) -> Result<(String, Secret<String>), slipway_secrets::Error> {
        let plain = format!("{}{ciphertext}", self.prefix);
        Ok((self.name.to_owned(), Secret::new(plain)))
    }

    fn decrypt_file(&self, _: &str, _: &[u8]) -> Result<Secret<Vec<u8>>, slipway_secrets::Error> {
        Err(slipway_secrets::Error::CorruptFile {
            path: "encrypted file".into(),
            reason: "this source holds no files".into(),
        })
    }
}

/// What a fake job does.
#[derive(Debug, Clone, Default)]
pub struct FakeRun {
    /// Fail `setup` with this message.
    pub setup_error: Option<String>,
    /// Output chunks, in order.
    pub output: Vec<Bytes>,
    /// Wait this long before the first chunk.
    pub delay: Duration,
    /// Wait this long before each chunk: a job printing at its own pace.
    pub every: Duration,
    /// Keep the stream open until killed.
    pub hang: bool,
    /// Exit code reported by `wait`.
    pub exit_code: i64,
}

/// The nonce of a job's script, for building markers.
pub fn nonce(spec: &JobSpec) -> String {
    let script = String::from_utf8_lossy(spec.files[0].contents.expose()).into_owned();
    script
        .lines()
        .find_map(|l| l.strip_prefix("slipway_nonce="))
        .unwrap_or_default()
        .to_string()
}

/// One marker line as the job script would print it.
pub fn marker(spec: &JobSpec, text: &str) -> Bytes {
    Bytes::from(format!("\x02slipway:{}:{text}\n", nonce(spec)))
}

type Behaviour = dyn Fn(&JobSpec) -> FakeRun + Send + Sync;

pub struct FakeExecutor {
    behaviour: Box<Behaviour>,
    calls: Mutex<Vec<String>>,
    kills: Mutex<Vec<(String, CancellationToken)>>,
}

impl std::fmt::Debug for FakeExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeExecutor").finish_non_exhaustive()
    }
}

impl FakeExecutor {
    /// A fake whose jobs behave as `behaviour` says.
    pub fn new(behaviour: impl Fn(&JobSpec) -> FakeRun + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(FakeExecutor {
            behaviour: Box::new(behaviour),
            calls: Mutex::new(Vec::new()),
            kills: Mutex::new(Vec::new()),
        })
    }

    /// Every call so far, as `method job_id`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls lock").clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("calls lock").push(call);
    }

    fn token(&self, job_id: &str) -> CancellationToken {
        let mut kills = self.kills.lock().expect("kills lock");
        if let Some((_, t)) = kills.iter().find(|(id, _)| id == job_id) {
            return t.clone();
        }
        let t = CancellationToken::new();
        kills.push((job_id.to_string(), t.clone()));
        t
    }
}

#[async_trait]
impl Executor for FakeExecutor {
    async fn ensure_image(&self, image: &str, _progress: Progress<'_>) -> Result<(), ExecError> {
        self.record(format!("ensure_image {image}"));
        Ok(())
    }

    async fn volume_exists(&self, _name: &str) -> Result<bool, ExecError> {
        Ok(false)
    }

    async fn setup(&self, spec: &JobSpec, _progress: Progress<'_>) -> Result<(), ExecError> {
        self.record(format!("setup {}", spec.job_id));
        match (self.behaviour)(spec).setup_error {
            Some(reason) => Err(ExecError::Engine {
                action: "setting up".into(),
                reason,
            }),
            None => Ok(()),
        }
    }

    async fn start(&self, spec: &JobSpec) -> Result<JobStreams, ExecError> {
        self.record(format!("start {}", spec.job_id));
        let run = (self.behaviour)(spec);
        let killed = self.token(&spec.job_id);
        let every = run.every;
        let chunks = futures::stream::iter(run.output).then(move |chunk| async move {
            if !every.is_zero() {
                tokio::time::sleep(every).await;
            }
            Ok(chunk)
        });
        let delay = run.delay;
        let head = futures::stream::once(async move {
            tokio::time::sleep(delay).await;
        })
        .filter_map(|_| async { None });
        let tail = futures::stream::once(async move {
            if run.hang {
                killed.cancelled().await;
            }
        })
        .filter_map(|_| async { None });
        Ok(JobStreams {
            output: Box::pin(head.chain(chunks).chain(tail)),
            input: None,
        })
    }

    async fn wait(&self, job_id: &str) -> Result<i64, ExecError> {
        self.record(format!("wait {job_id}"));
        Ok(0)
    }

    async fn kill(&self, job_id: &str) -> Result<(), ExecError> {
        self.record(format!("kill {job_id}"));
        self.token(job_id).cancel();
        Ok(())
    }

    async fn download(&self, _job_id: &str, _path: &str) -> Result<Vec<u8>, ExecError> {
        Ok(Vec::new())
    }

    async fn teardown(&self, job_id: &str) -> Result<(), ExecError> {
        self.record(format!("teardown {job_id}"));
        Ok(())
    }

    async fn sweep(&self) -> Result<SweepReport, ExecError> {
        Ok(SweepReport::default())
    }
}
