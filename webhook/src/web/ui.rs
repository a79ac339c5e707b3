//! Server-rendered pages: repositories → builds → a build (stages and the jobs matrix) → a job
//! (its live log). No build step; the only script is the job page's log follower, served from
//! `/static/` like the style sheet.

use super::access::{
    Caller, can_read, constant_time_eq, filter_builds, permission, readable_build, readable_job,
    readable_repos,
};
use super::ansi::escape;
use super::{App, AppState, store_error, text};
use crate::store::{Build, BuildState, Job, JobState, Millis, Permission};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;

const STYLE: &str = include_str!("static/slipway.css");
const FOLLOW_JS: &str = include_str!("static/follow.js");

/// `GET /static/{file}`: the pages' only style sheet and script, so the content security policy
/// needs no inline code.
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (kind, body) = match file.as_str() {
        "slipway.css" => ("text/css; charset=utf-8", STYLE),
        "follow.js" => ("text/javascript; charset=utf-8", FOLLOW_JS),
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

pub(super) fn page(title: &str, body: &str, refresh: bool) -> Response {
    let meta = if refresh {
        "<meta http-equiv=\"refresh\" content=\"5\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Slipway</title>{meta}<link rel=\"stylesheet\" href=\"/static/slipway.css\"></head>\
         <body><header><a href=\"/\">Slipway</a><a class=\"signin\" href=\"/login\">Account</a></header><main>{body}</main></body></html>",
        t = escape(title)
    ))
    .into_response()
}

fn badge_state(state: BuildState) -> String {
    format!("<span class=\"s {0}\">{0}</span>", state.as_str())
}

/// A job's state badge; a job not run here says so, with the reason on hover.
fn job_state(j: &Job) -> String {
    match j.state {
        JobState::NotRun => format!(
            "<span class=\"s not_run\" title=\"{}\">not run here</span>",
            escape(j.reason.as_deref().unwrap_or(""))
        ),
        s => format!("<span class=\"s {0}\">{0}</span>", s.as_str()),
    }
}

fn duration(start: Option<Millis>, end: Option<Millis>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.1} s", (e - s) as f64 / 1000.0),
        (Some(s), None) => format!("{:.0} s…", (crate::store::now_ms() - s) as f64 / 1000.0),
        _ => String::new(),
    }
}

fn what(b: &Build) -> String {
    let ctx = &b.spec.context;
    match (ctx.pull_request, &ctx.tag) {
        (Some(n), _) => format!("PR #{n} → {}", escape(&ctx.branch)),
        (None, Some(t)) => format!("tag {}", escape(t)),
        _ => format!("push to {}", escape(&ctx.branch)),
    }
}

fn build_rows(builds: &[Build], with_repo: bool) -> String {
    let mut out = String::from("<table><tr><th>#</th>");
    if with_repo {
        out.push_str("<th>repository</th>");
    }
    out.push_str(
        "<th>state</th><th>event</th><th>commit</th><th>message</th><th>duration</th></tr>",
    );
    for b in builds {
        let _ = write!(out, "<tr><td><a href=\"/builds/{0}\">#{0}</a></td>", b.id);
        if with_repo {
            let _ = write!(
                out,
                "<td><a href=\"/repos/{0}\">{0}</a></td>",
                escape(&b.repo)
            );
        }
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            badge_state(b.state),
            what(b),
            escape(&b.spec.head_sha.chars().take(8).collect::<String>()),
            escape(b.spec.context.commit_message.lines().next().unwrap_or("")),
            duration(b.started_at, b.finished_at)
        );
    }
    out.push_str("</table>");
    out
}

pub(super) async fn repos(State(app): AppState, caller: Caller) -> Response {
    let readable = match readable_repos(&app, &caller).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    match app.store.repos().await {
        Ok(latest) => {
            let latest = filter_builds(latest, &readable);
            let body = if latest.is_empty() {
                "<h1>Repositories</h1><p>No builds yet. Point a GitHub webhook at <code>/webhooks/github</code>.</p>".to_string()
            } else {
                format!(
                    "<h1>Repositories</h1><p>The latest build of each.</p>{}",
                    build_rows(&latest, true)
                )
            };
            page("Repositories", &body, false)
        }
        Err(e) => store_error(e),
    }
}

pub(super) async fn builds(
    State(app): AppState,
    caller: Caller,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let access = match permission(&app, &caller, &repo, Permission::Push).await {
        Ok(Permission::None) => return text(StatusCode::NOT_FOUND, "no such repository\n"),
        Ok(p) => p,
        Err(e) => return store_error(e),
    };
    // A private repository's badge works only with its token, shown to those who may push.
    let badge = match app.store.repo_access(&repo).await {
        Ok(Some(r)) if r.private && access == Permission::Push => {
            format!("/badge/{}.svg?token={}", escape(&repo), r.badge_token)
        }
        Ok(Some(r)) if r.private => String::new(),
        Ok(_) => format!("/badge/{}.svg", escape(&repo)),
        Err(e) => return store_error(e),
    };
    match app.store.builds(Some(&repo), 100).await {
        Ok(list) => {
            let running = list.iter().any(|b| !b.state.is_final());
            let badge = if badge.is_empty() {
                String::new()
            } else {
                format!(
                    "<p><img alt=\"status\" src=\"{badge}\"> <code class=\"badge-url\">{badge}</code></p>"
                )
            };
            let body = format!(
                "<h1>{r}</h1>{badge}{}",
                build_rows(&list, false),
                r = escape(&repo)
            );
            page(&repo, &body, running)
        }
        Err(e) => store_error(e),
    }
}

/// Cancel and restart, for callers who may push; each form carries the session's CSRF token.
fn buttons(build: &Build, caller: &Caller) -> String {
    let csrf = caller
        .session
        .as_ref()
        .map(|s| {
            format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                s.csrf.expose()
            )
        })
        .unwrap_or_default();
    let mut out = String::new();
    if !build.state.is_final() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/builds/{}/cancel\">{csrf}<button id=\"cancel\">Cancel</button></form> ",
            build.id
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/builds/{}/restart\">{csrf}<button id=\"restart\">Restart</button></form>",
        build.id
    );
    out
}

fn matrix_cell(job: &Job) -> String {
    match &job.matrix {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "script"
                        | "install"
                        | "before_install"
                        | "before_script"
                        | "after_script"
                        | "after_success"
                        | "after_failure"
                        | "deploy"
                        | "stage"
                        | "name"
                )
            })
            .map(|(k, v)| format!("{}: {}", escape(k), escape(&matrix_value(v))))
            .collect::<Vec<_>>()
            .join("<br>"),
        _ => String::new(),
    }
}

/// A matrix value as Travis's job list shows it: `env` entries as `NAME=value` (encrypted ones
/// as `[secure]`), lists separated by spaces.
fn matrix_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(matrix_value).collect::<Vec<_>>().join(" "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("secure", _) => "[secure]".to_string(),
                (_, Value::Object(inner)) if inner.contains_key("secure") => {
                    format!("{k}=[secure]")
                }
                _ => format!("{k}={}", matrix_value(v)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

pub(super) async fn build(State(app): AppState, caller: Caller, Path(id): Path<i64>) -> Response {
    let (b, jobs) = match readable_build(&app, &caller, id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let may_push = match caller.login() {
        None => false,
        Some(_) => match permission(&app, &caller, &b.repo, Permission::Push).await {
            Ok(p) => p == Permission::Push,
            Err(e) => return store_error(e),
        },
    };
    let mut body = format!(
        "<h1>Build #{} {}</h1><p><a href=\"/repos/{r}\">{r}</a> · {} · head <code>{}</code>{}</p>",
        b.id,
        badge_state(b.state),
        what(&b),
        escape(&b.spec.head_sha),
        b.merge_sha
            .as_deref()
            .map(|m| format!(" · built <code>{}</code>", escape(m)))
            .unwrap_or_default(),
        r = escape(&b.repo)
    );
    if let Some(reason) = &b.reason {
        let _ = write!(body, "<p class=\"reason\">{}</p>", escape(reason));
    }
    if may_push {
        body.push_str(&buttons(&b, &caller));
    }
    let mut stage_idx = -1;
    for j in &jobs {
        if j.stage_index != stage_idx {
            if stage_idx >= 0 {
                body.push_str("</table>");
            }
            stage_idx = j.stage_index;
            let _ = write!(
                body,
                "<h2>Stage: {}</h2><table class=\"matrix\"><tr><th>job</th><th>name</th><th>matrix</th><th>state</th><th>duration</th></tr>",
                escape(&j.stage)
            );
        }
        let _ = write!(
            body,
            "<tr><td><a href=\"/jobs/{id}\">{b}.{n}</a></td><td>{name}</td><td>{m}</td><td>{s}{af}</td><td>{d}</td></tr>",
            id = j.id,
            b = b.id,
            n = j.number,
            name = escape(j.name.as_deref().unwrap_or("")),
            m = matrix_cell(j),
            s = job_state(j),
            af = if j.allow_failure {
                " (allowed to fail)"
            } else {
                ""
            },
            d = duration(j.started_at, j.finished_at),
        );
    }
    if stage_idx >= 0 {
        body.push_str("</table>");
    }
    if !b.log.is_empty() {
        let _ = write!(
            body,
            "<h2>Preparation</h2><pre class=\"prep\">{}</pre>",
            escape(&b.log)
        );
    }
    page(&format!("Build #{}", b.id), &body, !b.state.is_final())
}

pub(super) async fn job(State(app): AppState, caller: Caller, Path(id): Path<i64>) -> Response {
    let j = match readable_job(&app, &caller, id).await {
        Ok((j, _)) => j,
        Err(r) => return r,
    };
    let body = format!(
        "<h1>Job {b}.{n} <span class=\"s {s}\">{s}</span></h1>\
         <p><a href=\"/builds/{b}\">build #{b}</a> · stage {stage} · {m} · <span id=\"live\">live</span> · <a href=\"/jobs/{id}/log.txt\">raw log</a></p>{reason}\
         <div id=\"log\" data-src=\"/jobs/{id}/events\"></div><script src=\"/static/follow.js\"></script>",
        b = j.build_id,
        n = j.number,
        s = j.state.as_str(),
        stage = escape(&j.stage),
        m = matrix_cell(&j),
        reason = j
            .reason
            .as_deref()
            .map(|r| format!("<p>{}</p>", escape(r)))
            .unwrap_or_default(),
    );
    page(&format!("Job {}.{}", j.build_id, j.number), &body, false)
}

#[derive(Deserialize)]
pub(super) struct BadgeQuery {
    branch: Option<String>,
    token: Option<String>,
}

pub(super) async fn badge(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((owner, file)): Path<(String, String)>,
    Query(q): Query<BadgeQuery>,
) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return text(StatusCode::NOT_FOUND, "badges end in .svg\n");
    };
    let repo = format!("{owner}/{name}");
    // Public: anyone. Private: its badge token, or someone who may read it.
    let shown = match app.store.repo_access(&repo).await {
        Ok(Some(r)) if !r.private => true,
        Ok(Some(r)) => {
            q.token
                .as_deref()
                .is_some_and(|t| constant_time_eq(t.as_bytes(), r.badge_token.as_bytes()))
                || matches!(can_read(&app, &caller, &repo).await, Ok(true))
        }
        Ok(None) => false,
        Err(e) => return store_error(e),
    };
    if !shown {
        return text(StatusCode::NOT_FOUND, "no such repository\n");
    }
    let branch = q.branch.unwrap_or_else(|| "master".into());
    let state = match app.store.branch_state(&repo, &branch).await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let (label, colour) = match state {
        Some(BuildState::Passed) | Some(BuildState::Skipped) => ("passing", "#2e7d32"),
        Some(BuildState::Failed) => ("failing", "#c62828"),
        Some(BuildState::Errored) => ("error", "#6a1b9a"),
        _ => ("unknown", "#9e9e9e"),
    };
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"104\" height=\"20\" role=\"img\" aria-label=\"build: {label}\">\
         <rect width=\"44\" height=\"20\" fill=\"#555\"/><rect x=\"44\" width=\"60\" height=\"20\" fill=\"{colour}\"/>\
         <g fill=\"#fff\" font-family=\"Verdana,sans-serif\" font-size=\"11\"><text x=\"6\" y=\"14\">build</text>\
         <text x=\"50\" y=\"14\">{label}</text></g></svg>"
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        svg,
    )
        .into_response()
}
