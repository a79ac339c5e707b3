//! Workers: claim work from the store under a lease, prepare builds (fetch, merge, plan) and run
//! jobs through the [`JobRunner`], streaming their logs to the store and to live viewers.
//!
//! A lease is renewed while the work runs; when a renewal fails (the job was cancelled, or the
//! lease expired and the job went to someone else) the run is cancelled at once, so one job never
//! runs twice at the same time.

use crate::auth::GitHubAuth;
use crate::config::Config;
use crate::git::{GitError, Mirrors, NoTokens, Remote, SubmoduleTokens};
use crate::job_runner::{JobRun, JobRunner};
use crate::metrics::Metrics;
use crate::store::{
    Build, ChunkKind, Job, JobLease, JobState, LogChunk, NewJob, Prepared, Store, StoreError, Task,
};
use slipway_pipelines::plan::{Plan, Stage};
use slipway_runner::{JobEvent, JobResult};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use crate::loghub::{LiveEvent, LogHub};

/// What a worker holds a lease on.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// A build it prepares.
    Build(i64),
    /// A job it runs, with its claim's fencing token.
    Job(JobLease),
}

/// The work this process does, the builds it prepares and the jobs it runs, so that a cancel
/// stops it at once instead of at its next lease renewal: a cancel here stops the cancelled
/// builds' work directly; word from another process that a preparation or a job ended makes the
/// work's renewer renew at once, and the store's answer decides. A renewal refused (the build or
/// job ended, or its lease moved on) stops the work; word that is stale (the work was queued
/// again and claimed here since) costs one renewal. Each claim has its own entry: two attempts
/// of one build or job in this process (the first lost, still stopping) are told apart.
#[derive(Default)]
pub struct LocalWork(Mutex<LocalEntries>);

#[derive(Default)]
struct LocalEntries {
    next: u64,
    entries: HashMap<u64, Local>,
}

/// One claim being worked on here.
struct Local {
    /// The build it belongs to.
    build: i64,
    held: Held,
    /// Stops the work.
    stop: CancellationToken,
    /// Makes its renewer renew now: the renewal says whether the claim still holds.
    check: Arc<Notify>,
}

/// A claim's entry in [`LocalWork`], removed when dropped.
struct Registered<'a> {
    work: &'a LocalWork,
    key: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.work.entries().entries.remove(&self.key);
    }
}

impl LocalWork {
    fn entries(&self) -> std::sync::MutexGuard<'_, LocalEntries> {
        self.0.lock().expect("local work")
    }

    /// Notes work on `held` (of `build`) until the entry is dropped.
    fn register(
        &self,
        build: i64,
        held: Held,
        stop: CancellationToken,
        check: Arc<Notify>,
    ) -> Registered<'_> {
        let mut e = self.entries();
        e.next += 1;
        let key = e.next;
        let local = Local {
            build,
            held,
            stop,
            check,
        };
        e.entries.insert(key, local);
        Registered { work: self, key }
    }

    /// Word that `job_id` ended (cancelled on another server, say).
    pub fn job_ended(&self, job_id: i64) {
        self.check(|held| matches!(held, Held::Job(lease) if lease.job_id == job_id));
    }

    /// Word that the preparation of `build_id` ended (cancelled on another server, say).
    pub fn preparation_ended(&self, build_id: i64) {
        self.check(|held| matches!(held, Held::Build(id) if *id == build_id));
    }

    /// Makes the renewers of the claims `which` picks renew at once.
    fn check(&self, which: impl Fn(&Held) -> bool) {
        for local in self.entries().entries.values() {
            if which(&local.held) {
                local.check.notify_one();
            }
        }
    }

    /// Stops the work of `builds`, which the store has just cancelled.
    fn stop_builds(&self, builds: &[i64]) {
        for local in self.entries().entries.values() {
            if builds.contains(&local.build) {
                local.stop.cancel();
            }
        }
    }
}

/// Everything workers share.
pub struct Engine {
    pub store: Arc<dyn Store>,
    /// What runs jobs.
    pub jobs: Arc<dyn JobRunner>,
    /// Git mirrors.
    pub mirrors: Arc<Mirrors>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Credentials for fetching private repositories.
    pub auth: Arc<GitHubAuth>,
    /// Live log fan-out.
    pub hub: Arc<LogHub>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where job workspaces are checked out.
    pub workspaces: PathBuf,
    /// Rung when new work may be claimable.
    pub work: Arc<Notify>,
    /// Rung when a status report was queued.
    pub outbox: Arc<Notify>,
    /// Unique per process, so leases name their holder.
    pub instance: String,
    /// The builds being prepared and the jobs running here, so that a cancel, here or on
    /// another server, stops them at once.
    local: Arc<LocalWork>,
}

impl Engine {
    /// Assembles an engine.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        jobs: Arc<dyn JobRunner>,
        mirrors: Arc<Mirrors>,
        config: Arc<Config>,
        auth: Arc<GitHubAuth>,
        metrics: Arc<Metrics>,
        workspaces: PathBuf,
    ) -> Engine {
        let work = Arc::new(Notify::new());
        let hub = Arc::new(LogHub::default());
        let local = Arc::new(LocalWork::default());
        store.listen(Arc::new(crate::loghub::Changes {
            work: work.clone(),
            hub: hub.clone(),
            local: local.clone(),
        }));
        Engine {
            store,
            jobs,
            mirrors,
            config,
            auth,
            hub,
            metrics,
            workspaces,
            work,
            outbox: Arc::new(Notify::new()),
            instance: format!("{}-{}", std::process::id(), crate::store::now_ms()),
            local,
        }
    }

    /// The token git sends (as `x-access-token`'s password) to fetch `repo` over HTTPS: the
    /// repository's or the global token, or an installation token of the GitHub App. When none
    /// can be had, fetching goes on without one (public repositories still work) and the
    /// reason is returned for the log.
    pub async fn git_token(&self, repo: &str) -> (Option<String>, Option<String>) {
        match self.auth.credential(repo).await {
            Ok(c) => (c.map(|c| c.secret().to_string()), None),
            Err(e) => {
                tracing::warn!(repo, error = %e, "no GitHub credentials for fetching");
                (None, Some(e.to_string()))
            }
        }
    }

    fn lease_ms(&self) -> i64 {
        (self.config.lease_seconds.max(1) * 1000) as i64
    }

    /// Stops the running jobs and the preparations (their fetches) of builds that the store
    /// has just cancelled.
    pub fn stop_builds(&self, builds: &[i64]) {
        self.local.stop_builds(builds);
    }

    /// Runs worker `n` until `shutdown`.
    pub async fn worker(self: Arc<Self>, n: usize, shutdown: CancellationToken) {
        let owner = format!("{}/{n}", self.instance);
        // Woken by the bell (this process's work, or a shared store's notifications); the poll
        // only backs it up.
        let fallback = Duration::from_secs(if self.store.shared() { 10 } else { 1 });
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            // Listening before claiming: a ring while the claim runs is not lost.
            let rung = self.work.notified();
            tokio::pin!(rung);
            rung.as_mut().enable();
            match self.store.claim(&owner, self.lease_ms()).await {
                Ok(Some(Task::Prepare(build))) => {
                    let span = tracing::info_span!("prepare", build = build.id, repo = %build.repo);
                    self.prepare(&owner, *build).instrument(span).await;
                }
                Ok(Some(Task::Run {
                    job,
                    build,
                    plan_json,
                })) => {
                    let span = tracing::info_span!("job", build = build.id, job = job.id);
                    self.run_job(&owner, *job, *build, plan_json, &shutdown)
                        .instrument(span)
                        .await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = rung => {}
                        _ = tokio::time::sleep(fallback) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming work");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Re-queues work whose lease expired, every few seconds, until `shutdown`.
    pub async fn reaper(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            // On a shared store an expired lease may be a dead process's on this same engine:
            // what it left still runs the lost attempt, so it goes before the job is re-queued
            // (the sweep spares live processes and other hosts).
            if self.store.shared() {
                match self.jobs.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(removed = n, "swept what dead processes left"),
                    Err(e) => tracing::error!(error = %e, "sweeping dead processes' leftovers"),
                }
            }
            match self
                .store
                .recover(false, i64::from(self.config.max_attempts))
                .await
            {
                Ok(r) if r.requeued + r.errored > 0 => {
                    tracing::warn!(requeued = r.requeued, errored = r.errored, "expired leases");
                    // A lost attempt may run on here, late: its renewal, refused, stops it and
                    // fences its live log at once.
                    self.local.check(|held| matches!(held, Held::Job(_)));
                    self.work.notify_waiters();
                    self.outbox.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "re-queueing expired work"),
            }
        }
    }

    /// Notes the work on `held` (of `build`) as done here, and keeps its lease alive, until the
    /// entry is dropped and the renewer awaited; `token` stops the work.
    fn hold(
        self: &Arc<Self>,
        owner: &str,
        build: i64,
        held: Held,
        token: &CancellationToken,
    ) -> (Registered<'_>, tokio::task::JoinHandle<()>) {
        let check = Arc::new(Notify::new());
        let registered = (self.local).register(build, held, token.clone(), check.clone());
        (registered, self.renew(owner, held, (token.clone(), check)))
    }

    /// Keeps a lease alive, renewing it at a third of its length, and at once when `check` is
    /// notified; cancels `token` when it is lost or the work was cancelled.
    fn renew(
        self: &Arc<Self>,
        owner: &str,
        held: Held,
        (token, check): (CancellationToken, Arc<Notify>),
    ) -> tokio::task::JoinHandle<()> {
        let (me, owner) = (self.clone(), owner.to_string());
        tokio::spawn(async move {
            let every = Duration::from_millis((me.lease_ms() / 3).max(100) as u64);
            loop {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => return,
                    _ = check.notified() => {}
                    _ = tokio::time::sleep(every) => {}
                }
                let renewed = match held {
                    Held::Job(lease) => me.store.renew_job(lease, me.lease_ms()).await,
                    Held::Build(id) => me.store.renew_build(id, &owner, me.lease_ms()).await,
                };
                if let (Held::Job(lease), Err(StoreError::Fenced { .. })) = (held, &renewed) {
                    me.hub.fence(lease);
                }
                if !matches!(renewed, Ok(true)) {
                    tracing::info!(?held, "lease lost or work cancelled; stopping");
                    token.cancel();
                    return;
                }
            }
        })
    }

    async fn prepare(self: &Arc<Self>, owner: &str, build: Build) {
        let token = CancellationToken::new();
        let (registered, renewer) = self.hold(owner, build.id, Held::Build(build.id), &token);
        let repo_cfg = self.config.repo(&build.repo);
        let clone_url = repo_cfg
            .as_ref()
            .and_then(|r| r.clone_url.clone())
            .unwrap_or_else(|| build.spec.clone_url.clone());
        let (token_str, auth_problem) = self.git_token(&build.repo).await;
        let mirrors = self.mirrors.clone();
        let spec = build.spec.clone();
        let id = build.id;
        let cancel = token.clone();
        let sources = tokio::task::spawn_blocking(move || {
            mirrors.prepare(id, &spec, &clone_url, token_str.as_deref(), &cancel)
        })
        .await;
        let result = match sources {
            Err(e) => Prepared::Errored {
                reason: "preparation crashed".into(),
                log: e.to_string(),
            },
            Ok(Err(GitError::Conflict(paths))) => Prepared::Errored {
                reason: format!("merge conflict in {}", paths.join(", ")),
                log: format!(
                    "The pull request does not merge cleanly into its base.\nConflicting paths:\n{}\n",
                    paths.iter().map(|p| format!("  {p}\n")).collect::<String>()
                ),
            },
            Ok(Err(e)) => Prepared::Errored {
                reason: e.to_string(),
                log: match &auth_problem {
                    Some(p) => format!("{e}\nFetched without credentials: {p}\n"),
                    None => format!("{e}\n"),
                },
            },
            Ok(Ok(src)) => {
                let imports = crate::imports::BuildImports {
                    engine: self.clone(),
                    runtime: tokio::runtime::Handle::current(),
                    repo: build.repo.clone(),
                    url: repo_cfg
                        .as_ref()
                        .and_then(|r| r.clone_url.clone())
                        .unwrap_or_else(|| build.spec.clone_url.clone()),
                    commit: src.commit.clone(),
                    fork: build.spec.context.fork,
                    cancel: token.clone(),
                };
                plan_off_runtime(&build, src, imports, &self.config.limits).await
            }
        };
        token.cancel();
        let _ = renewer.await;
        drop(registered);
        if let Err(e) = self.store.finish_prepare(build.id, owner, result).await {
            tracing::error!(error = %e, "saving preparation");
        }
        self.work.notify_waiters();
        self.outbox.notify_one();
        // Compact the mirror if fetches and builds have piled up packs and refs: after the
        // build is saved, on the blocking pool, not awaited (it waits for the mirror's lock).
        let (mirrors, repo, span) = (self.mirrors.clone(), build.repo, tracing::Span::current());
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            match mirrors.upkeep(&repo) {
                Ok(r) if r.repacked || r.refs_packed => tracing::info!(
                    packs = r.packs_before,
                    packs_after = r.packs_after,
                    loose_refs = r.loose_refs_before,
                    loose_refs_after = r.loose_refs_after,
                    "mirror compacted"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mirror upkeep failed"),
            }
        });
    }

    async fn run_job(
        self: &Arc<Self>,
        owner: &str,
        job: Job,
        build: Build,
        plan_json: String,
        shutdown: &CancellationToken,
    ) {
        self.metrics.inc(&self.metrics.jobs_started);
        let token = shutdown.child_token();
        // Viewers of an older attempt still running here, lost, go on with this one.
        self.hub.begin(job.lease());
        let (registered, renewer) = self.hold(owner, build.id, Held::Job(job.lease()), &token);
        let (state, reason) = self.execute(&job, &build, &plan_json, token.clone()).await;
        // A shutdown is not the job's fault: leave it claimed so start-up recovery re-queues it.
        if !(shutdown.is_cancelled() && state == JobState::Canceled) {
            match self.store.finish_job(job.lease(), state, reason).await {
                Ok(Some(final_state)) => {
                    tracing::info!(build = build.id, state = %final_state, "build finished");
                }
                Ok(None) => {}
                Err(e @ StoreError::Fenced { .. }) => {
                    tracing::warn!(error = %e, "the job's result was not saved");
                }
                Err(e) => tracing::error!(error = %e, "saving job result"),
            }
        }
        token.cancel();
        let _ = renewer.await;
        drop(registered);
        self.hub.close(job.lease());
        self.work.notify_waiters();
        self.outbox.notify_one();
    }

    async fn execute(
        self: &Arc<Self>,
        job: &Job,
        build: &Build,
        plan_json: &str,
        cancel: CancellationToken,
    ) -> (JobState, Option<String>) {
        let plan: Plan = match serde_json::from_str(plan_json) {
            Ok(p) => p,
            Err(e) => {
                return (
                    JobState::Errored,
                    Some(format!("stored plan is invalid: {e}")),
                );
            }
        };
        let Some(commit) = build.merge_sha.clone() else {
            return (JobState::Errored, Some("the build has no commit".into()));
        };
        // The stored plan holds this job only: its `git:` settings shape the workspace.
        let Some(planned) = plan.stages.iter().flat_map(|s| &s.jobs).next().cloned() else {
            return (JobState::Errored, Some("the job's plan is empty".into()));
        };
        let workspace = self.workspaces.join(format!("job-{}", job.id));
        let git = planned.git.clone();
        let clone_url = (self.config.repo(&build.repo))
            .and_then(|r| r.clone_url)
            .unwrap_or_else(|| build.spec.clone_url.clone());
        // Submodules get a token only at an exact clone URL: the repository's own, or another
        // served repository's own. Builds from forks fetch them anonymously.
        let fork = plan.context.fork;
        let token = match fork {
            true => None,
            false => self.git_token(&build.repo).await.0,
        };
        let served = ServedTokens {
            engine: self.clone(),
            runtime: tokio::runtime::Handle::current(),
            own: build.repo.clone(),
            own_url: clone_url.clone(),
        };
        // The build's own fetch, as its preparation made it, in case this machine's mirror
        // lacks the commit (another machine prepared the build).
        let fetch_token = match fork {
            true => self.git_token(&build.repo).await.0,
            false => token.clone(),
        };
        let (mirrors, spec, ws) = (self.mirrors.clone(), build.spec.clone(), workspace.clone());
        let stop = cancel.clone();
        let checked_out = tokio::task::spawn_blocking(move || {
            if git.clone {
                mirrors.ensure(&spec, &commit, &clone_url, fetch_token.as_deref(), &stop)?;
            }
            let remote = Remote {
                url: &clone_url,
                token: token.as_deref(),
                served: if fork { &NoTokens } else { &served },
            };
            mirrors.checkout(&spec.repo, &commit, &ws, &git, remote, &stop)
        })
        .await;
        let failed = match checked_out {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("checkout failed: {e}")),
            Err(e) => Some(format!("checkout crashed: {e}")),
        };
        if let Some(why) = failed {
            // The job's log says it too: the reason alone is easy to miss.
            let seq = self.store.next_seq(job.id).await.unwrap_or(1);
            let chunk = LogChunk {
                seq,
                kind: ChunkKind::Output,
                data: format!("{why}\n"),
            };
            if let Err(e) = self.store.append_log(job.lease(), vec![chunk]).await {
                tracing::error!(job = job.id, error = %e, "storing log");
            }
            let _ = tokio::fs::remove_dir_all(&workspace).await;
            return (JobState::Errored, Some(why));
        }
        let seq = self.store.next_seq(job.id).await.unwrap_or(1);
        let (tx, rx) = mpsc::channel(256);
        let collector = tokio::spawn(collect(
            self.store.clone(),
            self.hub.clone(),
            job.lease(),
            seq,
            rx,
        ));
        let run = JobRun {
            build_id: build.id,
            job_id: job.id,
            plan,
            job: planned,
            workspace: workspace.clone(),
        };
        let outcome = self.jobs.run(run, tx, cancel).await;
        let _ = collector.await;
        let _ = tokio::fs::remove_dir_all(&workspace).await;
        let reason = |default: &str| Some(outcome.reason.clone().unwrap_or_else(|| default.into()));
        match outcome.result {
            JobResult::Passed => (JobState::Passed, None),
            JobResult::Failed => (JobState::Failed, reason("a script command failed")),
            JobResult::Errored => (JobState::Errored, reason("the job errored")),
            JobResult::Canceled => (JobState::Canceled, Some("canceled".into())),
            JobResult::NotRun => (JobState::NotRun, reason("not run here")),
        }
    }
}

/// The tokens of the other repositories this server serves, for submodules that name one by
/// its exact clone URL: only repositories listed in `[[repos]]` (with no list, every
/// repository is served, and none but the build's own gets a token).
struct ServedTokens {
    engine: Arc<Engine>,
    runtime: tokio::runtime::Handle,
    /// The build's repository and its clone URL.
    own: String,
    own_url: String,
}

impl SubmoduleTokens for ServedTokens {
    fn token_for(&self, url: &str) -> Option<String> {
        let repo = self.engine.config.repos.iter().find(|r| {
            let theirs = match &r.clone_url {
                Some(u) => u.clone(),
                // Not configured: where GitHub serves it, on the host of the build's own URL.
                None => crate::git::resolve_url(&self.own_url, &format!("../../{}.git", r.name)),
            };
            !r.name.eq_ignore_ascii_case(&self.own) && crate::git::policy::same_url(&theirs, url)
        })?;
        // Called on the blocking pool (a checkout), never on the runtime's threads.
        self.runtime.block_on(self.engine.git_token(&repo.name)).0
    }
}

/// Turns job events into numbered chunks: published live at once, stored in batches. A phase's
/// end carries the last non-zero exit code of its commands.
async fn collect(
    store: Arc<dyn Store>,
    hub: Arc<LogHub>,
    lease: JobLease,
    mut seq: i64,
    mut rx: mpsc::Receiver<JobEvent>,
) {
    let job = lease.job_id;
    let mut pending: Vec<LogChunk> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut carry: Vec<u8> = Vec::new();
    let mut phase_exit = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = tick.tick() => {
                flush(&store, &hub, lease, &mut pending, &mut pending_bytes).await;
                continue;
            }
        };
        let Some(ev) = ev else { break };
        let (kind, data) = match ev {
            JobEvent::Log(bytes) => {
                carry.extend_from_slice(&bytes);
                let valid = utf8_prefix(&carry);
                if valid == 0 {
                    continue;
                }
                let text = String::from_utf8_lossy(&carry[..valid]).into_owned();
                carry.drain(..valid);
                (ChunkKind::Output, text)
            }
            JobEvent::PhaseStarted(phase) => {
                phase_exit = 0;
                (ChunkKind::PhaseStart, phase.as_str().to_string())
            }
            JobEvent::CommandFinished { exit_code, .. } => {
                if exit_code != 0 {
                    phase_exit = exit_code;
                }
                continue;
            }
            JobEvent::PhaseFinished { phase, duration } => {
                let (name, ms) = (phase.as_str(), duration.as_millis() as u64);
                let end = serde_json::json!({ "name": name, "exit_code": phase_exit, "ms": ms });
                (ChunkKind::PhaseEnd, end.to_string())
            }
            JobEvent::DeployStarted { index, provider } => {
                // Stored before anything else of the job: a worker lost from here on leaves a
                // deploy of unknown outcome, which is never run again silently.
                flush(&store, &hub, lease, &mut pending, &mut pending_bytes).await;
                if let Err(e) = store.deploy_started(lease, index as i64, &provider).await {
                    tracing::error!(job, error = %e, "recording a deploy's start");
                }
                continue;
            }
            JobEvent::DeployFinished { index, exit_code } => {
                let ok = exit_code == 0;
                if let Err(e) = store.deploy_finished(lease, index as i64, ok).await {
                    tracing::error!(job, error = %e, "recording a deploy's outcome");
                }
                continue;
            }
            JobEvent::CommandStarted { .. } | JobEvent::Finished(_) => continue,
        };
        let chunk = LogChunk { seq, kind, data };
        seq += 1;
        pending_bytes += chunk.data.len();
        hub.publish(lease, chunk.clone());
        pending.push(chunk);
        if pending_bytes > 64 * 1024 {
            flush(&store, &hub, lease, &mut pending, &mut pending_bytes).await;
        }
    }
    if !carry.is_empty() {
        let chunk = LogChunk {
            seq,
            kind: ChunkKind::Output,
            data: String::from_utf8_lossy(&carry).into_owned(),
        };
        hub.publish(lease, chunk.clone());
        pending.push(chunk);
    }
    flush(&store, &hub, lease, &mut pending, &mut pending_bytes).await;
}

async fn flush(
    store: &Arc<dyn Store>,
    hub: &LogHub,
    lease: JobLease,
    pending: &mut Vec<LogChunk>,
    bytes: &mut usize,
) {
    let job = lease.job_id;
    let Some(last) = pending.last().map(|c| c.seq) else {
        return;
    };
    *bytes = 0;
    match store.append_log(lease, std::mem::take(pending)).await {
        Ok(()) => hub.stored(lease, last),
        // The lease moved on: nothing more of this attempt is the job's log, live or stored.
        Err(e @ StoreError::Fenced { .. }) => {
            tracing::warn!(job, error = %e, "log refused: the job's lease moved on");
            hub.fence(lease);
        }
        // Kept in the hub: live viewers still see the chunks, though the store lost them.
        Err(e) => tracing::error!(job, error = %e, "storing log"),
    }
}

/// The length of the longest prefix that does not end inside a UTF-8 sequence (invalid bytes
/// count as complete, so they are replaced rather than held forever).
fn utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

/// Plans on the blocking pool within the time budget: a pipeline file is anyone's input, and
/// planning it must never hold the async threads that answer requests and run jobs. A plan
/// past the budget errors the build; its thread finishes on its own (the job cap bounds it).
async fn plan_off_runtime(
    build: &Build,
    src: crate::git::Sources,
    mut imports: crate::imports::BuildImports,
    limits: &crate::config::Limits,
) -> Prepared {
    let (owned, max_jobs) = (build.clone(), limits.max_jobs);
    let planning =
        tokio::task::spawn_blocking(move || plan_jobs(&owned, src, &mut imports, max_jobs));
    let budget = Duration::from_secs(limits.plan_seconds.max(1));
    match tokio::time::timeout(budget, planning).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(e)) => Prepared::Errored {
            reason: "planning crashed".into(),
            log: format!("planning crashed: {e}\n"),
        },
        Err(_) => {
            let why = format!(
                "planning the pipeline file took longer than {} s ([limits] plan_seconds)",
                budget.as_secs()
            );
            Prepared::Errored {
                log: format!("{why}\n"),
                reason: why,
            }
        }
    }
}

/// Plans a prepared build into jobs, each with a plan holding only itself.
fn plan_jobs(
    build: &Build,
    src: crate::git::Sources,
    imports: &mut crate::imports::BuildImports,
    max_jobs: u64,
) -> Prepared {
    let mut log = src.log;
    let Some((file, bytes)) = src.pipeline else {
        return Prepared::Errored {
            reason: "no .slipway.yml or .travis.yml in the commit".into(),
            log: log + "no .slipway.yml or .travis.yml in the commit\n",
        };
    };
    let mut ctx = build.spec.context.clone();
    ctx.commit = Some(src.commit.clone());
    let options = slipway_pipelines::PlanOptions {
        max_jobs,
        ..Default::default()
    };
    let plan = match slipway_pipelines::plan_imported(&file, &bytes, &ctx, options, imports) {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                let _ = writeln!(log, "{}: {} ({})", d.file, d.message, d.code);
                if let Some(hint) = &d.hint {
                    let _ = writeln!(log, "  hint: {hint}");
                }
            }
            let first = diags.first().map(|d| d.message.clone()).unwrap_or_default();
            return Prepared::Invalid {
                reason: format!("{file} cannot be planned: {first}"),
                log,
                annotations: diags.iter().map(annotation).collect(),
            };
        }
    };
    let _ = writeln!(log, "planned {file}: {}", plan.build.reason);
    if !plan.build.included {
        return Prepared::Jobs {
            merge_sha: src.commit,
            log,
            jobs: vec![],
            skipped_reason: Some(plan.build.reason.clone()),
            notify: None,
        };
    }
    let mut jobs = Vec::new();
    for (si, stage) in plan.stages.iter().enumerate() {
        for job in &stage.jobs {
            let single = Plan {
                stages: vec![Stage {
                    name: stage.name.clone(),
                    jobs: vec![job.clone()],
                }],
                skipped: vec![],
                ..plan.clone()
            };
            jobs.push(NewJob {
                number: job.number as i64,
                stage_index: si as i64,
                stage: stage.name.clone(),
                name: job.name.clone(),
                allow_failure: job.allow_failure,
                matrix: serde_json::to_value(&job.matrix).unwrap_or_default(),
                plan_json: serde_json::to_string(&single).unwrap_or_default(),
            });
        }
    }
    let skipped_reason = jobs.is_empty().then(|| "the plan has no jobs".to_string());
    let notify = crate::notify::NotifySetup::new(&plan, build.id, &build.spec, &src.people)
        .and_then(|setup| serde_json::to_string(&setup).ok());
    for n in &plan.notifications {
        let _ = writeln!(
            log,
            "notification {}: {}",
            n.channel.name(),
            n.decision.reason
        );
    }
    Prepared::Jobs {
        merge_sha: src.commit,
        log,
        jobs,
        skipped_reason,
        notify,
    }
}

/// A pipeline file's problem as a note on its lines (a check run's annotation).
fn annotation(d: &slipway_pipelines::diagnostic::Diagnostic) -> crate::store::LintAnnotation {
    let (start, end) = d
        .span
        .map(|s| (s.start.line.max(1), s.end.line.max(s.start.line.max(1))))
        .unwrap_or((1, 1));
    let mut message = d.message.clone();
    if let Some(hint) = &d.hint {
        let _ = write!(message, "\n{hint}");
    }
    crate::store::LintAnnotation {
        path: d.file.clone(),
        start_line: start as u64,
        end_line: end as u64,
        level: match d.severity {
            slipway_pipelines::diagnostic::Severity::Error => "failure",
            slipway_pipelines::diagnostic::Severity::Warning => "warning",
            slipway_pipelines::diagnostic::Severity::Info => "notice",
        }
        .to_string(),
        title: d.code.clone(),
        message,
    }
}

#[cfg(test)]
mod tests;
