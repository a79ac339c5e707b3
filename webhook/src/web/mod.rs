//! HTTP: the webhook endpoint, the JSON API, the server-rendered UI, live logs over server-sent
//! events, badges, sign-in, `/healthz` and `/metrics`; and the listener they are served by.
//!
//! Who may read and do what is decided in [`access`]; every page and API answer goes through it.

pub mod access;
pub mod ansi;
mod api;
pub mod limits;
pub mod listen;
mod live;
pub mod session;
mod ui;

use crate::config::Config;
use crate::event::{self, Event};
use crate::metrics::Metrics;
use crate::signature;
use crate::store::{Delivery, DeliveryAction, Recorded, Store, StoreError};
use crate::worker::Engine;
use access::Caller;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use sha2::Digest as _;
use std::sync::Arc;

/// Shared state of every handler.
pub struct App {
    pub store: Arc<dyn Store>,
    /// Workers' shared state (cancelling, live logs, wake-ups).
    pub engine: Arc<Engine>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The webhook secret in force.
    pub secret: Vec<u8>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The URL users reach the UI at (OAuth callbacks, `Origin` checks, `Secure` cookies).
    pub public_url: String,
    /// Sessions and permissions remembered in memory.
    pub cache: access::AccessCache,
    /// Per-address limits.
    pub limits: limits::Limits,
}

type AppState = State<Arc<App>>;

/// The whole public HTTP surface.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    Router::new()
        .route(
            "/webhooks/github",
            post(webhook).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_with_token))
        .route("/api/repos", get(api::repos))
        .route("/api/builds", get(api::builds))
        .route("/api/builds/{id}", get(api::build))
        .route("/api/builds/{id}/cancel", post(api::api_act::<api::Cancel>))
        .route(
            "/api/builds/{id}/restart",
            post(api::api_act::<api::Restart>),
        )
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/jobs/{id}/log", get(api::log))
        .route("/", get(ui::repos))
        .route("/repos/{owner}/{name}", get(ui::builds))
        .route("/builds/{id}", get(ui::build))
        .route("/builds/{id}/cancel", post(api::ui_act::<api::Cancel>))
        .route("/builds/{id}/restart", post(api::ui_act::<api::Restart>))
        .route("/jobs/{id}", get(ui::job))
        .route("/jobs/{id}/events", get(live::job_events))
        .route("/jobs/{id}/log.txt", get(api::log_text))
        .route(
            "/login",
            get(session::login_page).post(session::login_with_token),
        )
        .route("/login/github", get(session::github_start))
        .route("/login/github/callback", get(session::github_callback))
        .route("/logout", post(session::logout))
        .route("/badge/{owner}/{file}", get(ui::badge))
        .route("/static/{file}", get(ui::asset))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            read_body_in_time,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// The metrics listener's surface: `/metrics` and `/healthz`, with no authentication (bind it to
/// an address only the monitoring can reach).
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Headers that keep pages from being framed, sniffed or made to run injected script: the pages
/// load their only script and style from `/static/`, so the policy allows no inline code.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    resp
}

/// Reads a request's body under `[http] body_timeout_seconds`, so a client cannot hold a
/// handler by sending its body slowly.
async fn read_body_in_time(State(app): AppState, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let secs = app.config.http.body_timeout_seconds;
    let limit = app.config.max_body_bytes;
    match tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Err(_) => text(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {secs} s\n"),
        ),
        Ok(Err(_)) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {limit} bytes (max_body_bytes)\n"),
        ),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
    }
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
    let (event, visibility) = match event::parse_delivery(kind, &body) {
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
        Event::Rerun { repo, rerun } => (
            DeliveryAction::Rerun {
                repo,
                rerun,
                auto_cancel: app.config.auto_cancel,
            },
            "rerun".to_string(),
        ),
        Event::Ignored { why, .. } => (DeliveryAction::Nothing, why),
        Event::Ping => unreachable!("answered above"),
    };
    let recorded = app
        .store
        .record_delivery(Delivery {
            id: delivery.to_string(),
            event: kind.to_string(),
            body_sha256: sha2::Sha256::digest(&body).into(),
            visibility,
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
        Ok(c) => {
            let mut body = app.metrics.render(&c);
            body.push_str(&format!(
                "# HELP slipway_live_streams Live-log streams open now.\n\
                 # TYPE slipway_live_streams gauge\nslipway_live_streams {}\n",
                app.limits.open_streams()
            ));
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// `/metrics` on the public listener: only with an API token (use `metrics_listen` for a
/// scraper on a private address).
async fn metrics_with_token(state: AppState, caller: Caller) -> Response {
    if !caller.is_admin() {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    metrics(state).await
}
