//! The store: deliveries, builds, jobs, logs and the status outbox behind one trait.
//!
//! Everything the server knows lives here, so a restart resumes from it. SQLite (embedded, the
//! default) serves one machine; PostgreSQL serves several servers and workers sharing one queue.
//! Every claim is an atomic update guarded by a lease.

pub mod access;
mod fence;
mod location;
mod notify_rows;
mod postgres;
mod progress;
mod sql;
mod sqlite;

pub use access::{AccessStore, Permission, RepoAccess, Session};
pub use fence::JobLease;
pub(crate) use fence::{Hold, deploy_began, hold};
pub use location::{PgUrl, STORE_SETTING, StoreSetting, open_store};
pub use postgres::PgStore;
pub(crate) use sql::access::random_token;
pub use sqlite::SqliteStore;

use crate::event::NewBuild;
use async_trait::async_trait;
use serde::Serialize;

/// Milliseconds since the Unix epoch; every timestamp in the store.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error.
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The store setting is wrong, or the database it names cannot be used.
    #[error("{0}")]
    Setting(String),
    /// A stored value could not be read back (a bug or a hand-edited database).
    #[error("stored data is invalid: {0}")]
    Invalid(String),
    /// The writer thread has stopped (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// A worker wrote for a job whose lease has moved on to a newer attempt (or back to the
    /// queue): the write was refused.
    #[error(
        "job {job_id}: attempt {attempt} no longer holds it (its lease expired and the job was \
         re-queued or claimed again); the write was refused"
    )]
    Fenced {
        /// The job.
        job_id: i64,
        /// The stale attempt.
        attempt: i64,
    },
    /// A background task failed.
    #[error("store task failed: {0}")]
    Task(String),
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),* }
        impl $name {
            /// The name stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),* } }
            /// Reads a stored name.
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s { $($s => Ok($name::$v),)* other => Err(StoreError::Invalid(format!("{} {other:?}", stringify!($name)))) }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

pub mod checks;
pub use checks::{
    CheckRun, CheckSync, ChecksStore, LintAnnotation, LogDigest, OutboxKind, PhaseDigest, Rerun,
};

string_enum! {
    /// Where a build is in its life.
    BuildState {
        /// Waiting for a worker to fetch, merge and plan it.
        Queued = "queued",
        /// A worker is fetching, merging and planning it.
        Preparing = "preparing",
        /// Its jobs are queued or running.
        Running = "running",
        /// Every required job passed.
        Passed = "passed",
        /// A required job failed.
        Failed = "failed",
        /// It could not run as asked (merge conflict, invalid pipeline file, a job errored).
        Errored = "errored",
        /// Cancelled by a user, a newer push, or the PR being closed.
        Canceled = "canceled",
        /// The pipeline's filters left nothing to run for this event.
        Skipped = "skipped",
    }
}

impl BuildState {
    /// True once nothing more will happen to the build.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            BuildState::Queued | BuildState::Preparing | BuildState::Running
        )
    }

    /// The commit status state GitHub shows for it.
    pub fn github_state(self) -> &'static str {
        match self {
            BuildState::Queued | BuildState::Preparing | BuildState::Running => "pending",
            BuildState::Passed | BuildState::Skipped => "success",
            BuildState::Failed => "failure",
            BuildState::Errored | BuildState::Canceled => "error",
        }
    }
}

string_enum! {
    /// Where a job is in its life.
    JobState {
        /// In a later stage that has not started yet.
        Waiting = "waiting",
        /// Ready for a worker to claim.
        Queued = "queued",
        /// Claimed by a worker holding a lease.
        Running = "running",
        /// Its script passed.
        Passed = "passed",
        /// Its script failed.
        Failed = "failed",
        /// It could not run (setup failed, a phase that errors the job failed, its worker was lost).
        Errored = "errored",
        /// Cancelled before or while running.
        Canceled = "canceled",
        /// Not run on this machine (an `os:` or `arch:` it has no executor for); it neither
        /// fails nor passes the build.
        NotRun = "not_run",
    }
}

impl JobState {
    /// True once the job will not run (again).
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            JobState::Waiting | JobState::Queued | JobState::Running
        )
    }
}

string_enum! {
    /// What a stored log chunk is.
    ChunkKind {
        /// Bytes the job wrote (ANSI colours kept).
        Output = "output",
        /// A lifecycle phase began; the data is its name.
        PhaseStart = "phase_start",
        /// A phase ended; the data is JSON `{"name", "exit_code", "ms"}`.
        PhaseEnd = "phase_end",
        /// A line written by Slipway itself (re-queued after a crash, cancelled, …).
        Note = "note",
    }
}

/// A build as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    /// Its number, unique on this server.
    pub id: i64,
    /// `owner/name`.
    pub repo: String,
    /// What was asked for: refs, SHAs and the planner's context.
    pub spec: NewBuild,
    /// Where it is.
    pub state: BuildState,
    /// Why it ended as it did, in words.
    pub reason: Option<String>,
    /// What preparation printed (fetch, merge, planning), e.g. the conflicting paths.
    pub log: String,
    /// The merge commit built, for pull requests; else the pushed commit once fetched.
    pub merge_sha: Option<String>,
    /// When the delivery was accepted.
    pub created_at: Millis,
    /// When preparation started.
    pub started_at: Option<Millis>,
    /// When it reached a final state.
    pub finished_at: Option<Millis>,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id, unique on this server.
    pub id: i64,
    /// The build it belongs to.
    pub build_id: i64,
    /// 1-based number within the build.
    pub number: i64,
    /// 0-based stage position.
    pub stage_index: i64,
    /// The stage name.
    pub stage: String,
    /// The job's `name:`.
    pub name: Option<String>,
    /// A failure does not fail the build.
    pub allow_failure: bool,
    /// The job's matrix keys (JSON object), shown as the build page's matrix.
    pub matrix: serde_json::Value,
    /// Where it is.
    pub state: JobState,
    /// Why it ended as it did.
    pub reason: Option<String>,
    /// How many times a worker claimed it.
    pub attempts: i64,
    /// When a worker last claimed it.
    pub started_at: Option<Millis>,
    /// When it reached a final state.
    pub finished_at: Option<Millis>,
}

impl Job {
    /// The fencing token of the claim that handed this job out.
    pub fn lease(&self) -> JobLease {
        JobLease {
            job_id: self.id,
            attempt: self.attempts,
        }
    }

    /// The matrix keys that make this job what it is, as Travis's job list shows them: its
    /// phases' commands, stage and name left out.
    pub fn matrix_keys(&self) -> Vec<(&str, &serde_json::Value)> {
        const NOT_MATRIX: [&str; 10] = [
            "script",
            "install",
            "before_install",
            "before_script",
            "after_script",
            "after_success",
            "after_failure",
            "deploy",
            "stage",
            "name",
        ];
        match &self.matrix {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(k, _)| !NOT_MATRIX.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str(), v))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A matrix value in words: `env` entries as `NAME=value`, encrypted ones as `[secure]`, lists
/// separated by spaces.
pub fn matrix_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(matrix_value).collect::<Vec<_>>().join(" "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("secure", _) => "[secure]".to_string(),
                (_, Value::Object(inner)) if inner.contains_key("secure") => {
                    format!("{k}=[secure]")
                }
                _ => format!("{k}={}", matrix_value(v)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A job to create when a build's plan is known.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// 1-based number.
    pub number: i64,
    /// 0-based stage position.
    pub stage_index: i64,
    /// The stage name.
    pub stage: String,
    /// The job's `name:`.
    pub name: Option<String>,
    /// A failure does not fail the build.
    pub allow_failure: bool,
    /// Matrix keys (JSON object).
    pub matrix: serde_json::Value,
    /// The single-job plan (JSON) the runner gets.
    pub plan_json: String,
}

/// Which builds a list holds; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildFilter {
    /// `owner/name`.
    pub repo: Option<String>,
    /// The branch built (a pull request's base branch, a tag push's tag).
    pub branch: Option<String>,
    /// What asked for the build.
    pub event: Option<BuiltBy>,
}

/// What asked for a build, as lists are filtered by it: the planner's events, with a tag's push
/// apart from a branch's (both are `push` to the planner), so the five split every build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltBy {
    /// A push to a branch.
    Push,
    /// A pull request.
    PullRequest,
    /// A push of a tag.
    Tag,
    /// A request through the API (`slipway trigger`).
    Api,
    /// A cron tick.
    Cron,
}

impl BuiltBy {
    /// Every kind, in the order lists offer them.
    pub const ALL: [BuiltBy; 5] = [
        BuiltBy::Push,
        BuiltBy::PullRequest,
        BuiltBy::Tag,
        BuiltBy::Api,
        BuiltBy::Cron,
    ];

    /// The name a query string uses: `push`, `pull_request`, `tag`, `api`, `cron`.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltBy::Tag => "tag",
            other => other.event().as_str(),
        }
    }

    /// Reads a query string's name.
    pub fn parse(name: &str) -> Option<BuiltBy> {
        BuiltBy::ALL.into_iter().find(|b| b.as_str() == name)
    }

    /// The planner's event it is stored under.
    pub fn event(self) -> slipway_pipelines::plan::EventType {
        use slipway_pipelines::plan::EventType;
        match self {
            BuiltBy::Push | BuiltBy::Tag => EventType::Push,
            BuiltBy::PullRequest => EventType::PullRequest,
            BuiltBy::Api => EventType::Api,
            BuiltBy::Cron => EventType::Cron,
        }
    }

    /// For the two kinds of push, whether the build is of a tag.
    pub fn tag(self) -> Option<bool> {
        match self {
            BuiltBy::Push => Some(false),
            BuiltBy::Tag => Some(true),
            _ => None,
        }
    }
}

/// Work a worker claimed under a lease.
#[derive(Debug, Clone)]
pub enum Task {
    /// Fetch, merge and plan this build.
    Prepare(Box<Build>),
    /// Run this job of this build.
    Run {
        job: Box<Job>,
        build: Box<Build>,
        /// The single-job plan (JSON).
        plan_json: String,
    },
}

/// How preparing a build ended.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Jobs to queue (the first stage's jobs become claimable at once).
    Jobs {
        /// The commit built.
        merge_sha: String,
        /// What preparation printed.
        log: String,
        /// The planned jobs; empty means the build is skipped.
        jobs: Vec<NewJob>,
        /// Why nothing runs, when `jobs` is empty.
        skipped_reason: Option<String>,
        /// The build's notification setup (JSON of [`crate::notify::NotifySetup`]), if it
        /// notifies anything.
        notify: Option<String>,
    },
    /// The build cannot run: it ends errored with this reason and log.
    Errored {
        /// A one-line reason (shown on GitHub).
        reason: String,
        /// The full preparation log.
        log: String,
    },
    /// The pipeline file cannot be planned: the build ends errored, and its problems are
    /// reported on the file's lines (as check-run annotations, with a GitHub App).
    Invalid {
        /// A one-line reason (shown on GitHub).
        reason: String,
        /// The full preparation log.
        log: String,
        /// The problems, on the file's lines.
        annotations: Vec<LintAnnotation>,
    },
}

/// One piece of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogChunk {
    /// Position in the job's log, increasing from 1.
    pub seq: i64,
    /// What it is.
    pub kind: ChunkKind,
    /// Text (output is already masked).
    pub data: String,
}

/// A delivery to record, with what it asks for.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-GitHub-Delivery`, the de-duplication key.
    pub id: String,
    /// `X-GitHub-Event`.
    pub event: String,
    /// SHA-256 of the body: a body accepted before is a replay, whatever its id.
    pub body_sha256: [u8; 32],
    /// The repository's visibility as the payload states it.
    pub visibility: Option<crate::event::Visibility>,
    /// What to do in the same transaction.
    pub action: DeliveryAction,
}

/// The store-side effect of a delivery.
#[derive(Debug, Clone)]
pub enum DeliveryAction {
    /// Create a build (and supersede older ones with the same key when `auto_cancel`).
    Build {
        build: Box<NewBuild>,
        /// Cancel older queued/running builds with the same supersede key.
        auto_cancel: bool,
    },
    /// Cancel the open builds of a pull request.
    ClosePullRequest {
        /// `owner/name`.
        repo: String,
        /// The PR number.
        number: u64,
    },
    /// Run a job or a commit's builds again, as a `rerequested` check event asks.
    Rerun {
        /// `owner/name`: only its own jobs and builds are run again.
        repo: String,
        /// What to run again.
        rerun: Rerun,
        /// Cancel older builds with the same supersede key when a build is started anew.
        auto_cancel: bool,
    },
    /// Only remember the delivery id.
    Nothing,
}

/// What recording a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The delivery id, or a byte-identical body, was seen before; nothing changed.
    Duplicate,
    /// Stored durably.
    Accepted {
        /// The build created, if any.
        build: Option<i64>,
        /// Builds cancelled by it (their running jobs must be stopped).
        canceled: Vec<i64>,
    },
}

/// A report waiting to be sent to GitHub.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Its id (reports for one commit are sent in id order).
    pub id: i64,
    /// A status, or check-run work.
    pub kind: OutboxKind,
    /// A `lint` item's annotations (JSON).
    pub payload: Option<String>,
    /// The build it reports.
    pub build_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// The commit the status goes on.
    pub sha: String,
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    /// A short description (GitHub keeps 140 characters).
    pub description: String,
    /// Tries so far.
    pub attempts: i64,
}

/// A notification waiting to be sent: one notification with one target, and the facts of the
/// build it reports.
#[derive(Debug, Clone)]
pub struct NotifyItem {
    pub id: i64,
    /// The build it reports.
    pub build_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// False for a fork's pull request: nothing may be decrypted for it.
    pub trusted: bool,
    /// The notification (JSON), secure values still encrypted.
    pub notification: String,
    /// The build's facts (JSON).
    pub facts: String,
    /// Tries so far.
    pub attempts: i64,
}

/// A build's notification as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyRecord {
    pub id: i64,
    /// The outcome it reports (`started`, `passed`, …).
    pub outcome: String,
    /// The notification, secure values still encrypted.
    pub notification: serde_json::Value,
    /// Tries so far.
    pub attempts: i64,
    /// Sent, or given up (then `last_error` says why).
    pub done: bool,
    /// The last try's error.
    pub last_error: Option<String>,
}

/// What start-up recovery did to work a killed process left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// Jobs and builds put back in the queue.
    pub requeued: usize,
    /// Jobs and builds ended as errored (too many attempts).
    pub errored: usize,
}

/// What pruning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The builds removed, with their repositories (whose merge refs go too).
    pub builds: Vec<(i64, String)>,
    /// Jobs removed.
    pub jobs: usize,
    /// Log chunks removed.
    pub log_chunks: usize,
    /// Deliveries removed.
    pub deliveries: usize,
}

impl Pruned {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: Pruned) {
        self.builds.extend(other.builds);
        self.jobs += other.jobs;
        self.log_chunks += other.log_chunks;
        self.deliveries += other.deliveries;
    }
}

/// Counts shown on `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Builds per state.
    pub builds: Vec<(String, i64)>,
    /// Jobs per state.
    pub jobs: Vec<(String, i64)>,
    /// Status reports not yet delivered.
    pub outbox_pending: i64,
    /// Deliveries recorded.
    pub deliveries: i64,
}

/// What a shared store tells a process about changes made by any process using it. Word only:
/// whoever hears it reads what changed from the store, under its own access checks.
pub trait StoreChanges: Send + Sync + 'static {
    /// Work may have become claimable.
    fn work(&self);
    /// A job's log is stored up to `seq`.
    fn log_stored(&self, job_id: i64, seq: i64);
    /// A job has ended, or its claim has (the job was queued again).
    fn job_ended(&self, job_id: i64);
    /// A build's preparation has ended (its result saved, cancelled, queued again).
    fn preparation_ended(&self, build_id: i64);
    /// Word may have been lost (the listening connection was re-made): anything may have changed.
    fn missed(&self);
}

/// The one storage interface of the server.
#[async_trait]
pub trait Store: AccessStore + ChecksStore + Send + Sync + 'static {
    /// True when other processes may use the same store (their claims are theirs to renew).
    fn shared(&self) -> bool {
        false
    }
    /// Passes on what other processes change (a shared store's job): work made claimable, log
    /// chunks stored, jobs and preparations ended. What this process does itself it tells directly.
    fn listen(&self, _changes: std::sync::Arc<dyn StoreChanges>) {}
    /// Records a delivery and its effect atomically and durably; a known delivery id changes nothing.
    async fn record_delivery(&self, delivery: Delivery) -> Result<Recorded, StoreError>;
    /// Claims the next build to prepare or job to run, exactly once, under a lease.
    async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Task>, StoreError>;
    /// Extends a job's lease; false when the job ended (cancelled), [`StoreError::Fenced`] when
    /// the lease moved on.
    async fn renew_job(&self, lease: JobLease, lease_ms: i64) -> Result<bool, StoreError>;
    /// Extends a preparing build's lease; false when lost or cancelled.
    async fn renew_build(
        &self,
        build_id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Ends preparation: queue the jobs or end the build.
    async fn finish_prepare(
        &self,
        build_id: i64,
        owner: &str,
        result: Prepared,
    ) -> Result<(), StoreError>;
    /// Appends log chunks to a job under its claim; [`StoreError::Fenced`] once the lease moved
    /// on (a cancelled job's claim may still complete its log).
    async fn append_log(&self, lease: JobLease, chunks: Vec<LogChunk>) -> Result<(), StoreError>;
    /// Records, under the job's claim, that its deploy number `index` begins (before it is made).
    async fn deploy_started(
        &self,
        lease: JobLease,
        index: i64,
        provider: &str,
    ) -> Result<(), StoreError>;
    /// Records how the job's deploy number `index` ended.
    async fn deploy_finished(
        &self,
        lease: JobLease,
        index: i64,
        succeeded: bool,
    ) -> Result<(), StoreError>;
    /// The next free log sequence number of a job.
    async fn next_seq(&self, job_id: i64) -> Result<i64, StoreError>;
    /// Ends a job under its claim and advances its build; returns the build's state when the
    /// build just ended. Nothing changes when the job had already ended (cancelled);
    /// [`StoreError::Fenced`] once the lease moved on.
    async fn finish_job(
        &self,
        lease: JobLease,
        state: JobState,
        reason: Option<String>,
    ) -> Result<Option<BuildState>, StoreError>;
    /// Re-queues (or errors, after `max_attempts`) work whose lease expired, or all claimed work
    /// when `all` (start-up of a single-process store, which also lets go of the outboxes' rows
    /// it held before it stopped).
    async fn recover(&self, all: bool, max_attempts: i64) -> Result<Recovery, StoreError>;
    /// Cancels a build's queued and running work; returns false when it had already ended.
    async fn cancel_build(&self, build_id: i64, reason: &str) -> Result<bool, StoreError>;
    /// Starts a new build from an old one's spec; returns the new build's id.
    async fn restart_build(
        &self,
        build_id: i64,
        auto_cancel: bool,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError>;
    /// Takes up to `limit` status reports due now, oldest first, for `holder` to send: no other
    /// taker gets them for `hold_ms`, or until their outcome is recorded ([`Store::outbox_done`],
    /// [`Store::outbox_retry`]). The rows of a holder that died become due again when the hold
    /// ends. No report of a commit is taken while another of its reports is held, so a commit's
    /// reports are sent in order whichever process sends them.
    async fn outbox_take(
        &self,
        holder: &str,
        limit: usize,
        hold_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError>;
    /// Marks reports sent, or superseded by newer ones: a batch's outcomes in one write.
    async fn outbox_done(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// Schedules another try of a report.
    async fn outbox_retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError>;
    /// Which of the reports `ids` must not be sent, a newer one saying it all: a newer status
    /// of the same commit, a newer check-run sync of the same build. One read for a batch.
    async fn outbox_superseded(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// Extends to `hold_ms` from now the hold on the rows `holder` took from either outbox and
    /// has recorded no outcome for yet, while it is still sending them. Rows another taker took
    /// after the hold lapsed stay its.
    async fn outbox_hold(&self, holder: &str, hold_ms: i64) -> Result<(), StoreError>;
    /// Takes up to `limit` notifications due now, oldest first, for `holder` to send, held as
    /// [`Store::outbox_take`] holds status reports.
    async fn notify_take(
        &self,
        holder: &str,
        limit: usize,
        hold_ms: i64,
    ) -> Result<Vec<NotifyItem>, StoreError>;
    /// Marks a notification sent (`error` = `None`) or given up (with the last error).
    async fn notify_finished(&self, id: i64, error: Option<&str>) -> Result<(), StoreError>;
    /// Schedules another try of a notification.
    async fn notify_retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError>;
    /// A build's queued and sent notifications, in order.
    async fn notifications(&self, build_id: i64) -> Result<Vec<NotifyRecord>, StoreError>;
    /// Repositories with builds, each with its latest build.
    async fn repos(&self) -> Result<Vec<Build>, StoreError>;
    /// Builds, newest first, that pass `filter`.
    async fn builds(&self, filter: BuildFilter, limit: i64) -> Result<Vec<Build>, StoreError>;
    /// One build and its jobs.
    async fn build(&self, id: i64) -> Result<Option<(Build, Vec<Job>)>, StoreError>;
    /// One job.
    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError>;
    /// A job's log after `after_seq`, at most `limit` chunks.
    async fn log(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<LogChunk>, StoreError>;
    /// The latest final state of a branch's push builds (for badges).
    async fn branch_state(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<BuildState>, StoreError>;
    /// Counts for metrics.
    async fn counts(&self) -> Result<Counts, StoreError>;
    /// Removes finished builds (with jobs, logs and sent status reports) that ended before
    /// `older_than` or are past the newest `keep_per_repo` of their repository, and deliveries
    /// received before `older_than`. Never a build that is not final or whose status is unsent.
    async fn prune(
        &self,
        older_than: Option<Millis>,
        keep_per_repo: Option<i64>,
    ) -> Result<Pruned, StoreError>;
    /// Runs the database's own consistency check; `Ok("ok")` when healthy.
    async fn integrity_check(&self) -> Result<String, StoreError>;
}
