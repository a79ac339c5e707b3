//! Credentials for GitHub: a configured token, or the short-lived installation tokens of a GitHub
//! App, for commit statuses and for fetching private repositories.
//!
//! An App proves itself with a JWT signed by its private key (RS256, valid for at most ten
//! minutes), and exchanges it for an installation token (valid for an hour) at
//! `POST /app/installations/{id}/access_tokens`. Tokens are kept per installation and replaced
//! five minutes before they expire, so a request never starts with a token about to lapse.
//! The JWT is made by `jsonwebtoken` (RS256 with `ring`), as the GKE deploy provider's is.

use crate::config::{AppId, Config};
use axum::http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use slipway_http::{Http, HttpError, Tls};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// An installation token this close to its expiry is replaced before use.
pub const REFRESH_MARGIN_SECS: u64 = 5 * 60;

/// A JWT is dated this far back, so a server clock slightly ahead of GitHub's is accepted.
const JWT_BACKDATE_SECS: u64 = 60;

/// A JWT expires this long after it is made (GitHub refuses more than ten minutes ahead).
const JWT_LIFETIME_SECS: u64 = 9 * 60;

/// Why a credential could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `app_id` without `private_key_path`, or the other way round.
    #[error("[github] {given} is set but {missing} is not; a GitHub App needs both")]
    Incomplete {
        /// The key that is set.
        given: &'static str,
        /// The key that is missing.
        missing: &'static str,
    },
    /// The private key could not be read or used.
    #[error("[github] private_key_path {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// GitHub's API could not be reached or refused.
    #[error("{0}")]
    Api(String),
    /// The HTTP client could not be made.
    #[error("GitHub client: {0}")]
    Client(#[from] HttpError),
}

/// How one request is authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token from the configuration (personal access token or similar).
    Token(String),
    /// A GitHub App installation token.
    Installation(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Token(_) => "Credential::Token(..)",
            Credential::Installation(_) => "Credential::Installation(..)",
        })
    }
}

impl Credential {
    /// The `Authorization` header value for GitHub's REST API.
    pub fn authorization(&self) -> String {
        match self {
            Credential::Token(t) => format!("Bearer {t}"),
            Credential::Installation(t) => format!("token {t}"),
        }
    }

    /// The token itself: git fetches over HTTPS send it as the password of `x-access-token`.
    pub fn secret(&self) -> &str {
        match self {
            Credential::Token(t) | Credential::Installation(t) => t,
        }
    }
}

/// A thin client for GitHub's REST API: one connection pool, the caller's `Authorization`.
#[derive(Clone)]
pub struct Api {
    http: Http,
    base: String,
}

/// A response: status code and body text.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// GitHub's `message` field, else the start of the body, for error reports.
    pub fn message(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }
}

impl Api {
    /// A client for the API at `base` (`https://api.github.com`, or a GitHub Enterprise
    /// `https://HOST/api/v3`).
    pub fn new(base: &str) -> Result<Api, AuthError> {
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(AuthError::Api(format!(
                "github.api_url {base}: not an http:// or https:// URL"
            )));
        }
        Ok(Api {
            http: Http::new(Tls::default())?,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// Sends one request to `path` (below the base URL) and returns whatever GitHub answered;
    /// only a failure to get an answer is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Response, HttpError> {
        let mut headers = vec![
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ];
        if let Some(auth) = authorization {
            headers.push(("Authorization", auth));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let answer = self
            .http
            .send(
                method.as_str(),
                &format!("{}{path}", self.base),
                &headers,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await?;
        Ok(Response {
            status: answer.status,
            body: answer.text(),
        })
    }
}

/// Picks the credential for each repository: its own `[[repos]] token`, else the App's
/// installation token, else `[github] token`.
pub struct GitHubAuth {
    config: Arc<Config>,
    api: Api,
    app: Option<App>,
}

impl GitHubAuth {
    /// Reads the App's key when one is configured; errors name the config key to fix.
    pub fn new(config: Arc<Config>) -> Result<GitHubAuth, AuthError> {
        let api = Api::new(&config.github.api_url)?;
        let app = match (&config.github.app_id, &config.github.private_key_path) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(AuthError::Incomplete {
                    given: "app_id",
                    missing: "private_key_path",
                });
            }
            (None, Some(_)) => {
                return Err(AuthError::Incomplete {
                    given: "private_key_path",
                    missing: "app_id",
                });
            }
            (Some(id), Some(path)) => Some(App {
                id: id.clone(),
                key: read_key(path, id)?,
                installation_id: config.github.installation_id,
                api: api.clone(),
                installations: Mutex::new(HashMap::new()),
                tokens: tokio::sync::Mutex::new(HashMap::new()),
            }),
        };
        Ok(GitHubAuth { config, api, app })
    }

    /// The API client every GitHub request goes through.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Whether a GitHub App is configured.
    pub fn has_app(&self) -> bool {
        self.app.is_some()
    }

    /// The credential for `repo` (`owner/name`); `None` when nothing is configured.
    pub async fn credential(&self, repo: &str) -> Result<Option<Credential>, AuthError> {
        if let Some(t) = self.config.repo(repo).and_then(|r| r.token) {
            return Ok(Some(Credential::Token(t)));
        }
        if let Some(app) = &self.app {
            return app
                .token(repo)
                .await
                .map(|t| Some(Credential::Installation(t)));
        }
        Ok(self.config.github.token.clone().map(Credential::Token))
    }

    /// Drops a cached installation token GitHub refused (revoked, or the App was reinstalled), so
    /// the next request mints a new one.
    pub async fn forget(&self, credential: &Credential) {
        if let (Some(app), Credential::Installation(t)) = (&self.app, credential) {
            app.tokens.lock().await.retain(|_, c| &c.token != t);
            app.installations.lock().expect("installations").clear();
        }
    }
}

/// A GitHub App: its identity, its key, and the installation tokens it holds.
struct App {
    id: AppId,
    key: EncodingKey,
    installation_id: Option<u64>,
    api: Api,
    /// Repository (lower-cased `owner/name`) to installation id, once looked up.
    installations: Mutex<HashMap<String, u64>>,
    /// Installation id to its current token. Held across a lookup and a refresh, so concurrent
    /// requests wait for one exchange instead of making several.
    tokens: tokio::sync::Mutex<HashMap<u64, Cached>>,
}

struct Cached {
    token: String,
    /// Unix seconds.
    expires_at: u64,
}

impl App {
    async fn token(&self, repo: &str) -> Result<String, AuthError> {
        // One caller at a time looks up and exchanges; the others then find the result cached.
        let mut tokens = self.tokens.lock().await;
        let installation = match self.installation_id {
            Some(id) => id,
            None => self.installation_of(repo).await?,
        };
        let now = unix_now();
        if let Some(c) = tokens.get(&installation)
            && c.expires_at > now + REFRESH_MARGIN_SECS
        {
            return Ok(c.token.clone());
        }
        let fresh = self.exchange(installation, now).await;
        if fresh.is_err() {
            // The repository may have moved to another installation: look it up again next time.
            self.installations
                .lock()
                .expect("installations")
                .remove(&repo.to_ascii_lowercase());
        }
        let fresh = fresh?;
        let token = fresh.token.clone();
        tokens.insert(installation, fresh);
        Ok(token)
    }

    async fn installation_of(&self, repo: &str) -> Result<u64, AuthError> {
        let key = repo.to_ascii_lowercase();
        if let Some(id) = self.installations.lock().expect("installations").get(&key) {
            return Ok(*id);
        }
        let path = format!("/repos/{repo}/installation");
        let v = self.call(Method::GET, &path).await?;
        let id = v["id"].as_u64().ok_or_else(|| {
            AuthError::Api(format!("GET {path}: the answer has no installation id"))
        })?;
        self.installations
            .lock()
            .expect("installations")
            .insert(key, id);
        Ok(id)
    }

    async fn exchange(&self, installation: u64, now: u64) -> Result<Cached, AuthError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        let v = self.call(Method::POST, &path).await?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| AuthError::Api(format!("POST {path}: the answer has no token")))?;
        // A missing or unreadable expiry counts as "valid for the hour GitHub documents".
        let expires_at = v["expires_at"]
            .as_str()
            .and_then(parse_timestamp)
            .unwrap_or(now + 3600);
        Ok(Cached {
            token: token.to_string(),
            expires_at,
        })
    }

    /// A request signed with a fresh JWT; the JSON answer of a 2xx, else an error naming the
    /// request and GitHub's message.
    async fn call(&self, method: Method, path: &str) -> Result<Value, AuthError> {
        let jwt = self.jwt(unix_now())?;
        let r = self
            .api
            .send(method.clone(), path, Some(&format!("Bearer {jwt}")), None)
            .await
            .map_err(|e| AuthError::Api(format!("GitHub App: {e}")))?;
        if !(200..300).contains(&r.status) {
            let hint = match r.status {
                401 => " (check app_id and private_key_path, and this machine's clock)",
                404 if method == Method::GET => {
                    " (is the App installed on this repository? set installation_id otherwise)"
                }
                _ => "",
            };
            return Err(AuthError::Api(format!(
                "GitHub App: {method} {path}: HTTP {}: {}{hint}",
                r.status,
                r.message()
            )));
        }
        serde_json::from_str(&r.body)
            .map_err(|e| AuthError::Api(format!("GitHub App: {method} {path}: {e}")))
    }

    /// The App's JWT: RS256 over `{"iat","exp","iss"}`, backdated a minute, nine minutes long.
    fn jwt(&self, now: u64) -> Result<String, AuthError> {
        sign_jwt(&self.key, &self.id, now)
            .map_err(|e| AuthError::Api(format!("signing the GitHub App JWT failed: {e}")))
    }
}

/// The claims GitHub reads from an App's JWT.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a AppId,
}

fn sign_jwt(
    key: &EncodingKey,
    id: &AppId,
    now: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        iat: now.saturating_sub(JWT_BACKDATE_SECS),
        exp: now + JWT_LIFETIME_SECS,
        iss: id,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
}

/// Reads an RSA private key in PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or
/// PKCS#8 (`BEGIN PRIVATE KEY`), and signs a JWT with it once, so an unusable key is named at
/// start-up rather than at the first status.
fn read_key(path: &Path, id: &AppId) -> Result<EncodingKey, AuthError> {
    let err = |reason: String| AuthError::Key {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the GitHub App's private key can be read by other users; chmod 600 it");
        }
    }
    let key = EncodingKey::from_rsa_pem(&bytes).map_err(|e| {
        err(format!(
            "not a PEM RSA private key ({e}; GitHub App keys are RSA, `BEGIN RSA PRIVATE KEY`)"
        ))
    })?;
    sign_jwt(&key, id, unix_now()).map_err(|e| err(format!("not a usable RSA key: {e}")))?;
    Ok(key)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds of a UTC timestamp as GitHub writes them (RFC 3339: `2016-07-11T22:14:10Z`;
/// fractions of a second and a `+00:00` offset are accepted, other offsets are not).
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    if !t.offset().is_utc() {
        return None;
    }
    u64::try_from(t.unix_timestamp()).ok()
}

/// The UTC timestamp of unix seconds, as GitHub writes them (`2016-07-11T22:14:10Z`).
pub fn format_timestamp(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_and_write_as_github_writes_them() {
        assert_eq!(parse_timestamp("2016-07-11T22:14:10Z"), Some(1_468_275_250));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2000-02-29T12:00:00.123Z"),
            Some(951_825_600)
        );
        assert_eq!(
            parse_timestamp("2016-07-11T22:14:10+00:00"),
            Some(1_468_275_250)
        );
        assert_eq!(parse_timestamp("2016-07-11T22:14:10+02:00"), None);
        assert_eq!(parse_timestamp("2016-13-11T22:14:10Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(format_timestamp(1_468_275_250), "2016-07-11T22:14:10Z");
        assert_eq!(format_timestamp(951_825_600), "2000-02-29T12:00:00Z");
        for secs in [0, 59, 86_399, 86_400, 951_782_400, 4_102_444_800] {
            assert_eq!(parse_timestamp(&format_timestamp(secs)), Some(secs));
        }
    }

    fn config(text: &str) -> Arc<Config> {
        Arc::new(Config::parse(text).unwrap())
    }

    #[tokio::test]
    async fn an_app_needs_both_its_id_and_its_key() {
        let e = GitHubAuth::new(config("[github]\napp_id = 1\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("private_key_path"), "{e}");
        let e = GitHubAuth::new(config("[github]\nprivate_key_path = \"/k.pem\"\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("app_id"), "{e}");
    }

    #[tokio::test]
    async fn a_key_that_is_missing_or_not_rsa_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = GitHubAuth::new(config(&format!(
            "[github]\napp_id = 1\nprivate_key_path = \"{}\"\n",
            missing.display()
        )))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n",
        )
        .unwrap();
        let e = GitHubAuth::new(config(&format!(
            "[github]\napp_id = 1\nprivate_key_path = \"{}\"\n",
            garbage.display()
        )))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("garbage.pem") && e.contains("PEM"), "{e}");
    }

    #[tokio::test]
    async fn a_repositorys_own_token_wins_then_the_global_one() {
        let auth = GitHubAuth::new(config(
            "[github]\ntoken = \"global\"\n[[repos]]\nname = \"acme/app\"\ntoken = \"own\"\n[[repos]]\nname = \"acme/lib\"\n",
        ))
        .unwrap();
        assert_eq!(
            auth.credential("acme/app").await.unwrap(),
            Some(Credential::Token("own".into()))
        );
        assert_eq!(
            auth.credential("acme/lib").await.unwrap(),
            Some(Credential::Token("global".into()))
        );
        let none = GitHubAuth::new(config("")).unwrap();
        assert_eq!(none.credential("acme/app").await.unwrap(), None);
        assert_eq!(
            Credential::Installation("ghs_x".into()).authorization(),
            "token ghs_x"
        );
        assert_eq!(
            format!("{:?}", Credential::Token("secret".into())),
            "Credential::Token(..)"
        );
    }
}
