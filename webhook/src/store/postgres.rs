//! The PostgreSQL store: one database shared by any number of `slipway serve` and
//! `slipway worker` processes.
//!
//! Every change is one transaction, committed before the caller is answered (a delivery is
//! durable before its 2xx). Claims take rows with `FOR UPDATE SKIP LOCKED`, so concurrent
//! workers never wait for each other nor take the same row. Changes to a build and its jobs lock
//! the build's row first, so two jobs of one build ending at once on two machines advance it
//! one after the other. The schema is versioned: the migrations in `store/migrations/` (shared with SQLite) are
//! applied at start under an advisory lock, so servers starting together migrate once.

mod batch;
mod intake;
mod listen;

use super::sql::{
    Arg, Dialect, MIGRATIONS, Migration, Sql, access, check_version, checks, dollar_params,
    impl_stores, notify, queue, reads,
};
use super::*;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// The advisory lock key migrations run under ("slipway" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_6c69_7077_6179;

/// Connections kept per process: workers, the reporter and readers share them.
const POOL_SIZE: usize = 16;

/// The channel idle workers listen on; notified in the transaction that makes work claimable,
/// so it is delivered when that transaction commits.
const WORK_CHANNEL: &str = "slipway_work";

/// Parameters of a statement.
type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Where deliveries go to be recorded together ([`intake`]).
    intake: intake::Intake,
}

/// A connection to run statements on: a transaction for changes, a pooled client for reads, or
/// the transaction of a batch of deliveries ([`intake`]). Statements go through the connection's
/// statement cache.
enum Db<'a, 't> {
    Tx(&'a deadpool_postgres::Transaction<'t>),
    Read(&'a deadpool_postgres::Client),
    Batch(&'a deadpool_postgres::Transaction<'t>, &'a intake::Batch),
}

impl Db<'_, '_> {
    async fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
        let sql = dollar_params(sql);
        Ok(match self {
            Db::Tx(tx) | Db::Batch(tx, _) => tx.prepare_cached(&sql).await?,
            Db::Read(c) => c.prepare_cached(&sql).await?,
        })
    }
}

fn pg_args<'a>(args: &'a [&'a dyn Arg]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a.pg()).collect()
}

impl Sql for Db<'_, '_> {
    type Row = tokio_postgres::Row;
    const DIALECT: Dialect = Dialect::Postgres;

    async fn exec(&self, sql: &str, args: &[&dyn Arg]) -> Result<u64, StoreError> {
        let st = self.statement(sql).await?;
        let args: Params<'_> = &pg_args(args);
        Ok(match self {
            Db::Tx(tx) | Db::Batch(tx, _) => tx.execute(&st, args).await?,
            Db::Read(c) => c.execute(&st, args).await?,
        })
    }

    async fn rows(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let st = self.statement(sql).await?;
        let args: Params<'_> = &pg_args(args);
        Ok(match self {
            Db::Tx(tx) | Db::Batch(tx, _) => tx.query(&st, args).await?,
            Db::Read(c) => c.query(&st, args).await?,
        })
    }

    async fn opt(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let st = self.statement(sql).await?;
        let args: Params<'_> = &pg_args(args);
        Ok(match self {
            Db::Tx(tx) | Db::Batch(tx, _) => tx.query_opt(&st, args).await?,
            Db::Read(c) => c.query_opt(&st, args).await?,
        })
    }

    async fn wake_workers(&self) -> Result<(), StoreError> {
        if let Db::Batch(_, batch) = self {
            batch.wake();
            return Ok(());
        }
        self.exec("SELECT pg_notify(?1, '')", &[&WORK_CHANNEL])
            .await?;
        Ok(())
    }

    /// One statement for the batch: a live viewer on another server waits for its commit.
    async fn store_log(&self, job_id: i64, chunks: &[LogChunk]) -> Result<(), StoreError> {
        let seqs: Vec<i64> = chunks.iter().map(|c| c.seq).collect();
        let kinds: Vec<&str> = chunks.iter().map(|c| c.kind.as_str()).collect();
        let data: Vec<&str> = chunks.iter().map(|c| c.data.as_str()).collect();
        let st = self
            .statement(
                "INSERT INTO log_chunks (job_id, seq, kind, data)
                 SELECT $1, c.seq, c.kind, c.data
                 FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[]) AS c(seq, kind, data)
                 ON CONFLICT (job_id, seq) DO UPDATE SET kind = excluded.kind, data = excluded.data",
            )
            .await?;
        let args: Params<'_> = &[&job_id, &seqs, &kinds, &data];
        match self {
            Db::Tx(tx) | Db::Batch(tx, _) => tx.execute(&st, args).await?,
            Db::Read(c) => c.execute(&st, args).await?,
        };
        Ok(())
    }

    async fn log_stored(&self, job_id: i64, seq: i64) -> Result<(), StoreError> {
        listen::log_stored(self, job_id, seq).await
    }

    async fn attempt_ended(&self, job_id: i64) -> Result<(), StoreError> {
        listen::attempt_ended(self, job_id).await
    }

    async fn serialize(&self, key: &str) -> Result<(), StoreError> {
        if let Db::Batch(_, batch) = self
            && batch.holds(key)
        {
            return Ok(());
        }
        self.exec("SELECT pg_advisory_xact_lock(hashtext(?1))", &[&key])
            .await?;
        Ok(())
    }
}

/// Runs `$body` (which uses `$db`, a `&`[`Db`]) in a transaction of `$store`, committing when it
/// returns `Ok`; an error rolls back.
macro_rules! in_tx {
    ($store:expr, |$db:ident| $body:block) => {{
        let mut client = $store.client().await?;
        let tx = client.transaction().await?;
        let out: Result<_, StoreError> = {
            let $db = &Db::Tx(&tx);
            async { $body }.await
        };
        match out {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }};
}

/// Runs `$body` (which uses `$db`, a `&`[`Db`]) on a pooled connection, outside a transaction.
macro_rules! read {
    ($store:expr, |$db:ident| $body:block) => {{
        let client = $store.client().await?;
        let $db = &Db::Read(&client);
        let out: Result<_, StoreError> = async { $body }.await;
        out
    }};
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to this version's.
    pub async fn connect(url: &PgUrl) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|e| StoreError::Setting(format!("the store ({STORE_SETTING}) {url}: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let store = PgStore {
            intake: intake::Intake::start(pool.clone()),
            pool,
            config,
        };
        let client = store.pool.get().await.map_err(|e| {
            StoreError::Setting(format!(
                "the store ({STORE_SETTING}) {url} cannot be reached: {e}"
            ))
        })?;
        migrate(&client).await?;
        Ok(store)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Task(format!("no database connection: {e}")))
    }
}

/// Applies the migrations the database lacks, holding the migration lock so that processes
/// starting together apply each once.
async fn migrate(client: &deadpool_postgres::Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply_migrations(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    applied
}

async fn apply_migrations(client: &deadpool_postgres::Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await?;
    let current: i64 = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    check_version(current)?;
    for Migration { version, sql, .. } in MIGRATIONS.iter().filter(|m| m.version > current) {
        // A transaction per migration: PostgreSQL's DDL is transactional, so a failed
        // migration leaves the previous version intact.
        client.batch_execute("BEGIN").await?;
        let done = async {
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    &[version, &now_ms()],
                )
                .await
        }
        .await;
        match done {
            Ok(_) => client.batch_execute("COMMIT").await?,
            Err(e) => {
                client.batch_execute("ROLLBACK").await?;
                return Err(StoreError::Invalid(format!("migration {version}: {e}")));
            }
        }
        tracing::info!(version, "applied a store migration");
    }
    Ok(())
}

impl_stores!(PgStore, in_tx, read, {
    async fn record_delivery(&self, d: Delivery) -> Result<Recorded, StoreError> {
        self.intake.record(d).await
    }

    fn shared(&self) -> bool {
        true
    }

    fn listen(&self, changes: std::sync::Arc<dyn StoreChanges>) {
        listen::spawn(self.config.clone(), changes);
    }

    async fn integrity_check(&self) -> Result<String, StoreError> {
        read!(self, |db| {
            db.opt("SELECT 1", &[]).await?;
            Ok("ok".to_string())
        })
    }
});
