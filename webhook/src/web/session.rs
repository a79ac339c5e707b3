//! Signing in and out: GitHub's OAuth web flow (an OAuth App's or a GitHub App's user
//! authorization, same endpoints), sign-in with an API token, sessions in the store behind an
//! `HttpOnly` cookie, and the CSRF checks of state-changing browser requests.

use super::access::{self, Caller, SESSION_COOKIE, constant_time_eq, cookie, hash_id};
use super::limits::Kind;
use super::{App, AppState, store_error, text, ui};
use crate::store::{Permission, Session, random_token};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use slipway_http::{Http, Tls};
use slipway_secrets::Secret;
use std::sync::OnceLock;
use std::time::Duration;

/// The cookie holding the OAuth `state` between the redirect to GitHub and the way back.
const STATE_COOKIE: &str = "slipway_oauth_state";

/// The OAuth scope asked for: reading a private repository's permissions needs `repo` for an
/// OAuth App (a GitHub App's user token ignores scopes and gets the App's permissions).
const SCOPE: &str = "repo";

fn secure(app: &App) -> &'static str {
    if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie(app: &App, value: &str, max_age: u64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        secure(app)
    )
}

/// The scheme, host and port of the public URL, as browsers send it in `Origin`.
fn public_origin(app: &App) -> &str {
    let url = app.public_url.as_str();
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Why a state-changing request was refused as possibly forged (403).
#[derive(Debug, Clone, Copy)]
pub struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        text(StatusCode::FORBIDDEN, format!("{}\n", self.0))
    }
}

/// Refuses a state-changing browser request from another site: its `Origin`, when sent, must be
/// this server's, and a session's request must carry the session's CSRF token.
pub fn check_csrf(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    given: Option<&str>,
) -> Result<(), Refused> {
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.as_bytes() != public_origin(app).as_bytes()
    {
        return Err(Refused(
            "cross-site request refused (its Origin is not this server's public_url)",
        ));
    }
    if let Some(s) = &caller.session {
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), s.csrf.expose().as_bytes()));
        if !ok {
            return Err(Refused("missing or wrong CSRF token; reload the page"));
        }
    }
    Ok(())
}

async fn open_session(
    app: &App,
    login: String,
    github_token: Option<Secret<String>>,
) -> Result<String, Response> {
    let id = random_token().map_err(store_error)?;
    let csrf = random_token().map_err(store_error)?;
    let days = app.config.sessions.days.max(1);
    let session = Session {
        admin: github_token.is_none(),
        login,
        github_token,
        csrf: Secret::new(csrf),
        expires_at: crate::store::now_ms() + (days * 86_400_000) as i64,
    };
    app.store
        .create_session(hash_id(&id), session)
        .await
        .map_err(store_error)?;
    Ok(session_cookie(app, &id, days * 86_400))
}

/// The sign-in form.
#[derive(Deserialize)]
pub(super) struct TokenForm {
    token: String,
}

/// `POST /login`: sign in with an API token (an admin session).
pub(super) async fn login_with_token(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    axum::Form(form): axum::Form<TokenForm>,
) -> Response {
    if let Err(r) = check_csrf(&app, &caller, &headers, None) {
        return r.into_response();
    }
    if !app.limits.attempt(Kind::SignIn, caller.addr)
        || app.limits.blocked(Kind::FailedToken, caller.addr)
    {
        return access::too_many();
    }
    if !access::is_api_token(&app, &form.token) {
        app.limits.hit(Kind::FailedToken, caller.addr);
        return text(StatusCode::UNAUTHORIZED, "unknown token\n");
    }
    match open_session(&app, "api-token".into(), None).await {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(r) => r,
    }
}

/// The sign-out form.
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /logout`.
pub(super) async fn logout(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&app, &caller, &headers, form.csrf.as_deref()) {
        return r.into_response();
    }
    if let Some(s) = &caller.session {
        app.cache.forget_session(&s.id_hash);
        if let Err(e) = app.store.delete_session(s.id_hash).await {
            return store_error(e);
        }
    }
    (
        [(header::SET_COOKIE, session_cookie(&app, "", 0))],
        Redirect::to("/"),
    )
        .into_response()
}

fn query_escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn callback_url(app: &App) -> String {
    format!(
        "{}/login/github/callback",
        app.public_url.trim_end_matches('/')
    )
}

/// `GET /login/github`: off to GitHub with a fresh `state`, remembered in a short cookie.
pub(super) async fn github_start(State(app): AppState, caller: Caller) -> Response {
    let Some(client_id) = &app.config.github.client_id else {
        return text(
            StatusCode::NOT_FOUND,
            "sign-in with GitHub is not configured ([github] client_id, client_secret)\n",
        );
    };
    if !app.limits.attempt(Kind::SignIn, caller.addr) {
        return access::too_many();
    }
    let state = match random_token() {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let location = format!(
        "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope={SCOPE}&state={state}",
        app.config.github.web_url.trim_end_matches('/'),
        query_escape(client_id),
        query_escape(&callback_url(&app)),
    );
    let cookie = format!(
        "{STATE_COOKIE}={state}; Path=/login/github; HttpOnly; SameSite=Lax; Max-Age=600{}",
        secure(&app)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&location)).into_response()
}

/// GitHub's redirect back.
#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/github/callback`: checks `state`, trades the code for the user's token, asks
/// GitHub who they are, and opens a session.
pub(super) async fn github_callback(
    State(app): AppState,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let clear_state = format!("{STATE_COOKIE}=; Path=/login/github; HttpOnly; Max-Age=0");
    let expected = cookie(&headers, STATE_COOKIE).unwrap_or("");
    let state_ok = q.state.as_deref().is_some_and(|s| {
        !expected.is_empty() && constant_time_eq(s.as_bytes(), expected.as_bytes())
    });
    if !state_ok {
        return text(
            StatusCode::BAD_REQUEST,
            "sign-in refused: the state does not match this browser's (start again at /login)\n",
        );
    }
    if let Some(e) = q.error {
        return text(StatusCode::FORBIDDEN, format!("GitHub refused: {e}\n"));
    }
    let Some(code) = q.code else {
        return text(StatusCode::BAD_REQUEST, "GitHub sent no code\n");
    };
    let user = match exchange(&app, code).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "GitHub sign-in failed");
            return text(StatusCode::BAD_GATEWAY, format!("sign-in failed: {e}\n"));
        }
    };
    tracing::info!(login = %user.0, "signed in with GitHub");
    match open_session(&app, user.0, Some(user.1)).await {
        Ok(session) => {
            let mut r = Redirect::to("/").into_response();
            let h = r.headers_mut();
            for c in [session, clear_state] {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(r) => r,
    }
}

/// `GET /login`.
pub(super) async fn login_page(State(app): AppState, caller: Caller) -> Response {
    let body = match (&caller.session, caller.login()) {
        (Some(s), Some(login)) => format!(
            "<h1>Signed in</h1><p>as <b>{}</b></p><form method=\"post\" action=\"/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Sign out</button></form>",
            super::ansi::escape(login),
            s.csrf.expose()
        ),
        _ => {
            let github = if app.config.github.client_id.is_some() {
                "<p><a class=\"button\" href=\"/login/github\">Sign in with GitHub</a></p>"
            } else {
                ""
            };
            format!(
                "<h1>Sign in</h1>{github}<form method=\"post\" action=\"/login\">\
                 <input type=\"password\" name=\"token\" placeholder=\"API token\"> <button>Sign in with a token</button></form>"
            )
        }
    };
    ui::page("Sign in", &body, false)
}

/// The client for sign-in calls to GitHub, made once.
fn github() -> Result<&'static Http, String> {
    static HTTP: OnceLock<Result<Http, String>> = OnceLock::new();
    HTTP.get_or_init(|| {
        Http::new(Tls::default())
            .map(|h| h.timeout(Duration::from_secs(15)))
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A GitHub call: status and JSON body.
async fn call(
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<(u16, Value), String> {
    let resp = github()?
        .send(method, &url, headers, body)
        .await
        .map_err(|e| e.to_string())?;
    Ok((resp.status, resp.json()))
}

/// `GET path` of GitHub's API with the user's token.
async fn api_get(app: &App, path: &str, token: &str) -> Result<(u16, Value), String> {
    let url = format!("{}{path}", app.config.github.api_url.trim_end_matches('/'));
    let authorization = format!("Bearer {token}");
    call(
        "GET",
        url,
        &[
            ("Authorization", &authorization),
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ],
        None,
    )
    .await
}

/// Trades an OAuth code for the user's token and login.
async fn exchange(app: &App, code: String) -> Result<(String, Secret<String>), String> {
    let gh = &app.config.github;
    let (Some(id), Some(secret)) = (&gh.client_id, &gh.client_secret) else {
        return Err("[github] client_id and client_secret are both needed".into());
    };
    let form = format!(
        "client_id={}&client_secret={}&code={}&redirect_uri={}",
        query_escape(id),
        query_escape(secret),
        query_escape(&code),
        query_escape(&callback_url(app))
    );
    let (status, v) = call(
        "POST",
        format!(
            "{}/login/oauth/access_token",
            gh.web_url.trim_end_matches('/')
        ),
        &[
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(form.into_bytes()),
    )
    .await?;
    let Some(token) = v["access_token"].as_str().filter(|t| !t.is_empty()) else {
        let why = v["error_description"]
            .as_str()
            .or(v["error"].as_str())
            .unwrap_or("no access_token in the answer");
        return Err(format!("GitHub answered {status}: {why}"));
    };
    let token = Secret::new(token.to_string());
    let (status, user) = api_get(app, "/user", token.expose()).await?;
    match user["login"].as_str() {
        Some(login) if status == 200 => Ok((login.to_string(), token)),
        _ => Err(format!("GET /user answered {status}")),
    }
}

/// What GitHub says the token's user may do with `repo` (`GET /repos/{owner}/{name}`): no such
/// repository, or none visible to them, is [`Permission::None`].
pub async fn github_permission(
    app: &App,
    token: &Secret<String>,
    repo: &str,
) -> Result<Permission, String> {
    let (status, v) = api_get(app, &format!("/repos/{repo}"), token.expose()).await?;
    match status {
        200 => {
            let p = &v["permissions"];
            let has = |k: &str| p[k].as_bool() == Some(true);
            Ok(if has("admin") || has("maintain") || has("push") {
                Permission::Push
            } else if has("pull") || has("triage") {
                Permission::Pull
            } else {
                Permission::None
            })
        }
        401 | 403 | 404 => Ok(Permission::None),
        other => Err(format!("GET /repos/{repo} answered {other}")),
    }
}
