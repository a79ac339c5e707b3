//! The PostgreSQL store: one database shared by any number of `slipway serve` and
//! `slipway worker` processes.
//!
//! Every change is one transaction, committed before the caller is answered (a delivery is
//! durable before its 2xx). Claims take rows with `FOR UPDATE SKIP LOCKED`, so concurrent
//! workers never wait for each other nor take the same row. Changes to a build and its jobs lock
//! the build's row first, so two jobs of one build ending at once on two machines advance it
//! one after the other. The schema is versioned: the migrations in `postgres/migrations/` are
//! applied at start under an advisory lock, so servers starting together migrate once.

mod access;
mod builds;
mod checks;
mod listen;
mod notify;
mod queue;
mod reads;

use super::*;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// The schema's migrations in order: (version, SQL). A database is at the highest version
/// applied; a newer one than this list knows is refused.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("postgres/migrations/0001_initial.sql")),
    (2, include_str!("postgres/migrations/0002_deploys.sql")),
    (
        3,
        include_str!("postgres/migrations/0003_job_end_notify.sql"),
    ),
];

/// The advisory lock key migrations run under ("slipway" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_6c69_7077_6179;

/// Connections kept per process: workers, the reporter and readers share them.
const POOL_SIZE: usize = 16;

/// Parameters of a statement.
type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
}

/// A connection to run statements on: a transaction for changes, a pooled client for reads.
/// Statements go through the connection's statement cache.
pub(super) enum Db<'a, 't> {
    Tx(&'a deadpool_postgres::Transaction<'t>),
    Read(&'a deadpool_postgres::Client),
}

impl Db<'_, '_> {
    async fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, StoreError> {
        Ok(match self {
            Db::Tx(tx) => tx.prepare_cached(sql).await?,
            Db::Read(c) => c.prepare_cached(sql).await?,
        })
    }

    /// Runs a statement; the number of rows it changed.
    pub(super) async fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let st = self.statement(sql).await?;
        Ok(match self {
            Db::Tx(tx) => tx.execute(&st, params).await?,
            Db::Read(c) => c.execute(&st, params).await?,
        })
    }

    /// Runs a query; its rows.
    pub(super) async fn rows(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let st = self.statement(sql).await?;
        Ok(match self {
            Db::Tx(tx) => tx.query(&st, params).await?,
            Db::Read(c) => c.query(&st, params).await?,
        })
    }

    /// Runs a query of at most one row.
    pub(super) async fn opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let st = self.statement(sql).await?;
        Ok(match self {
            Db::Tx(tx) => tx.query_opt(&st, params).await?,
            Db::Read(c) => c.query_opt(&st, params).await?,
        })
    }

    /// Runs a query of exactly one row.
    pub(super) async fn one(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<tokio_postgres::Row, StoreError> {
        let st = self.statement(sql).await?;
        Ok(match self {
            Db::Tx(tx) => tx.query_one(&st, params).await?,
            Db::Read(c) => c.query_one(&st, params).await?,
        })
    }
}

/// Runs `$body` (which uses `$db`, a [`Db`]) in a transaction of `$store`, committing when it
/// returns `Ok`; an error rolls back.
macro_rules! in_tx {
    ($store:expr, |$db:ident| $body:block) => {{
        let mut client = $store.client().await?;
        let tx = client.transaction().await?;
        let out: Result<_, StoreError> = {
            let $db = Db::Tx(&tx);
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
pub(super) use in_tx;

/// Runs `$body` (which uses `$db`, a [`Db`]) on a pooled connection, outside a transaction.
macro_rules! read {
    ($store:expr, |$db:ident| $body:block) => {{
        let client = $store.client().await?;
        let $db = Db::Read(&client);
        let out: Result<_, StoreError> = async { $body }.await;
        out
    }};
}
pub(super) use read;

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
        let store = PgStore { pool, config };
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
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::Setting(format!(
            "the database's schema is at version {current}, newer than this Slipway knows \
             ({known}): upgrade Slipway on this machine"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
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
