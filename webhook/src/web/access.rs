//! Who is calling, and what they may read and do.
//!
//! A public repository's builds are readable by anyone, as on Travis; a private repository's only
//! by signed-in users GitHub gives pull permission on it, and cancel and restart need push. An API
//! token (`api_tokens`) may do everything. Whatever a caller may not read answers 404, exactly as
//! for something that does not exist, so a private repository's name never leaks.

use super::{App, limits::Kind, store_error, text};
use crate::store::{Build, Permission, Session, StoreError};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use slipway_secrets::Secret;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "slipway_session";

/// How long a session read from the store is trusted in memory (a sign-out on another server
/// takes effect within it).
const SESSION_MEMORY: Duration = Duration::from_secs(10);

/// Entries kept in each memory cache before it is emptied.
const CACHE_ENTRIES: usize = 100_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Who {
    /// No credentials.
    Anonymous,
    /// Signed in with GitHub.
    User {
        /// GitHub login.
        login: String,
        /// Their OAuth token, to ask GitHub about their permissions.
        token: Secret<String>,
    },
    /// An API token, or a session opened with one.
    Admin,
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Who,
    /// The browser session it came with, if any.
    pub session: Option<SessionRef>,
    /// The client's address.
    pub addr: IpAddr,
}

/// The session a request came with.
#[derive(Debug, Clone)]
pub struct SessionRef {
    /// SHA-256 of the cookie's value: the key in the store.
    pub id_hash: [u8; 32],
    /// The token its forms carry.
    pub csrf: Secret<String>,
}

impl Caller {
    /// True for an API token or a session opened with one.
    pub fn is_admin(&self) -> bool {
        matches!(self.who, Who::Admin)
    }

    /// The name shown in the page header.
    pub fn login(&self) -> Option<&str> {
        match &self.who {
            Who::Anonymous => None,
            Who::User { login, .. } => Some(login),
            Who::Admin => Some("api-token"),
        }
    }
}

/// In-memory caches in front of the store and GitHub.
#[derive(Debug, Default)]
pub struct AccessCache {
    sessions: Mutex<HashMap<[u8; 32], (Session, Instant)>>,
    permissions: Mutex<HashMap<(String, String), (Permission, Instant)>>,
    /// One GitHub question at a time per user and repository: a page, its stream and its
    /// badge asking at once wait for one answer instead of asking three times.
    asking: Mutex<HashMap<(String, String), Turn>>,
}

/// The right to ask GitHub about one user and repository.
type Turn = Arc<tokio::sync::Mutex<()>>;

impl AccessCache {
    /// Forgets a session (signed out here).
    pub fn forget_session(&self, id_hash: &[u8; 32]) {
        self.sessions.lock().expect("cache").remove(id_hash);
    }
}

/// SHA-256 of a session id.
pub fn hash_id(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of one cookie.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// True when `token` is one of the configured API tokens.
pub fn is_api_token(app: &App, token: &str) -> bool {
    app.config
        .api_tokens
        .iter()
        .any(|t| !t.is_empty() && constant_time_eq(t.as_bytes(), token.as_bytes()))
}

/// The client's address: the peer's, or, when the peer is a trusted reverse proxy, the last
/// address of `X-Forwarded-For` (the one that proxy added; earlier ones the client could write).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    forwarded_for
        .and_then(|v| v.rsplit(',').next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(peer)
}

fn client_addr(parts: &Parts, app: &App) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    client_ip(peer, forwarded, &app.config.http.trusted_proxies)
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, Response> {
        let addr = client_addr(parts, app);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            if app.limits.blocked(Kind::FailedToken, addr) {
                return Err(too_many());
            }
            if is_api_token(app, token) {
                return Ok(Caller {
                    who: Who::Admin,
                    session: None,
                    addr,
                });
            }
            app.limits.hit(Kind::FailedToken, addr);
            return Err(text(StatusCode::UNAUTHORIZED, "unknown API token\n"));
        }
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(Caller {
                who: Who::Anonymous,
                session: None,
                addr,
            });
        };
        let id_hash = hash_id(id);
        let session = session(app, id_hash).await.map_err(store_error)?;
        Ok(match session {
            None => Caller {
                who: Who::Anonymous,
                session: None,
                addr,
            },
            Some(s) => Caller {
                who: match (s.admin, s.github_token) {
                    (true, _) | (false, None) => Who::Admin,
                    (false, Some(token)) => Who::User {
                        login: s.login,
                        token,
                    },
                },
                session: Some(SessionRef {
                    id_hash,
                    csrf: s.csrf,
                }),
                addr,
            },
        })
    }
}

/// 429 with the advice to wait.
pub fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "60")],
        "too many attempts from this address; try again in a minute\n",
    )
        .into_response()
}

async fn session(app: &App, id_hash: [u8; 32]) -> Result<Option<Session>, StoreError> {
    let now = Instant::now();
    if let Some((s, at)) = app.cache.sessions.lock().expect("cache").get(&id_hash)
        && now.duration_since(*at) < SESSION_MEMORY
        && s.expires_at > crate::store::now_ms()
    {
        return Ok(Some(s.clone()));
    }
    let s = app.store.session(id_hash).await?;
    let mut cache = app.cache.sessions.lock().expect("cache");
    if cache.len() > CACHE_ENTRIES {
        cache.clear();
    }
    match &s {
        Some(s) => cache.insert(id_hash, (s.clone(), now)),
        None => cache.remove(&id_hash),
    };
    Ok(s)
}

/// What `caller` may do with `repo`, asking GitHub (through the caches) only when the answer
/// depends on it: a public repository is readable by all, so only `need = Push` asks then.
pub async fn permission(
    app: &App,
    caller: &Caller,
    repo: &str,
    need: Permission,
) -> Result<Permission, StoreError> {
    if caller.is_admin() {
        return Ok(Permission::Push);
    }
    // A repository no delivery described is private: nothing is shown by mistake.
    let public = app
        .store
        .repo_access(repo)
        .await?
        .is_some_and(|r| !r.private);
    let floor = if public {
        Permission::Pull
    } else {
        Permission::None
    };
    let Who::User { login, token } = &caller.who else {
        return Ok(floor);
    };
    if floor >= need {
        return Ok(floor);
    }
    let key = (login.clone(), repo.to_ascii_lowercase());
    let ttl = Duration::from_secs(app.config.sessions.permission_cache_seconds);
    let cached = || {
        app.cache
            .permissions
            .lock()
            .expect("cache")
            .get(&key)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(p, _)| *p)
    };
    if let Some(p) = cached() {
        return Ok(p.max(floor));
    }
    let turn = {
        let mut asking = app.cache.asking.lock().expect("cache");
        if asking.len() > CACHE_ENTRIES {
            asking.retain(|_, m| Arc::strong_count(m) > 1);
        }
        asking.entry(key.clone()).or_default().clone()
    };
    let _turn = turn.lock().await;
    // Whoever held the turn before may have asked already.
    if let Some(p) = cached() {
        return Ok(p.max(floor));
    }
    let since = crate::store::now_ms() - ttl.as_millis() as i64;
    let asked = match app.store.cached_permission(login, repo, since).await? {
        Some(p) => p,
        None => match super::session::github_permission(app, token, repo).await {
            Ok(p) => {
                app.store.cache_permission(login, repo, p).await?;
                p
            }
            Err(e) => {
                // Not remembered: the next request asks again.
                tracing::warn!(%login, %repo, error = %e, "asking GitHub for a permission");
                return Ok(floor);
            }
        },
    };
    let mut cache = app.cache.permissions.lock().expect("cache");
    if cache.len() > CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, (asked, Instant::now()));
    Ok(asked.max(floor))
}

/// True when `caller` may read `repo`.
pub async fn can_read(app: &App, caller: &Caller, repo: &str) -> Result<bool, StoreError> {
    Ok(permission(app, caller, repo, Permission::Pull).await? >= Permission::Pull)
}

/// The repositories `caller` may read, among those a delivery named; `None` means all (an admin).
pub async fn readable_repos(app: &App, caller: &Caller) -> Result<Option<Vec<String>>, StoreError> {
    if caller.is_admin() {
        return Ok(None);
    }
    let repos = app.store.repos_access().await?;
    let checks = repos.into_iter().map(|r| async move {
        if !r.private {
            return Ok::<_, StoreError>(Some(r.name));
        }
        Ok(can_read(app, caller, &r.name).await?.then_some(r.name))
    });
    let names: Vec<Option<String>> = futures::future::try_join_all(checks).await?;
    Ok(Some(names.into_iter().flatten().collect()))
}

/// Keeps the builds `caller` may read.
pub fn filter_builds(builds: Vec<Build>, readable: &Option<Vec<String>>) -> Vec<Build> {
    match readable {
        None => builds,
        Some(names) => builds
            .into_iter()
            .filter(|b| names.iter().any(|n| n.eq_ignore_ascii_case(&b.repo)))
            .collect(),
    }
}

/// A build by id, when `caller` may read it; `Err` is the response to give (404 for both "no such
/// build" and "not yours to see").
pub async fn readable_build(
    app: &App,
    caller: &Caller,
    id: i64,
) -> Result<(Build, Vec<crate::store::Job>), Response> {
    let not_found = || text(StatusCode::NOT_FOUND, "no such build\n");
    let (b, jobs) = match app.store.build(id).await {
        Ok(Some(x)) => x,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(store_error(e)),
    };
    match can_read(app, caller, &b.repo).await {
        Ok(true) => Ok((b, jobs)),
        Ok(false) => Err(not_found()),
        Err(e) => Err(store_error(e)),
    }
}

/// A job by id with its build, when `caller` may read it (else 404).
pub async fn readable_job(
    app: &App,
    caller: &Caller,
    id: i64,
) -> Result<(crate::store::Job, Build), Response> {
    let not_found = || text(StatusCode::NOT_FOUND, "no such job\n");
    let job = match app.store.job(id).await {
        Ok(Some(j)) => j,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(store_error(e)),
    };
    let build = match app.store.build(job.build_id).await {
        Ok(Some((b, _))) => b,
        Ok(None) => return Err(not_found()),
        Err(e) => return Err(store_error(e)),
    };
    match can_read(app, caller, &build.repo).await {
        Ok(true) => Ok((job, build)),
        Ok(false) => Err(not_found()),
        Err(e) => Err(store_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy_and_only_its_last_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = [ip("127.0.0.1")];
        let xff = Some("6.6.6.6, 203.0.113.7");
        assert_eq!(client_ip(ip("127.0.0.1"), xff, &proxy), ip("203.0.113.7"));
        assert_eq!(
            client_ip(ip("198.51.100.1"), xff, &proxy),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), None, &proxy), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("junk"), &proxy),
            ip("127.0.0.1")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), xff, &[]), ip("127.0.0.1"));
    }
}
