//! The access part of the store in PostgreSQL: repositories' visibility and badge tokens,
//! sessions, and the permission cache. Repository names compare case-insensitively, as GitHub's.

use super::builds::{BUILD_COLS, FILTERED, build_rows};
use super::{Db, PgStore, in_tx, read};
use crate::event::Visibility;
use crate::store::access::{AccessStore, Permission, RepoAccess, Session};
use crate::store::{Build, BuildFilter, BuiltBy, Millis, StoreError, now_ms, random_token};
use async_trait::async_trait;
use slipway_secrets::Secret;

/// Records what a delivery says about its repository's visibility, inside the delivery's
/// transaction; a repository seen for the first time gets its badge token.
pub(super) async fn record_visibility(db: &Db<'_, '_>, vis: &Visibility) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO repos (name, private, badge_token, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT ((lower(name))) DO UPDATE SET private = excluded.private, updated_at = excluded.updated_at
         WHERE repos.private != excluded.private",
        &[&vis.repo, &vis.private, &random_token()?, &now_ms()],
    )
    .await?;
    Ok(())
}

fn repo_row(r: &tokio_postgres::Row) -> Result<RepoAccess, StoreError> {
    Ok(RepoAccess {
        name: r.try_get(0)?,
        private: r.try_get(1)?,
        badge_token: r.try_get(2)?,
    })
}

#[async_trait]
impl AccessStore for PgStore {
    async fn repo_access(&self, name: &str) -> Result<Option<RepoAccess>, StoreError> {
        read!(self, |db| {
            db.opt(
                "SELECT name, private, badge_token FROM repos WHERE lower(name) = lower($1)",
                &[&name],
            )
            .await?
            .as_ref()
            .map(repo_row)
            .transpose()
        })
    }

    async fn repos_access(&self) -> Result<Vec<RepoAccess>, StoreError> {
        read!(self, |db| {
            db.rows(
                "SELECT name, private, badge_token FROM repos ORDER BY lower(name)",
                &[],
            )
            .await?
            .iter()
            .map(repo_row)
            .collect()
        })
    }

    async fn builds_of(
        &self,
        repos: Vec<String>,
        filter: BuildFilter,
        limit: i64,
    ) -> Result<Vec<Build>, StoreError> {
        let names: Vec<String> = repos.iter().map(|r| r.to_lowercase()).collect();
        let event = filter.event.map(|e| e.event().as_str());
        let tag = filter.event.and_then(BuiltBy::tag);
        read!(self, |db| {
            build_rows(
                db.rows(
                    &format!(
                        "SELECT {BUILD_COLS} FROM builds WHERE lower(repo) = ANY($1) AND {FILTERED}
                         ORDER BY id DESC LIMIT $4"
                    ),
                    &[&names, &filter.branch, &event, &limit, &tag],
                )
                .await?,
            )
        })
    }

    async fn create_session(&self, id_hash: [u8; 32], s: Session) -> Result<(), StoreError> {
        let token = s.github_token.as_ref().map(|t| t.expose().clone());
        in_tx!(self, |db| {
            let now = now_ms();
            db.exec("DELETE FROM sessions WHERE expires_at < $1", &[&now])
                .await?;
            db.exec(
                "INSERT INTO sessions (id_hash, login, github_token, admin, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &id_hash.as_slice(),
                    &s.login,
                    &token,
                    &s.admin,
                    s.csrf.expose(),
                    &now,
                    &s.expires_at,
                ],
            )
            .await?;
            Ok(())
        })
    }

    async fn session(&self, id_hash: [u8; 32]) -> Result<Option<Session>, StoreError> {
        read!(self, |db| {
            let row = db
                .opt(
                    "SELECT login, github_token, admin, csrf, expires_at FROM sessions
                     WHERE id_hash = $1 AND expires_at > $2",
                    &[&id_hash.as_slice(), &now_ms()],
                )
                .await?;
            row.map(|r| {
                Ok(Session {
                    login: r.try_get(0)?,
                    github_token: r.try_get::<_, Option<String>>(1)?.map(Secret::new),
                    admin: r.try_get(2)?,
                    csrf: Secret::new(r.try_get(3)?),
                    expires_at: r.try_get(4)?,
                })
            })
            .transpose()
        })
    }

    async fn delete_session(&self, id_hash: [u8; 32]) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec(
                "DELETE FROM sessions WHERE id_hash = $1",
                &[&id_hash.as_slice()],
            )
            .await?;
            Ok(())
        })
    }

    async fn cached_permission(
        &self,
        login: &str,
        repo: &str,
        since: Millis,
    ) -> Result<Option<Permission>, StoreError> {
        read!(self, |db| {
            let row = db
                .opt(
                    "SELECT level FROM permissions
                     WHERE login = $1 AND lower(repo) = lower($2) AND checked_at >= $3",
                    &[&login, &repo, &since],
                )
                .await?;
            row.map(|r| Permission::parse(r.try_get(0)?)).transpose()
        })
    }

    async fn cache_permission(
        &self,
        login: &str,
        repo: &str,
        permission: Permission,
    ) -> Result<(), StoreError> {
        in_tx!(self, |db| {
            db.exec(
                "INSERT INTO permissions (login, repo, level, checked_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (login, (lower(repo))) DO UPDATE
                 SET repo = excluded.repo, level = excluded.level, checked_at = excluded.checked_at",
                &[&login, &repo, &permission.as_str(), &now_ms()],
            )
            .await?;
            Ok(())
        })
    }
}
