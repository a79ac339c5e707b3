//! The SQLite store's tables: the migrations PostgreSQL runs ([`MIGRATIONS`]), as SQLite writes
//! them, with the version applied kept in the database's `user_version`.
//!
//! A database made before the migrations were versioned (at version 0) already has most
//! tables; the migrations create what it lacks, and the columns added to it over time are added
//! here when missing.

use crate::store::StoreError;
use crate::store::sql::{Dialect, MIGRATIONS, check_version};
use rusqlite::Connection;

/// Brings the database's tables up to this version's.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    check_version(current)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let sql = if m.postgres_only {
            Default::default()
        } else {
            Dialect::Sqlite.ddl(m.sql)
        };
        // SQLite's DDL is transactional: a failed migration leaves the previous version.
        conn.execute_batch(&format!(
            "BEGIN;\n{sql}\nPRAGMA user_version = {};\nCOMMIT;",
            m.version
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    }
    if current == 0 {
        add_missing_columns(conn)?;
    }
    Ok(())
}

/// The columns a table made by a version before them lacks: the delivery body hash (a replay is
/// the same body under a new delivery id: its unique index makes it a duplicate), the build's
/// notification setup, and the outbox's check-run items.
fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, declaration, then) in [
        (
            "deliveries",
            "body_sha256",
            "BLOB",
            "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_body ON deliveries(body_sha256)",
        ),
        ("builds", "notify", "TEXT", ""),
        ("outbox", "kind", "TEXT NOT NULL DEFAULT 'status'", ""),
        ("outbox", "payload", "TEXT", ""),
    ] {
        let has: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )?;
        if has == 0 {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}; {then}"
            ))?;
        }
    }
    Ok(())
}
