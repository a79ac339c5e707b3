//! The JSON API and the plain-text log: reads filtered by what the caller may read, cancel and
//! restart for push permission or an API token.

use super::access::{
    Caller, can_read, filter_builds, permission, readable_build, readable_job, readable_repos,
};
use super::session::check_csrf;
use super::{App, AppState, store_error, text};
use crate::store::{BuildFilter, BuiltBy, ChunkKind, Permission, StoreError};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

/// `GET /api/builds?repo=owner/name&branch=NAME&event=push|pull_request|tag|api|cron&limit=N`;
/// each filter left out (or empty) means any.
#[derive(Deserialize)]
pub(super) struct BuildsQuery {
    repo: Option<String>,
    branch: Option<String>,
    event: Option<String>,
    limit: Option<i64>,
}

/// The filters of a builds query, or why the event is not one (for a `400`).
pub(super) fn build_filter(
    repo: Option<String>,
    branch: Option<String>,
    event: Option<&str>,
) -> Result<BuildFilter, String> {
    let event = match event.filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => Some(BuiltBy::parse(e).ok_or_else(|| {
            let names: Vec<&str> = BuiltBy::ALL.iter().map(|b| b.as_str()).collect();
            format!(
                "event {e:?} is not one of {} (leave it out for any)\n",
                names.join(", ")
            )
        })?),
    };
    Ok(BuildFilter {
        repo,
        branch: branch.filter(|b| !b.is_empty()),
        event,
    })
}

pub(super) async fn repos(State(app): AppState, caller: Caller) -> Response {
    let readable = match readable_repos(&app, &caller).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    match app.store.repos().await {
        Ok(r) => Json(json!({"repos": filter_builds(r, &readable)})).into_response(),
        Err(e) => store_error(e),
    }
}

pub(super) async fn builds(
    State(app): AppState,
    caller: Caller,
    Query(q): Query<BuildsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let filter = match build_filter(q.repo.clone(), q.branch, q.event.as_deref()) {
        Ok(f) => f,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let listed = match &q.repo {
        Some(repo) => match can_read(&app, &caller, repo).await {
            Ok(true) => app.store.builds(filter, limit).await,
            Ok(false) => return text(StatusCode::NOT_FOUND, "no such repository\n"),
            Err(e) => return store_error(e),
        },
        None => match readable_repos(&app, &caller).await {
            Ok(None) => app.store.builds(filter, limit).await,
            Ok(Some(names)) => app.store.builds_of(names, filter, limit).await,
            Err(e) => return store_error(e),
        },
    };
    match listed {
        Ok(b) => Json(json!({"builds": b})).into_response(),
        Err(e) => store_error(e),
    }
}

/// A build with its jobs and its notifications' outbox rows (tries, whether done, the last
/// error), so a team can see why an alert did not arrive. Secure values stay encrypted, and
/// errors never hold a decrypted target (the sender scrubs them).
pub(super) async fn build(State(app): AppState, caller: Caller, Path(id): Path<i64>) -> Response {
    let (build, jobs) = match readable_build(&app, &caller, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match app.store.notifications(id).await {
        Ok(notifications) => {
            Json(json!({"build": build, "jobs": jobs, "notifications": notifications}))
                .into_response()
        }
        Err(e) => store_error(e),
    }
}

pub(super) async fn job(State(app): AppState, caller: Caller, Path(id): Path<i64>) -> Response {
    match readable_job(&app, &caller, id).await {
        Ok((job, _)) => Json(json!({"job": job})).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct LogQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

pub(super) async fn log(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Response {
    let job = match readable_job(&app, &caller, id).await {
        Ok((j, _)) => j,
        Err(r) => return r,
    };
    match app
        .store
        .log(
            id,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await
    {
        Ok(chunks) => Json(json!({"state": job.state, "chunks": chunks})).into_response(),
        Err(e) => store_error(e),
    }
}

pub(super) async fn log_text(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = readable_job(&app, &caller, id).await {
        return r;
    }
    let mut out = String::new();
    let mut after = 0;
    loop {
        match app.store.log(id, after, 5000).await {
            Ok(chunks) if chunks.is_empty() => break,
            Ok(chunks) => {
                for c in &chunks {
                    match c.kind {
                        ChunkKind::Output => out.push_str(&c.data),
                        ChunkKind::Note => out.push_str(&format!("[slipway] {}\n", c.data)),
                        _ => {}
                    }
                }
                after = chunks.last().map(|c| c.seq).unwrap_or(after);
            }
            Err(e) => return store_error(e),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response()
}

/// What a caller may do to a build: `Ok(())` with push permission; else the answer to give
/// (404 when they may not even read it).
async fn may_act(app: &App, caller: &Caller, id: i64) -> Result<(), Response> {
    let (b, _) = readable_build(app, caller, id).await?;
    match permission(app, caller, &b.repo, Permission::Push).await {
        Ok(Permission::Push) => Ok(()),
        Ok(_) => Err(text(
            StatusCode::FORBIDDEN,
            "push permission on the repository is needed\n",
        )),
        Err(e) => Err(store_error(e)),
    }
}

async fn cancel(app: &App, id: i64) -> Result<bool, StoreError> {
    let changed = app.store.cancel_build(id, "canceled by a user").await?;
    if changed {
        app.engine.stop_builds(&[id]);
        app.engine.outbox.notify_one();
    }
    Ok(changed)
}

async fn restart(app: &App, id: i64) -> Result<Option<i64>, StoreError> {
    let Some((new, canceled)) = app.store.restart_build(id, app.config.auto_cancel).await? else {
        return Ok(None);
    };
    app.engine.stop_builds(&canceled);
    app.engine.work.notify_one();
    app.engine.outbox.notify_one();
    Ok(Some(new))
}

/// An API call that changes something: a bearer token, or a session with its CSRF token in
/// `X-CSRF-Token`.
async fn api_action(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    id: i64,
) -> Result<(), Response> {
    if caller.login().is_none() {
        return Err(text(
            StatusCode::UNAUTHORIZED,
            "a valid API token or a signed-in session is required\n",
        ));
    }
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    check_csrf(app, caller, headers, given).map_err(IntoResponse::into_response)?;
    may_act(app, caller, id).await
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    csrf: Option<String>,
}

/// A form button that changes something: a signed-in session whose CSRF token the form carries.
async fn ui_action(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    form: &ActionForm,
    id: i64,
) -> Result<(), Response> {
    if caller.login().is_none() {
        return Err(Redirect::to("/login").into_response());
    }
    check_csrf(app, caller, headers, form.csrf.as_deref()).map_err(IntoResponse::into_response)?;
    may_act(app, caller, id).await
}

/// What cancelling or restarting a build did.
pub(super) enum Acted {
    /// Cancelled; false when it had already ended.
    Canceled(bool),
    /// Started anew as this build; `None` when there was no such build.
    Restarted(Option<i64>),
}

/// Cancelling or restarting a build: each has one handler for the API and one for the UI's
/// buttons, which differ only in how they ask and answer.
pub(super) trait BuildAction {
    fn run(app: &App, id: i64) -> impl Future<Output = Result<Acted, StoreError>> + Send;
}

pub(super) struct Cancel;

impl BuildAction for Cancel {
    async fn run(app: &App, id: i64) -> Result<Acted, StoreError> {
        cancel(app, id).await.map(Acted::Canceled)
    }
}

pub(super) struct Restart;

impl BuildAction for Restart {
    async fn run(app: &App, id: i64) -> Result<Acted, StoreError> {
        restart(app, id).await.map(Acted::Restarted)
    }
}

/// `POST /api/builds/{id}/cancel` and `…/restart`: JSON answers.
pub(super) async fn api_act<A: BuildAction>(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = api_action(&app, &caller, &headers, id).await {
        return r;
    }
    match A::run(&app, id).await {
        Ok(Acted::Canceled(changed)) => Json(json!({"canceled": changed})).into_response(),
        Ok(Acted::Restarted(Some(new))) => {
            (StatusCode::CREATED, Json(json!({"build": new}))).into_response()
        }
        Ok(Acted::Restarted(None)) => text(StatusCode::NOT_FOUND, "no such build\n"),
        Err(e) => store_error(e),
    }
}

/// The build page's buttons: back to the build (the new one after a restart).
pub(super) async fn ui_act<A: BuildAction>(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<ActionForm>,
) -> Response {
    if let Err(r) = ui_action(&app, &caller, &headers, &form, id).await {
        return r;
    }
    let shown = match A::run(&app, id).await {
        Ok(Acted::Canceled(_)) => id,
        Ok(Acted::Restarted(Some(new))) => new,
        Ok(Acted::Restarted(None)) => return text(StatusCode::NOT_FOUND, "no such build\n"),
        Err(e) => return store_error(e),
    };
    Redirect::to(&format!("/builds/{shown}")).into_response()
}
