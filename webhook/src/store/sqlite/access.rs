//! SQLite tables of the access part of the store: repositories' visibility and badge tokens,
//! sessions, and the permission cache; plus the delivery body hash that makes replays duplicates.

use super::{BUILD_COLS, FILTERED, SqliteStore, build_row, exec, finish_build_row, query_row};
use crate::event::Visibility;
use crate::store::access::{AccessStore, Permission, RepoAccess, Session};
use crate::store::{Build, BuildFilter, BuiltBy, Millis, StoreError, now_ms};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use slipway_secrets::Secret;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS repos (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    private INTEGER NOT NULL,
    badge_token TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash BLOB PRIMARY KEY,
    login TEXT NOT NULL,
    github_token TEXT,
    admin INTEGER NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_at);
CREATE TABLE IF NOT EXISTS permissions (
    login TEXT NOT NULL,
    repo TEXT NOT NULL COLLATE NOCASE,
    level TEXT NOT NULL,
    checked_at INTEGER NOT NULL,
    PRIMARY KEY (login, repo)
) WITHOUT ROWID;
"#;

/// Creates the access tables and adds the delivery body hash to a database made before it.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    let has_hash: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('deliveries') WHERE name = 'body_sha256'",
        [],
        |r| r.get(0),
    )?;
    if has_hash == 0 {
        conn.execute_batch("ALTER TABLE deliveries ADD COLUMN body_sha256 BLOB")?;
    }
    // A replay is the same body under a new delivery id: the index makes it a duplicate.
    conn.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_body ON deliveries(body_sha256)",
    )?;
    Ok(())
}

/// A random token of 32 bytes, hex.
pub(crate) fn random_token() -> Result<String, StoreError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| StoreError::Task(format!("no randomness: {e}")))?;
    Ok(hex::encode(raw))
}

/// Records what a delivery says about its repository's visibility, inside the delivery's
/// transaction; a repository seen for the first time gets its badge token.
pub(super) fn record_visibility(conn: &Connection, vis: &Visibility) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO repos (name, private, badge_token, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET private = excluded.private, updated_at = excluded.updated_at
         WHERE repos.private != excluded.private",
        params![vis.repo, vis.private, random_token()?, now_ms()],
    )?;
    Ok(())
}

fn repo_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RepoAccess> {
    Ok(RepoAccess {
        name: r.get(0)?,
        private: r.get(1)?,
        badge_token: r.get(2)?,
    })
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn repo_access(&self, name: &str) -> Result<Option<RepoAccess>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            Ok(query_row(
                conn,
                "SELECT name, private, badge_token FROM repos WHERE name = ?1",
                [name],
                repo_row,
            )
            .optional()?)
        })
        .await
    }

    async fn repos_access(&self) -> Result<Vec<RepoAccess>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name, private, badge_token FROM repos ORDER BY name")?;
            let rows = stmt.query_map([], repo_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn builds_of(
        &self,
        repos: Vec<String>,
        filter: BuildFilter,
        limit: i64,
    ) -> Result<Vec<Build>, StoreError> {
        let names =
            serde_json::to_string(&repos).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {BUILD_COLS} FROM builds
                 WHERE lower(repo) IN (SELECT lower(value) FROM json_each(?1)) AND {FILTERED}
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            let event = filter.event.map(|e| e.event().as_str());
            let tag = filter.event.and_then(BuiltBy::tag);
            let rows =
                stmt.query_map(params![names, filter.branch, event, limit, tag], build_row)?;
            rows.map(|r| finish_build_row(r?)).collect()
        })
        .await
    }

    async fn create_session(&self, id_hash: [u8; 32], s: Session) -> Result<(), StoreError> {
        self.write(move |conn| {
            let now = now_ms();
            exec(conn, "DELETE FROM sessions WHERE expires_at < ?1", [now])?;
            exec(
                conn,
                "INSERT INTO sessions (id_hash, login, github_token, admin, csrf, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id_hash.as_slice(),
                    s.login,
                    s.github_token.as_ref().map(|t| t.expose().clone()),
                    s.admin,
                    s.csrf.expose(),
                    now,
                    s.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: [u8; 32]) -> Result<Option<Session>, StoreError> {
        self.read(move |conn| {
            Ok(query_row(
                conn,
                "SELECT login, github_token, admin, csrf, expires_at FROM sessions
                 WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash.as_slice(), now_ms()],
                |r| {
                    Ok(Session {
                        login: r.get(0)?,
                        github_token: r.get::<_, Option<String>>(1)?.map(Secret::new),
                        admin: r.get(2)?,
                        csrf: Secret::new(r.get(3)?),
                        expires_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn delete_session(&self, id_hash: [u8; 32]) -> Result<(), StoreError> {
        self.write(move |conn| {
            exec(
                conn,
                "DELETE FROM sessions WHERE id_hash = ?1",
                [id_hash.as_slice()],
            )?;
            Ok(())
        })
        .await
    }

    async fn cached_permission(
        &self,
        login: &str,
        repo: &str,
        since: Millis,
    ) -> Result<Option<Permission>, StoreError> {
        let (login, repo) = (login.to_string(), repo.to_string());
        self.read(move |conn| {
            let level: Option<String> = query_row(
                conn,
                "SELECT level FROM permissions WHERE login = ?1 AND repo = ?2 AND checked_at >= ?3",
                params![login, repo, since],
                |r| r.get(0),
            )
            .optional()?;
            level.map(|l| Permission::parse(&l)).transpose()
        })
        .await
    }

    async fn cache_permission(
        &self,
        login: &str,
        repo: &str,
        permission: Permission,
    ) -> Result<(), StoreError> {
        let (login, repo) = (login.to_string(), repo.to_string());
        self.write(move |conn| {
            exec(
                conn,
                "INSERT OR REPLACE INTO permissions (login, repo, level, checked_at) VALUES (?1, ?2, ?3, ?4)",
                params![login, repo, permission.as_str(), now_ms()],
            )?;
            Ok(())
        })
        .await
    }
}
