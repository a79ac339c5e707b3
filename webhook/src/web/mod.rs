//! HTTP: the webhook endpoint, the JSON API, the server-rendered UI, live logs over server-sent
//! events, badges, `/healthz` and `/metrics`.

pub mod ansi;
mod ui;

use crate::config::Config;
use crate::event::{self, Event};
use crate::metrics::Metrics;
use crate::signature;
use crate::store::{Delivery, DeliveryAction, Recorded, Store, StoreError};
use crate::worker::{Engine, LiveEvent};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;

/// Shared state of every handler.
pub struct App {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Workers' shared state (cancelling, live logs, wake-ups).
    pub engine: Arc<Engine>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The webhook secret in force.
    pub secret: Vec<u8>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

type AppState = State<Arc<App>>;

/// The whole HTTP surface.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    Router::new()
        .route(
            "/webhooks/github",
            post(webhook).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/repos", get(api_repos))
        .route("/api/builds", get(api_builds))
        .route("/api/builds/{id}", get(api_build))
        .route("/api/builds/{id}/cancel", post(api_cancel))
        .route("/api/builds/{id}/restart", post(api_restart))
        .route("/api/jobs/{id}", get(api_job))
        .route("/api/jobs/{id}/log", get(api_log))
        .route("/", get(ui::repos))
        .route("/repos/{owner}/{name}", get(ui::builds))
        .route("/builds/{id}", get(ui::build))
        .route("/builds/{id}/cancel", post(ui_cancel))
        .route("/builds/{id}/restart", post(ui_restart))
        .route("/jobs/{id}", get(ui::job))
        .route("/jobs/{id}/events", get(job_events))
        .route("/jobs/{id}/log.txt", get(log_text))
        .route("/login", get(ui::login).post(ui_login))
        .route("/badge/{owner}/{file}", get(ui::badge))
        .with_state(app)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

fn store_error(e: StoreError) -> Response {
    tracing::error!(error = %e, "store");
    text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
}

async fn webhook(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    // The signature is checked before anything else is looked at.
    let sig = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    if let Err(e) = signature::verify(&app.secret, &body, sig) {
        app.metrics.inc(&app.metrics.signature_failures);
        tracing::warn!(reason = %e, "webhook refused");
        return text(StatusCode::UNAUTHORIZED, format!("{e}\n"));
    }
    let Some(kind) = headers.get("x-github-event").and_then(|v| v.to_str().ok()) else {
        return text(StatusCode::BAD_REQUEST, "missing X-GitHub-Event\n");
    };
    let Some(delivery) = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
    else {
        return text(StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery\n");
    };
    if delivery.is_empty() || delivery.len() > 200 {
        return text(StatusCode::BAD_REQUEST, "invalid X-GitHub-Delivery\n");
    }
    let event = match event::parse(kind, &body) {
        Ok(e) => e,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if let Event::Ping = event {
        return (StatusCode::OK, Json(json!({"ok": true, "event": "ping"}))).into_response();
    }
    if let Some(repo) = event.repo()
        && app.config.repo(repo).is_none()
    {
        return text(
            StatusCode::NOT_FOUND,
            format!("{repo} is not served here\n"),
        );
    }
    let (action, note) = match event {
        Event::Build(build) => (
            DeliveryAction::Build {
                build,
                auto_cancel: app.config.auto_cancel,
            },
            "build".to_string(),
        ),
        Event::ClosePullRequest { repo, number } => (
            DeliveryAction::ClosePullRequest { repo, number },
            "cancel".to_string(),
        ),
        Event::Ignored { why, .. } => (DeliveryAction::Nothing, why),
        Event::Ping => unreachable!("answered above"),
    };
    let recorded = app
        .store
        .record_delivery(Delivery {
            id: delivery.to_string(),
            event: kind.to_string(),
            action,
        })
        .await;
    match recorded {
        Err(e) => store_error(e),
        Ok(Recorded::Duplicate) => {
            app.metrics.inc(&app.metrics.deliveries_duplicate);
            (StatusCode::OK, Json(json!({"duplicate": true}))).into_response()
        }
        Ok(Recorded::Accepted { build, canceled }) => {
            app.metrics.inc(&app.metrics.deliveries_accepted);
            if !canceled.is_empty() {
                app.engine.stop_builds(&canceled);
            }
            app.engine.work.notify_one();
            app.engine.outbox.notify_one();
            tracing::info!(
                delivery,
                event = kind,
                ?build,
                ?canceled,
                "delivery accepted"
            );
            (
                StatusCode::ACCEPTED,
                Json(json!({"build": build, "canceled": canceled, "note": note})),
            )
                .into_response()
        }
    }
}

async fn healthz(State(app): AppState) -> Response {
    match app.store.counts().await {
        Ok(_) => text(StatusCode::OK, "ok\n"),
        Err(e) => store_error(e),
    }
}

async fn metrics(State(app): AppState) -> Response {
    match app.store.counts().await {
        Ok(c) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            app.metrics.render(&c),
        )
            .into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct BuildsQuery {
    repo: Option<String>,
    limit: Option<i64>,
}

async fn api_repos(State(app): AppState) -> Response {
    match app.store.repos().await {
        Ok(r) => Json(json!({"repos": r})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn api_builds(State(app): AppState, Query(q): Query<BuildsQuery>) -> Response {
    match app
        .store
        .builds(q.repo.as_deref(), q.limit.unwrap_or(50).clamp(1, 1000))
        .await
    {
        Ok(b) => Json(json!({"builds": b})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn api_build(State(app): AppState, Path(id): Path<i64>) -> Response {
    match app.store.build(id).await {
        Ok(Some((build, jobs))) => Json(json!({"build": build, "jobs": jobs})).into_response(),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such build\n"),
        Err(e) => store_error(e),
    }
}

async fn api_job(State(app): AppState, Path(id): Path<i64>) -> Response {
    match app.store.job(id).await {
        Ok(Some(job)) => Json(json!({"job": job})).into_response(),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such job\n"),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn api_log(State(app): AppState, Path(id): Path<i64>, Query(q): Query<LogQuery>) -> Response {
    let job = match app.store.job(id).await {
        Ok(Some(j)) => j,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no such job\n"),
        Err(e) => return store_error(e),
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

async fn log_text(State(app): AppState, Path(id): Path<i64>) -> Response {
    let mut out = String::new();
    let mut after = 0;
    loop {
        match app.store.log(id, after, 5000).await {
            Ok(chunks) if chunks.is_empty() => break,
            Ok(chunks) => {
                for c in &chunks {
                    match c.kind {
                        crate::store::ChunkKind::Output => out.push_str(&c.data),
                        crate::store::ChunkKind::Note => {
                            out.push_str(&format!("[slipway] {}\n", c.data))
                        }
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

/// Finds the API token in `Authorization: Bearer` or the UI's cookie.
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .filter_map(|kv| kv.trim().strip_prefix("slipway_token="))
                .next()
                .map(str::to_string)
        });
    let Some(given) = bearer.or(cookie) else {
        return false;
    };
    app.config
        .api_tokens
        .iter()
        .any(|t| !t.is_empty() && constant_time_eq(t.as_bytes(), given.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

async fn api_cancel(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&app, &headers) {
        return text(StatusCode::UNAUTHORIZED, "a valid API token is required\n");
    }
    match cancel(&app, id).await {
        Ok(changed) => Json(json!({"canceled": changed})).into_response(),
        Err(e) => store_error(e),
    }
}

async fn api_restart(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&app, &headers) {
        return text(StatusCode::UNAUTHORIZED, "a valid API token is required\n");
    }
    match restart(&app, id).await {
        Ok(Some(new)) => (StatusCode::CREATED, Json(json!({"build": new}))).into_response(),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such build\n"),
        Err(e) => store_error(e),
    }
}

async fn ui_cancel(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&app, &headers) {
        return Redirect::to("/login").into_response();
    }
    match cancel(&app, id).await {
        Ok(_) => Redirect::to(&format!("/builds/{id}")).into_response(),
        Err(e) => store_error(e),
    }
}

async fn ui_restart(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&app, &headers) {
        return Redirect::to("/login").into_response();
    }
    match restart(&app, id).await {
        Ok(Some(new)) => Redirect::to(&format!("/builds/{new}")).into_response(),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such build\n"),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn ui_login(State(app): AppState, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let ok = app
        .config
        .api_tokens
        .iter()
        .any(|t| !t.is_empty() && constant_time_eq(t.as_bytes(), form.token.as_bytes()));
    if !ok {
        return text(StatusCode::UNAUTHORIZED, "unknown token\n");
    }
    let cookie = format!(
        "slipway_token={}; Path=/; HttpOnly; SameSite=Strict",
        form.token.replace([';', ' ', '\n', '\r'], "")
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// One chunk as an SSE event. Output goes through the connection's converter, so a colour or an
/// escape sequence that spans chunks renders as one; every event's `html` is balanced on its own.
fn chunk_event(c: &crate::store::LogChunk, colours: &mut ansi::AnsiHtml) -> SseEvent {
    let html = match c.kind {
        crate::store::ChunkKind::Output => colours.push(&c.data),
        _ => ansi::escape(&c.data),
    };
    SseEvent::default()
        .event("chunk")
        .id(c.seq.to_string())
        .data(json!({"seq": c.seq, "kind": c.kind, "data": c.data, "html": html}).to_string())
}

/// Live log: the stored chunks first, then chunks as they are produced, then `end`.
async fn job_events(State(app): AppState, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(256);
    tokio::spawn(async move {
        let (mut live, unstored) = app.engine.hub.subscribe(id);
        let mut last = after;
        let backlog = |last: i64| {
            let app = app.clone();
            async move { app.store.log(id, last, 2000).await }
        };
        // A resumed stream (`Last-Event-ID`) continues in the colours the log had there.
        let mut colours = ansi::AnsiHtml::new();
        let mut seen = 0;
        while seen < after {
            match backlog(seen).await {
                Ok(chunks) if !chunks.is_empty() => {
                    for c in chunks.iter().take_while(|c| c.seq <= after) {
                        if c.kind == crate::store::ChunkKind::Output {
                            colours.push(&c.data);
                        }
                    }
                    seen = chunks.last().map(|c| c.seq).unwrap_or(after);
                }
                _ => break,
            }
        }
        loop {
            match backlog(last).await {
                Ok(chunks) if !chunks.is_empty() => {
                    for c in chunks {
                        last = c.seq;
                        if tx.send(chunk_event(&c, &mut colours)).await.is_err() {
                            return;
                        }
                    }
                }
                _ => break,
            }
        }
        // Sent live before this viewer came, stored after it read the store.
        for c in unstored {
            if c.seq > last {
                last = c.seq;
                if tx.send(chunk_event(&c, &mut colours)).await.is_err() {
                    return;
                }
            }
        }
        let finished = matches!(app.store.job(id).await, Ok(Some(j)) if j.state.is_final());
        let mut ended = finished;
        while !ended {
            match live.recv().await {
                Ok(LiveEvent::Chunk(c)) => {
                    if c.seq > last {
                        last = c.seq;
                        if tx.send(chunk_event(&c, &mut colours)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(LiveEvent::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    ended = true
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from the store, page by page, then from what is not stored yet.
                    loop {
                        let stored = backlog(last).await.unwrap_or_default();
                        if stored.is_empty() {
                            break;
                        }
                        for c in stored {
                            last = c.seq;
                            if tx.send(chunk_event(&c, &mut colours)).await.is_err() {
                                return;
                            }
                        }
                    }
                    for c in app.engine.hub.unstored(id) {
                        if c.seq > last {
                            last = c.seq;
                            if tx.send(chunk_event(&c, &mut colours)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
        // Whatever was stored after the last live chunk (the final flush).
        while let Ok(chunks) = backlog(last).await {
            if chunks.is_empty() {
                break;
            }
            for c in chunks {
                last = c.seq;
                let _ = tx.send(chunk_event(&c, &mut colours)).await;
            }
        }
        drop(live);
        app.engine.hub.release(id);
        let _ = tx.send(SseEvent::default().event("end").data("end")).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
