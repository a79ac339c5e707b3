//! The embedded SQLite store: WAL mode, one writer thread doing group commit, pooled readers.
//!
//! Every change goes through one writer thread. It takes all the changes waiting at that moment,
//! runs each inside its own savepoint of ONE transaction and commits once (one fsync for the
//! group), then answers every caller. A caller is answered only after the commit, so a 2xx that
//! depends on a write is never sent for a write that could still be lost. Reads use their own
//! connections, which WAL lets proceed while the writer writes.

mod access;
mod builds;
mod checks;
mod deploys;
mod notify;
mod retention;

pub(crate) use access::random_token;
use builds::{
    BUILD_COLS, FILTERED, JOB_COLS, advance, build_row, count_by_state, end_build, enqueue_status,
    finish_build_row, finish_job_row, get_build, insert_build, job_row, jobs_of,
};
use deploys::held;

use super::*;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Op = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Most changes committed in one transaction.
const MAX_GROUP: usize = 1024;

/// WAL pages after which the writer checkpoints by itself; only a backstop, since the checkpoint
/// thread normally keeps the WAL far below it.
const WAL_BACKSTOP_PAGES: i64 = 16_384;

/// Least time between two background checkpoints.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    build_id INTEGER
);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL,
    spec TEXT NOT NULL,
    supersede_key TEXT,
    branch TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    log TEXT NOT NULL DEFAULT '',
    merge_sha TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS builds_state ON builds(state);
CREATE INDEX IF NOT EXISTS builds_repo ON builds(repo, id);
CREATE INDEX IF NOT EXISTS builds_supersede ON builds(repo, supersede_key, state);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL REFERENCES builds(id),
    number INTEGER NOT NULL,
    stage_index INTEGER NOT NULL,
    stage TEXT NOT NULL,
    name TEXT,
    allow_failure INTEGER NOT NULL,
    matrix TEXT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_build ON jobs(build_id);
CREATE TABLE IF NOT EXISTS log_chunks (
    job_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL,
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    state TEXT NOT NULL,
    description TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS deploys (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    provider TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    succeeded INTEGER,
    PRIMARY KEY (job_id, attempt, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(done, next_at);
CREATE INDEX IF NOT EXISTS outbox_sha ON outbox(repo, sha);
"#;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Op>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit is fsynced, so an acknowledged delivery survives a power cut too.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = open(path)?;
        conn.execute_batch(SCHEMA)?;
        access::migrate(&conn)?;
        checks::migrate(&conn)?;
        notify::migrate(&conn)?;
        // The group's savepoints keep their statement journal in memory: it only serves to roll
        // one change back inside the transaction, never durability.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints (copying the WAL back into the database and syncing it) run on their own
        // thread, so no commit, and no delivery waiting for one, pays for them.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        let checkpoints = open(path)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("slipway-store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoints, woken))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("slipway-store-writer".into())
            .spawn(move || writer_loop(conn, rx, wake))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(SqliteStore {
            writer: Mutex::new(tx),
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` in the next group transaction and returns its result once committed.
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(move |conn| {
            let result = savepoint(conn, f);
            Box::new(move |commit: Result<(), String>| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Task(format!("commit failed: {e}"))),
                };
                let _ = tx.send(out);
            })
        });
        self.writer
            .lock()
            .map_err(|_| StoreError::Closed)?
            .send(op)
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a reader connection on the blocking pool.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.lock().map_err(|_| StoreError::Closed)?.pop() {
                Some(c) => c,
                None => open(&path)?,
            };
            let out = f(&conn);
            if let Ok(mut pool) = readers.lock()
                && pool.len() < 8
            {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Runs a statement through the connection's statement cache: the hot paths run the same few
/// statements thousands of times, and preparing them would be most of their cost.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// [`Connection::query_row`] through the statement cache.
fn query_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

fn savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    exec(conn, "SAVEPOINT op", [])?;
    match f(conn) {
        Ok(r) => {
            exec(conn, "RELEASE op", [])?;
            Ok(r)
        }
        Err(e) => {
            let _ = exec(conn, "ROLLBACK TO op", []).and_then(|_| exec(conn, "RELEASE op", []));
            Err(e)
        }
    }
}

/// Takes every change waiting, commits them as one transaction (one fsync of the WAL), then
/// answers each caller; tells the checkpoint thread that the WAL grew.
fn writer_loop(conn: Connection, rx: mpsc::Receiver<Op>, wal_grew: mpsc::SyncSender<()>) {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while ops.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let begun = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string());
        let replies: Vec<Reply> = match &begun {
            Ok(()) => ops.into_iter().map(|op| op(&conn)).collect(),
            Err(_) => Vec::new(),
        };
        let committed = begun.and_then(|()| {
            conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                e.to_string()
            })
        });
        if committed.is_ok() {
            let _ = wal_grew.try_send(());
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Checkpoints the WAL after commits, at most every [`CHECKPOINT_EVERY`]. PASSIVE mode never
/// waits for the writer or readers; what it cannot copy yet is copied next time. Ends when the
/// writer does.
fn checkpoint_loop(conn: Connection, wal_grew: mpsc::Receiver<()>) {
    while wal_grew.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpointing the database");
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
}

impl SqliteStore {
    /// Extends a lease `owner` still holds; `sql` sets `lease_until = ?3` for row `?1` held by
    /// `?2` in the state that lease covers. False when the lease was lost.
    async fn renew(
        &self,
        sql: &'static str,
        id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        self.write(move |conn| Ok(exec(conn, sql, params![id, owner, now_ms() + lease_ms])? == 1))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn record_delivery(&self, d: Delivery) -> Result<Recorded, StoreError> {
        self.write(move |conn| {
            // Ignored when the id or the body's hash is known: a redelivery or a replay.
            let n = exec(
                conn,
                "INSERT OR IGNORE INTO deliveries (id, event, received_at, body_sha256) VALUES (?1, ?2, ?3, ?4)",
                params![d.id, d.event, now_ms(), d.body_sha256.as_slice()],
            )?;
            if n == 0 {
                return Ok(Recorded::Duplicate);
            }
            if let Some(vis) = &d.visibility {
                access::record_visibility(conn, vis)?;
            }
            match d.action {
                DeliveryAction::Nothing => Ok(Recorded::Accepted {
                    build: None,
                    canceled: vec![],
                }),
                DeliveryAction::Build { build, auto_cancel } => {
                    let (id, canceled) = insert_build(conn, &build, auto_cancel)?;
                    exec(
                        conn,
                        "UPDATE deliveries SET build_id = ?2 WHERE id = ?1",
                        params![d.id, id],
                    )?;
                    Ok(Recorded::Accepted {
                        build: Some(id),
                        canceled,
                    })
                }
                DeliveryAction::Rerun { repo, rerun, auto_cancel } => {
                    checks::rerun(conn, &repo, &rerun, auto_cancel)
                }
                DeliveryAction::ClosePullRequest { repo, number } => {
                    let key = format!("pr:{number}");
                    let open: Vec<i64> = conn
                        .prepare_cached(
                            "SELECT id FROM builds WHERE repo = ?1 AND supersede_key = ?2
                             AND state IN ('queued', 'preparing', 'running')",
                        )?
                        .query_map(params![repo, key], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    let mut canceled = Vec::new();
                    for id in open {
                        if end_build(
                            conn,
                            id,
                            BuildState::Canceled,
                            "the pull request was closed",
                        )? {
                            canceled.push(id);
                        }
                    }
                    Ok(Recorded::Accepted {
                        build: None,
                        canceled,
                    })
                }
            }
        })
        .await
    }

    async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Task>, StoreError> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let now = now_ms();
            let build: Option<i64> = query_row(conn, "SELECT id FROM builds WHERE state = 'queued' ORDER BY id LIMIT 1", [], |r| r.get(0))
                .optional()?;
            if let Some(id) = build {
                exec(
                    conn,
                    "UPDATE builds SET state = 'preparing', lease_owner = ?2, lease_until = ?3,
                     attempts = attempts + 1, started_at = coalesce(started_at, ?4) WHERE id = ?1",
                    params![id, owner, now + lease_ms, now],
                )?;
                let b = get_build(conn, id)?.ok_or_else(|| StoreError::Invalid("claimed build vanished".into()))?;
                return Ok(Some(Task::Prepare(Box::new(b))));
            }
            let job: Option<(i64, i64, String)> = query_row(
                    conn,
                    "SELECT id, build_id, plan FROM jobs WHERE state = 'queued' ORDER BY build_id, id LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, build_id, plan_json)) = job else {
                return Ok(None);
            };
            exec(
                conn,
                "UPDATE jobs SET state = 'running', lease_owner = ?2, lease_until = ?3,
                 attempts = attempts + 1, started_at = ?4, reason = NULL WHERE id = ?1",
                params![id, owner, now + lease_ms, now],
            )?;
            checks::enqueue_checks(conn, build_id)?;
            let job = query_row(conn, &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"), [id], job_row)
                .map_err(StoreError::from)
                .and_then(finish_job_row)?;
            let build = get_build(conn, build_id)?.ok_or_else(|| StoreError::Invalid("job without build".into()))?;
            Ok(Some(Task::Run { job: Box::new(job), build: Box::new(build), plan_json }))
        })
        .await
    }

    async fn renew_job(&self, lease: JobLease, lease_ms: i64) -> Result<bool, StoreError> {
        self.write(move |conn| {
            if held(conn, lease)? == Hold::Ended {
                return Ok(false);
            }
            exec(
                conn,
                "UPDATE jobs SET lease_until = ?2 WHERE id = ?1",
                params![lease.job_id, now_ms() + lease_ms],
            )?;
            Ok(true)
        })
        .await
    }

    async fn renew_build(
        &self,
        build_id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        self.renew(
            "UPDATE builds SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 AND state = 'preparing'",
            build_id,
            owner,
            lease_ms,
        )
        .await
    }

    async fn finish_prepare(
        &self,
        build_id: i64,
        owner: &str,
        result: Prepared,
    ) -> Result<(), StoreError> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let held: bool = query_row(
                    conn,
                    "SELECT count(*) FROM builds WHERE id = ?1 AND lease_owner = ?2 AND state = 'preparing'",
                    params![build_id, owner],
                    |r| r.get::<_, i64>(0),
                )?
                == 1;
            if !held {
                return Ok(());
            }
            match result {
                Prepared::Errored { reason, log } => {
                    exec(conn, "UPDATE builds SET log = ?2 WHERE id = ?1", params![build_id, log])?;
                    end_build(conn, build_id, BuildState::Errored, &reason)?;
                }
                Prepared::Invalid { reason, log, annotations } => {
                    exec(conn, "UPDATE builds SET log = ?2 WHERE id = ?1", params![build_id, log])?;
                    if end_build(conn, build_id, BuildState::Errored, &reason)? {
                        checks::enqueue_lint(conn, build_id, &reason, &annotations)?;
                    }
                }
                Prepared::Jobs { merge_sha, log, jobs, skipped_reason, notify: setup } => {
                    exec(
                        conn,
                        "UPDATE builds SET log = ?2, merge_sha = ?3, lease_owner = NULL, lease_until = NULL,
                         state = 'running' WHERE id = ?1",
                        params![build_id, log, merge_sha],
                    )?;
                    if jobs.is_empty() {
                        let why = skipped_reason.unwrap_or_else(|| "nothing to run".into());
                        end_build(conn, build_id, BuildState::Skipped, &why)?;
                        return Ok(());
                    }
                    let first = jobs.iter().map(|j| j.stage_index).min().unwrap_or(0);
                    for j in &jobs {
                        let state = if j.stage_index == first { "queued" } else { "waiting" };
                        exec(
                            conn,
                            "INSERT INTO jobs (build_id, number, stage_index, stage, name, allow_failure, matrix, plan, state)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                            params![
                                build_id, j.number, j.stage_index, j.stage, j.name, j.allow_failure,
                                j.matrix.to_string(), j.plan_json, state
                            ],
                        )?;
                    }
                    enqueue_status(conn, build_id, BuildState::Running, "Running")?;
                    notify::record_setup(conn, build_id, setup.as_deref())?;
                    notify::enqueue(conn, build_id, BuildState::Running, "")?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn append_log(&self, lease: JobLease, chunks: Vec<LogChunk>) -> Result<(), StoreError> {
        self.write(move |conn| {
            held(conn, lease)?;
            let mut stmt = conn.prepare_cached(
                "INSERT OR REPLACE INTO log_chunks (job_id, seq, kind, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for c in chunks {
                stmt.execute(params![lease.job_id, c.seq, c.kind.as_str(), c.data])?;
            }
            Ok(())
        })
        .await
    }

    async fn deploy_started(
        &self,
        lease: JobLease,
        index: i64,
        provider: &str,
    ) -> Result<(), StoreError> {
        self.record_deploy_start(lease, index, provider).await
    }

    async fn deploy_finished(
        &self,
        lease: JobLease,
        index: i64,
        succeeded: bool,
    ) -> Result<(), StoreError> {
        self.record_deploy_end(lease, index, succeeded).await
    }

    async fn next_seq(&self, job_id: i64) -> Result<i64, StoreError> {
        self.read(move |conn| {
            Ok(query_row(
                conn,
                "SELECT coalesce(max(seq), 0) + 1 FROM log_chunks WHERE job_id = ?1",
                [job_id],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn finish_job(
        &self,
        lease: JobLease,
        state: JobState,
        reason: Option<String>,
    ) -> Result<Option<BuildState>, StoreError> {
        self.write(move |conn| {
            if held(conn, lease)? == Hold::Ended {
                return Ok(None);
            }
            exec(
                conn,
                "UPDATE jobs SET state = ?2, reason = ?3, finished_at = ?4, lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1",
                params![lease.job_id, state.as_str(), reason, now_ms()],
            )?;
            let build_id: i64 = query_row(conn, "SELECT build_id FROM jobs WHERE id = ?1", [lease.job_id], |r| r.get(0))?;
            checks::enqueue_checks(conn, build_id)?;
            advance(conn, build_id)
        })
        .await
    }

    async fn recover(&self, all: bool, max_attempts: i64) -> Result<Recovery, StoreError> {
        self.write(move |conn| {
            let now = now_ms();
            let cutoff = if all { i64::MAX } else { now };
            let mut rec = Recovery::default();
            let jobs: Vec<(i64, i64, i64)> = conn
                .prepare("SELECT id, build_id, attempts FROM jobs WHERE state = 'running' AND coalesce(lease_until, 0) < ?1")?
                .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            for (id, build_id, attempts) in jobs {
                let seq: i64 = query_row(
                    conn,
                    "SELECT coalesce(max(seq), 0) + 1 FROM log_chunks WHERE job_id = ?1", [id], |r| r.get(0))?;
                let deployed: Option<(i64, Option<bool>)> = query_row(
                    conn,
                    "SELECT attempt, succeeded FROM deploys WHERE job_id = ?1
                     ORDER BY (succeeded IS NULL) DESC, attempt LIMIT 1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
                if attempts >= max_attempts || deployed.is_some() {
                    let why = match deployed {
                        Some((attempt, outcome)) => deploy_began(attempt, outcome),
                        None => format!("its worker was lost {attempts} times (server stopped or lease expired)"),
                    };
                    exec(
                        conn,
                        "UPDATE jobs SET state = 'errored', reason = ?2, finished_at = ?3, lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                        params![id, why, now],
                    )?;
                    exec(conn, "INSERT INTO log_chunks VALUES (?1, ?2, 'note', ?3)", params![id, seq, format!("errored: {why}")])?;
                    advance(conn, build_id)?;
                    rec.errored += 1;
                } else {
                    exec(
                        conn,
                        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                        [id],
                    )?;
                    exec(
                        conn,
                        "INSERT INTO log_chunks VALUES (?1, ?2, 'note', ?3)",
                        params![id, seq, format!("re-queued: its worker was lost (server stopped or lease expired) during attempt {attempts}")],
                    )?;
                    rec.requeued += 1;
                }
            }
            let builds: Vec<(i64, i64)> = conn
                .prepare("SELECT id, attempts FROM builds WHERE state = 'preparing' AND coalesce(lease_until, 0) < ?1")?
                .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (id, attempts) in builds {
                if attempts >= max_attempts {
                    end_build(conn, id, BuildState::Errored, "preparation was interrupted too many times")?;
                    rec.errored += 1;
                } else {
                    exec(
                        conn,
                        "UPDATE builds SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                        [id],
                    )?;
                    rec.requeued += 1;
                }
            }
            Ok(rec)
        })
        .await
    }

    async fn cancel_build(&self, build_id: i64, reason: &str) -> Result<bool, StoreError> {
        let reason = reason.to_string();
        self.write(move |conn| end_build(conn, build_id, BuildState::Canceled, &reason))
            .await
    }

    async fn restart_build(
        &self,
        build_id: i64,
        auto_cancel: bool,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
        self.write(move |conn| {
            let Some(old) = get_build(conn, build_id)? else {
                return Ok(None);
            };
            Ok(Some(insert_build(conn, &old.spec, auto_cancel)?))
        })
        .await
    }

    async fn outbox_due(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, build_id, repo, sha, state, description, attempts, kind, payload FROM outbox
                 WHERE done = 0 AND next_at <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms(), limit as i64], |r| {
                Ok(OutboxItem {
                    kind: OutboxKind::parse(&r.get::<_, String>(7)?)
                        .unwrap_or(OutboxKind::Status),
                    payload: r.get(8)?,
                    id: r.get(0)?,
                    build_id: r.get(1)?,
                    repo: r.get(2)?,
                    sha: r.get(3)?,
                    state: r.get(4)?,
                    description: r.get(5)?,
                    attempts: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn outbox_done(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            exec(conn, "UPDATE outbox SET done = 1 WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn outbox_retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError> {
        let error = error.to_string();
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, next_at, error],
            )?;
            Ok(())
        })
        .await
    }

    async fn outbox_superseded(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        let (id, repo, sha, kind) = (item.id, item.repo.clone(), item.sha.clone(), item.kind);
        let build_id = item.build_id;
        self.read(move |conn| {
            let newer = match kind {
                // A newer status of the same commit says it all.
                OutboxKind::Status => query_row(
                    conn,
                    "SELECT count(*) FROM outbox WHERE repo = ?1 AND sha = ?2 AND id > ?3 AND kind = 'status'",
                    params![repo, sha, id],
                    |r| r.get::<_, i64>(0),
                )?,
                // A newer sync of the same build brings every check run up to date anyway.
                OutboxKind::Checks => query_row(
                    conn,
                    "SELECT count(*) FROM outbox WHERE build_id = ?1 AND id > ?2 AND kind = 'checks'",
                    params![build_id, id],
                    |r| r.get::<_, i64>(0),
                )?,
                OutboxKind::Lint => 0,
            };
            Ok(newer > 0)
        })
        .await
    }

    async fn notify_due(&self, limit: usize) -> Result<Vec<NotifyItem>, StoreError> {
        self.notify_due_rows(limit).await
    }

    async fn notify_finished(&self, id: i64, error: Option<&str>) -> Result<(), StoreError> {
        self.notify_finish_row(id, error).await
    }

    async fn notify_retry(&self, id: i64, next_at: Millis, error: &str) -> Result<(), StoreError> {
        self.notify_retry_row(id, next_at, error).await
    }

    async fn notifications(&self, build_id: i64) -> Result<Vec<NotifyRecord>, StoreError> {
        self.notify_rows(build_id).await
    }

    async fn repos(&self) -> Result<Vec<Build>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {BUILD_COLS} FROM builds WHERE id IN (SELECT max(id) FROM builds GROUP BY repo) ORDER BY repo"
            ))?;
            let rows = stmt.query_map([], build_row)?;
            rows.map(|r| finish_build_row(r?)).collect()
        })
        .await
    }

    async fn builds(&self, filter: BuildFilter, limit: i64) -> Result<Vec<Build>, StoreError> {
        self.read(move |conn| {
            // Two statements: `?1 IS NULL OR repo = ?1` would keep SQLite from the (repo, id)
            // index and scan every build to list one repository's.
            let rest = format!("{FILTERED} ORDER BY id DESC LIMIT ?4");
            let mut stmt = match filter.repo {
                Some(_) => conn.prepare_cached(&format!(
                    "SELECT {BUILD_COLS} FROM builds WHERE repo = ?1 AND {rest}"
                ))?,
                None => conn.prepare_cached(&format!(
                    "SELECT {BUILD_COLS} FROM builds WHERE ?1 IS NULL AND {rest}"
                ))?,
            };
            let event = filter.event.map(|e| e.event().as_str());
            let tag = filter.event.and_then(BuiltBy::tag);
            let rows = stmt.query_map(
                params![filter.repo, filter.branch, event, limit, tag],
                build_row,
            )?;
            rows.map(|r| finish_build_row(r?)).collect()
        })
        .await
    }

    async fn build(&self, id: i64) -> Result<Option<(Build, Vec<Job>)>, StoreError> {
        self.read(move |conn| {
            let Some(b) = get_build(conn, id)? else {
                return Ok(None);
            };
            Ok(Some((b, jobs_of(conn, id)?)))
        })
        .await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.read(move |conn| {
            query_row(
                conn,
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()?
            .map(finish_job_row)
            .transpose()
        })
        .await
    }

    async fn log(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<LogChunk>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, kind, data FROM log_chunks WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![job_id, after_seq, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            rows.map(|r| {
                let (seq, kind, data) = r?;
                Ok(LogChunk { seq, kind: ChunkKind::parse(&kind)?, data })
            })
            .collect()
        })
        .await
    }

    async fn branch_state(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<BuildState>, StoreError> {
        let (repo, branch) = (repo.to_string(), branch.to_string());
        self.read(move |conn| {
            let s: Option<String> = query_row(
                    conn,
                    "SELECT state FROM builds WHERE repo = ?1 AND branch = ?2 AND event = 'push'
                     AND state NOT IN ('queued', 'preparing', 'running', 'canceled') ORDER BY id DESC LIMIT 1",
                    params![repo, branch],
                    |r| r.get(0),
                )
                .optional()?;
            s.map(|s| BuildState::parse(&s)).transpose()
        })
        .await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(|conn| {
            Ok(Counts {
                builds: count_by_state(conn, "builds")?,
                jobs: count_by_state(conn, "jobs")?,
                outbox_pending: query_row(
                    conn,
                    "SELECT count(*) FROM outbox WHERE done = 0",
                    [],
                    |r| r.get(0),
                )?,
                deliveries: query_row(conn, "SELECT count(*) FROM deliveries", [], |r| r.get(0))?,
            })
        })
        .await
    }

    async fn prune(
        &self,
        older_than: Option<Millis>,
        keep_per_repo: Option<i64>,
    ) -> Result<Pruned, StoreError> {
        self.prune_all(older_than, keep_per_repo).await
    }

    async fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|conn| Ok(query_row(conn, "PRAGMA integrity_check", [], |r| r.get(0))?))
            .await
    }
}
