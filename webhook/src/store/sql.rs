//! The store's logic written once for both databases: the statements, the rows they read back
//! into [`Build`]s and [`Job`]s, and the decisions taken on them (which build advances, which
//! lost job is re-queued). The two stores differ only in how a statement reaches the database
//! (SQLite's writer thread, PostgreSQL's pool) and in a few words of SQL; [`Sql`] is that seam.
//!
//! Statements are written with SQLite's numbered parameters (`?1`); PostgreSQL gets them as
//! `$1`. Where the dialects disagree (JSON fields, row locks, text search), [`Dialect`] says the
//! words. SQLite's statements never wait, so its side of [`Sql`] is ready at once and the
//! writer thread runs the shared `async` code with [`settle`].

pub(super) mod access;
pub(super) mod builds;
pub(super) mod checks;
pub(super) mod notify;
pub(super) mod queue;
pub(super) mod reads;
mod stores;

pub(super) use stores::impl_stores;

use super::{LogChunk, StoreError};
use std::borrow::Cow;
use std::future::Future;

/// A version of the schema: its SQL, written for PostgreSQL.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
    /// Only PostgreSQL runs it: it tells other processes sharing the database (SQLite's version
    /// number still moves on).
    pub(crate) postgres_only: bool,
}

/// The schema's migrations in order. A database is at the highest version applied; a newer one
/// than this list knows is refused. SQLite runs them through [`Dialect::ddl`].
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/0001_initial.sql"),
        postgres_only: false,
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/0002_deploys.sql"),
        postgres_only: false,
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/0003_job_end_notify.sql"),
        postgres_only: true,
    },
    Migration {
        version: 4,
        sql: include_str!("migrations/0004_outbox_holds.sql"),
        postgres_only: false,
    },
    Migration {
        version: 5,
        sql: include_str!("migrations/0005_claim_order.sql"),
        postgres_only: false,
    },
    Migration {
        version: 6,
        sql: include_str!("migrations/0006_preparation_end_notify.sql"),
        postgres_only: true,
    },
];

/// Why a database cannot be used by this version: its schema is newer than [`MIGRATIONS`].
pub(crate) fn check_version(current: i64) -> Result<(), StoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::Setting(format!(
            "the database's schema is at version {current}, newer than this Slipway knows \
             ({known}): upgrade Slipway on this machine"
        )));
    }
    Ok(())
}

/// A statement parameter both drivers can bind.
pub(crate) trait Arg: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync {
    /// As SQLite binds it.
    fn lite(&self) -> &dyn rusqlite::ToSql;
    /// As PostgreSQL binds it.
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync> Arg for T {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
}

/// A column value both drivers can read.
pub(crate) trait Cell:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>> Cell for T {}

/// A row read back, whichever database it came from.
pub(crate) trait Cells {
    /// The value of column `i` (0-based).
    fn get<T: Cell>(&self, i: usize) -> Result<T, StoreError>;
}

impl Cells for tokio_postgres::Row {
    fn get<T: Cell>(&self, i: usize) -> Result<T, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// A SQLite row, copied out of its statement so it can outlive it.
pub(crate) struct LiteRow(pub(crate) Vec<rusqlite::types::Value>);

impl Cells for LiteRow {
    fn get<T: Cell>(&self, i: usize) -> Result<T, StoreError> {
        let value = self
            .0
            .get(i)
            .ok_or_else(|| StoreError::Invalid(format!("no column {i}")))?;
        T::column_result(value.into()).map_err(|e| StoreError::Invalid(format!("column {i}: {e}")))
    }
}

/// Which database a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A text field of a JSON column, e.g. `json(\"spec\", \"context.tag\")`.
    pub(crate) fn json(self, column: &str, path: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({column}, '$.{path}')"),
            Dialect::Postgres => {
                let mut keys: Vec<&str> = path.split('.').collect();
                let last = keys.pop().unwrap_or_default();
                let mut out = format!("({column}::jsonb");
                for k in keys {
                    out.push_str(&format!(" -> '{k}'"));
                }
                out.push_str(&format!(" ->> '{last}')"));
                out
            }
        }
    }

    /// An integer field of a JSON column.
    pub(crate) fn json_int(self, column: &str, path: &str) -> String {
        match self {
            Dialect::Sqlite => self.json(column, path),
            Dialect::Postgres => format!("{}::bigint", self.json(column, path)),
        }
    }

    /// What ends a `SELECT` that locks its rows until the transaction ends (`FOR UPDATE`, `FOR
    /// SHARE`, `FOR UPDATE SKIP LOCKED`); SQLite's one writer needs no row locks.
    pub(crate) fn lock(self, how: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => how,
        }
    }

    /// The function giving where a string stands in another (1-based, 0 when absent).
    pub(crate) fn position(self) -> &'static str {
        match self {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        }
    }

    /// The rows of a JSON array of strings bound as text (one column, `value`).
    pub(crate) fn json_strings(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_each({param})"),
            Dialect::Postgres => {
                format!("json_array_elements_text(CAST(CAST({param} AS TEXT) AS json))")
            }
        }
    }

    /// "Is in the ids of the JSON list bound to `param`" (see [`id_list`]), as SQL: a list of
    /// any length is one parameter, bound alike on both databases. PostgreSQL reads the list as
    /// an array (`[1,2]` is `{1,2}` with other brackets): a statement's generic plan then looks
    /// the ids up in an index, where a set of JSON elements of unknown size had it hash the
    /// whole table, a cost growing with the table.
    pub(crate) fn in_ids(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "IN (SELECT CAST(value AS BIGINT) FROM {})",
                self.json_strings(param)
            ),
            Dialect::Postgres => {
                format!("= ANY(CAST(translate(CAST({param} AS TEXT), '[]', '{{}}') AS BIGINT[]))")
            }
        }
    }

    /// A migration as this database runs it. The migrations are written for PostgreSQL; SQLite
    /// creates only what is missing (a database made before versioned migrations has most of
    /// it), numbers its rows with `INTEGER PRIMARY KEY`, and keeps a table keyed by several
    /// columns in its key's order, without a rowid beside it.
    pub(crate) fn ddl(self, sql: &str) -> Cow<'_, str> {
        if self == Dialect::Postgres {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 256);
        for statement in sql.split_inclusive(";\n") {
            let s = statement
                .replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ")
                .replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ")
                .replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX IF NOT EXISTS ")
                .replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY");
            if s.contains("CREATE TABLE") && s.contains("PRIMARY KEY (") {
                out.push_str(&s.replacen("\n);", "\n) WITHOUT ROWID;", 1));
            } else {
                out.push_str(&s);
            }
        }
        Cow::Owned(out)
    }
}

/// A connection to run statements on, inside the transaction of the change (or a read).
pub(crate) trait Sql {
    /// A row read back.
    type Row: Cells + Send;
    /// The words this database's SQL uses where the two differ.
    const DIALECT: Dialect;
    /// Runs a statement; the number of rows it changed.
    fn exec(&self, sql: &str, args: &[&dyn Arg]) -> impl Future<Output = Result<u64, StoreError>>;
    /// Runs a query; its rows.
    fn rows(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>>;
    /// Runs a query of at most one row.
    fn opt(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>>;
    /// Tells idle workers of every process that work became claimable, once the transaction
    /// commits; a store of one process rings its own bell instead.
    fn wake_workers(&self) -> impl Future<Output = Result<(), StoreError>> {
        async { Ok(()) }
    }
    /// Stores a batch of a job's log chunks, replacing chunks of the same `seq`. A statement each
    /// (SQLite runs them from its statement cache, with no round trip).
    fn store_log(
        &self,
        job_id: i64,
        chunks: &[LogChunk],
    ) -> impl Future<Output = Result<(), StoreError>> {
        async move {
            for c in chunks {
                self.exec(
                    "INSERT INTO log_chunks (job_id, seq, kind, data) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (job_id, seq) DO UPDATE SET kind = excluded.kind, data = excluded.data",
                    &[&job_id, &c.seq, &c.kind.as_str(), &c.data],
                )
                .await?;
            }
            Ok(())
        }
    }
    /// Tells live viewers in every process that a job's log is stored up to `seq`, once the
    /// transaction commits; a store of one process has its viewers told directly.
    fn log_stored(&self, job_id: i64, seq: i64) -> impl Future<Output = Result<(), StoreError>> {
        let _ = (job_id, seq);
        async { Ok(()) }
    }
    /// Tells every process, once the transaction commits, that a job's claim ended though the
    /// job goes on (queued again): the process that still runs the lost attempt checks its lease
    /// at once, and live viewers go on with the next attempt. A store of one process has its
    /// workers told directly.
    fn attempt_ended(&self, job_id: i64) -> impl Future<Output = Result<(), StoreError>> {
        let _ = job_id;
        async { Ok(()) }
    }
    /// Makes transactions passing the same `key` run one after the other from here on; SQLite's
    /// one writer does so already.
    fn serialize(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> {
        let _ = key;
        async { Ok(()) }
    }
}

/// `ids` as the JSON list [`Dialect::in_ids`] reads.
pub(crate) fn id_list(ids: &[i64]) -> Result<String, StoreError> {
    serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Runs a query of exactly one row.
pub(crate) async fn one<D: Sql>(
    db: &D,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<D::Row, StoreError> {
    db.opt(sql, args)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("no row for {sql}")))
}

/// The first column of a query of exactly one row.
pub(crate) async fn scalar<D: Sql, T: Cell>(
    db: &D,
    sql: &str,
    args: &[&dyn Arg],
) -> Result<T, StoreError> {
    one(db, sql, args).await?.get(0)
}

/// A statement with SQLite's numbered parameters (`?1`) as PostgreSQL writes them (`$1`).
pub(crate) fn dollar_params(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The result of shared store code run on SQLite. Its statements never wait, so the future is
/// ready when first polled; a future that is not is refused rather than blocked on.
pub(crate) fn settle<T>(
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut work = std::pin::pin!(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match work.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(StoreError::Task(
            "a SQLite statement did not complete at once".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollar_parameters() {
        assert_eq!(
            dollar_params("UPDATE jobs SET state = ?2 WHERE id = ?1 AND reason = '?'"),
            "UPDATE jobs SET state = $2 WHERE id = $1 AND reason = '?'"
        );
        assert!(matches!(dollar_params("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn sqlite_creates_what_is_missing_from_the_migrations() {
        let sql = "CREATE TABLE a (\n    id BIGSERIAL PRIMARY KEY\n);\n\
                   CREATE UNIQUE INDEX a_x ON a (lower(x));\n\
                   CREATE TABLE b (\n    k BIGINT,\n    PRIMARY KEY (k, id)\n);\n";
        assert_eq!(
            Dialect::Sqlite.ddl(sql),
            "CREATE TABLE IF NOT EXISTS a (\n    id INTEGER PRIMARY KEY\n);\n\
             CREATE UNIQUE INDEX IF NOT EXISTS a_x ON a (lower(x));\n\
             CREATE TABLE IF NOT EXISTS b (\n    k BIGINT,\n    PRIMARY KEY (k, id)\n) WITHOUT ROWID;\n"
        );
        assert_eq!(Dialect::Postgres.ddl(sql), sql);
    }

    #[test]
    fn json_fields_in_each_dialect() {
        assert_eq!(
            Dialect::Sqlite.json("spec", "context.tag"),
            "json_extract(spec, '$.context.tag')"
        );
        assert_eq!(
            Dialect::Postgres.json("b.spec", "context.tag"),
            "(b.spec::jsonb -> 'context' ->> 'tag')"
        );
        assert_eq!(
            Dialect::Postgres.json_int("spec", "head_sha"),
            "(spec::jsonb ->> 'head_sha')::bigint"
        );
    }
}
