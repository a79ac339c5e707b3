//! The access part of the store: repositories' visibility and badge tokens, sessions, and the
//! permission cache. Repository names compare ignoring ASCII case, as GitHub's do.

use super::builds::{BUILD_COLS, build_rows, filter_args, filtered};
use super::{Cells, Sql};
use crate::event::Visibility;
use crate::store::access::{Permission, RepoAccess, Session};
use crate::store::{Build, BuildFilter, Millis, StoreError, now_ms};
use slipway_secrets::Secret;

/// Records what a delivery says about its repository's visibility, inside the delivery's
/// transaction; a repository seen for the first time gets its badge token.
pub(crate) async fn record_visibility<D: Sql>(db: &D, vis: &Visibility) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO repos (name, private, badge_token, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT ((lower(name))) DO UPDATE SET private = excluded.private,
         updated_at = excluded.updated_at WHERE repos.private != excluded.private",
        &[&vis.repo, &vis.private, &random_token()?, &now_ms()],
    )
    .await?;
    Ok(())
}

/// A random token of 32 bytes, hex.
pub(crate) fn random_token() -> Result<String, StoreError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| StoreError::Task(format!("no randomness: {e}")))?;
    Ok(hex::encode(raw))
}

fn repo_row(r: &impl Cells) -> Result<RepoAccess, StoreError> {
    Ok(RepoAccess {
        name: r.get(0)?,
        private: r.get(1)?,
        badge_token: r.get(2)?,
    })
}

/// See [`crate::store::AccessStore::repo_access`].
pub(crate) async fn repo_access<D: Sql>(
    db: &D,
    name: &str,
) -> Result<Option<RepoAccess>, StoreError> {
    db.opt(
        "SELECT name, private, badge_token FROM repos WHERE lower(name) = lower(?1)",
        &[&name],
    )
    .await?
    .as_ref()
    .map(repo_row)
    .transpose()
}

/// See [`crate::store::AccessStore::repos_access`].
pub(crate) async fn repos_access<D: Sql>(db: &D) -> Result<Vec<RepoAccess>, StoreError> {
    let sql = "SELECT name, private, badge_token FROM repos ORDER BY lower(name)";
    db.rows(sql, &[]).await?.iter().map(repo_row).collect()
}

/// See [`crate::store::AccessStore::builds_of`].
pub(crate) async fn builds_of<D: Sql>(
    db: &D,
    repos: &[String],
    filter: &BuildFilter,
    limit: i64,
) -> Result<Vec<Build>, StoreError> {
    let names = serde_json::to_string(repos).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let sql = format!(
        "SELECT {BUILD_COLS} FROM builds
         WHERE lower(repo) IN (SELECT lower(value) FROM {}) AND {}
         ORDER BY id DESC LIMIT ?4",
        D::DIALECT.json_strings("?1"),
        filtered(D::DIALECT)
    );
    let (event, tag) = filter_args(filter);
    let args: [&dyn super::Arg; 5] = [&names, &filter.branch, &event, &limit, &tag];
    build_rows(db.rows(&sql, &args).await?)
}

/// See [`crate::store::AccessStore::create_session`]; expired sessions go at the same time.
pub(crate) async fn create_session<D: Sql>(
    db: &D,
    id_hash: &[u8; 32],
    s: &Session,
) -> Result<(), StoreError> {
    let now = now_ms();
    db.exec("DELETE FROM sessions WHERE expires_at < ?1", &[&now])
        .await?;
    db.exec(
        "INSERT INTO sessions (id_hash, login, github_token, admin, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            &id_hash.as_slice(),
            &s.login,
            &s.github_token.as_ref().map(Secret::expose),
            &s.admin,
            s.csrf.expose(),
            &now,
            &s.expires_at,
        ],
    )
    .await?;
    Ok(())
}

/// See [`crate::store::AccessStore::session`].
pub(crate) async fn session<D: Sql>(
    db: &D,
    id_hash: &[u8; 32],
) -> Result<Option<Session>, StoreError> {
    let row = db
        .opt(
            "SELECT login, github_token, admin, csrf, expires_at FROM sessions
             WHERE id_hash = ?1 AND expires_at > ?2",
            &[&id_hash.as_slice(), &now_ms()],
        )
        .await?;
    row.map(|r| {
        Ok(Session {
            login: r.get(0)?,
            github_token: r.get::<Option<String>>(1)?.map(Secret::new),
            admin: r.get(2)?,
            csrf: Secret::new(r.get(3)?),
            expires_at: r.get(4)?,
        })
    })
    .transpose()
}

/// See [`crate::store::AccessStore::delete_session`].
pub(crate) async fn delete_session<D: Sql>(db: &D, id_hash: &[u8; 32]) -> Result<(), StoreError> {
    db.exec(
        "DELETE FROM sessions WHERE id_hash = ?1",
        &[&id_hash.as_slice()],
    )
    .await?;
    Ok(())
}

/// See [`crate::store::AccessStore::cached_permission`].
pub(crate) async fn cached_permission<D: Sql>(
    db: &D,
    login: &str,
    repo: &str,
    since: Millis,
) -> Result<Option<Permission>, StoreError> {
    let row = db
        .opt(
            "SELECT level FROM permissions
             WHERE login = ?1 AND lower(repo) = lower(?2) AND checked_at >= ?3",
            &[&login, &repo, &since],
        )
        .await?;
    row.map(|r| Permission::parse(&r.get::<String>(0)?))
        .transpose()
}

/// See [`crate::store::AccessStore::cache_permission`].
pub(crate) async fn cache_permission<D: Sql>(
    db: &D,
    login: &str,
    repo: &str,
    permission: Permission,
) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO permissions (login, repo, level, checked_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (login, (lower(repo))) DO UPDATE
         SET repo = excluded.repo, level = excluded.level, checked_at = excluded.checked_at",
        &[&login, &repo, &permission.as_str(), &now_ms()],
    )
    .await?;
    Ok(())
}
