//! The embedded SQLite store: WAL mode, one writer thread doing group commit, pooled readers.
//!
//! Every change goes through one writer thread. It takes all the changes waiting at that moment,
//! runs each inside its own savepoint of ONE transaction and commits once (one fsync for the
//! group), then answers every caller. A caller is answered only after the commit, so a 2xx that
//! depends on a write is never sent for a write that could still be lost. Reads use their own
//! connections, which WAL lets proceed while the writer writes. What the store does with its
//! rows is shared with PostgreSQL ([`super::sql`]); this file only carries statements there.

mod schema;

use super::sql::{Arg, Dialect, LiteRow, Sql, access, checks, impl_stores, notify, queue, reads};
use super::*;
use rusqlite::{Connection, Row};
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
        schema::migrate(&conn)?;
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

/// Runs a statement through the connection's statement cache.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

fn savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    exec(conn, "SAVEPOINT op")?;
    match f(conn) {
        Ok(r) => {
            exec(conn, "RELEASE op")?;
            Ok(r)
        }
        Err(e) => {
            let _ = exec(conn, "ROLLBACK TO op").and_then(|_| exec(conn, "RELEASE op"));
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

/// A connection of this store as the shared store code uses it. Its statements go through the
/// connection's statement cache: the hot paths run the same few statements thousands of times,
/// and preparing them would be most of their cost.
struct Lite<'c>(&'c Connection);

fn lite_args<'a>(args: &'a [&'a dyn Arg]) -> impl rusqlite::Params + 'a {
    rusqlite::params_from_iter(args.iter().map(|a| a.lite()))
}

fn lite_row(r: &Row<'_>) -> rusqlite::Result<LiteRow> {
    let width = r.as_ref().column_count();
    (0..width)
        .map(|i| r.get(i))
        .collect::<Result<_, _>>()
        .map(LiteRow)
}

impl Sql for Lite<'_> {
    type Row = LiteRow;
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn exec(&self, sql: &str, args: &[&dyn Arg]) -> Result<u64, StoreError> {
        Ok(self.0.prepare_cached(sql)?.execute(lite_args(args))? as u64)
    }

    async fn rows(&self, sql: &str, args: &[&dyn Arg]) -> Result<Vec<LiteRow>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let rows = stmt.query_map(lite_args(args), lite_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn opt(&self, sql: &str, args: &[&dyn Arg]) -> Result<Option<LiteRow>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query(lite_args(args))?;
        Ok(rows.next()?.map(lite_row).transpose()?)
    }
}

/// Runs `$body` with `$db` a [`Lite`] in the next group transaction, once committed.
macro_rules! lite_write {
    ($store:expr, |$db:ident| $body:block) => {
        $store
            .write(move |conn| {
                super::sql::settle(async move {
                    let $db = &Lite(conn);
                    $body
                })
            })
            .await
    };
}

/// Runs `$body` with `$db` a [`Lite`] on a reader connection.
macro_rules! lite_read {
    ($store:expr, |$db:ident| $body:block) => {
        $store
            .read(move |conn| {
                super::sql::settle(async move {
                    let $db = &Lite(conn);
                    $body
                })
            })
            .await
    };
}

impl_stores!(SqliteStore, lite_write, lite_read, {
    async fn record_delivery(&self, d: Delivery) -> Result<Recorded, StoreError> {
        lite_write!(self, |db| { queue::record_delivery(db, d).await })
    }

    async fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|conn| Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
            .await
    }
});
