//! Server-rendered pages: repositories → builds → a build (stages and the jobs matrix) → a job
//! (its live log). No build step; the only script is the job page's log follower.

use super::ansi::escape;
use super::{App, AppState, store_error, text};
use crate::store::{Build, BuildState, Job, Millis};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#1f2d3d;color:#fff;padding:.6em 1em}header a{color:#fff;text-decoration:none;font-weight:bold}
main{padding:1em}table{border-collapse:collapse}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:left}
.s{padding:.1em .5em;border-radius:3px;color:#fff;font-size:12px}
.passed,.skipped{background:#2e7d32}.failed{background:#c62828}.errored{background:#6a1b9a}.canceled{background:#757575}
.queued,.preparing,.waiting{background:#9e9e9e}.running{background:#f9a825}
#log,pre.prep{background:#111;color:#ddd;padding:.6em;font:12px/1.35 ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
#log pre{margin:0;white-space:pre-wrap}#log summary{cursor:pointer;color:#8ab4f8}.note{color:#ffb74d}
.b{font-weight:bold}.i{font-style:italic}.u{text-decoration:underline}
.f0{color:#666}.f1{color:#ef5350}.f2{color:#66bb6a}.f3{color:#ffee58}.f4{color:#42a5f5}.f5{color:#ab47bc}.f6{color:#26c6da}.f7{color:#eee}
.f8{color:#999}.f9{color:#ff8a80}.f10{color:#b9f6ca}.f11{color:#ffff8d}.f12{color:#82b1ff}.f13{color:#ea80fc}.f14{color:#84ffff}.f15{color:#fff}
.g0{background:#333}.g1{background:#b71c1c}.g2{background:#1b5e20}.g3{background:#f57f17}.g4{background:#0d47a1}.g5{background:#4a148c}.g6{background:#006064}.g7{background:#9e9e9e}
.g8{background:#555}.g9{background:#e53935}.g10{background:#43a047}.g11{background:#fdd835}.g12{background:#1e88e5}.g13{background:#8e24aa}.g14{background:#00acc1}.g15{background:#ccc}
form{display:inline}
"#;

fn page(title: &str, body: &str, refresh: bool) -> Response {
    let meta = if refresh {
        "<meta http-equiv=\"refresh\" content=\"5\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Slipway</title>{meta}<style>{STYLE}</style></head>\
         <body><header><a href=\"/\">Slipway</a></header><main>{body}</main></body></html>",
        t = escape(title)
    ))
    .into_response()
}

fn badge_state(state: BuildState) -> String {
    format!("<span class=\"s {0}\">{0}</span>", state.as_str())
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

pub(super) async fn repos(State(app): AppState) -> Response {
    match app.store.repos().await {
        Ok(latest) => {
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
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let repo = format!("{owner}/{name}");
    match app.store.builds(Some(&repo), 100).await {
        Ok(list) => {
            let running = list.iter().any(|b| !b.state.is_final());
            let body = format!(
                "<h1>{r}</h1><p><img alt=\"status\" src=\"/badge/{r}.svg\"></p>{}",
                build_rows(&list, false),
                r = escape(&repo)
            );
            page(&repo, &body, running)
        }
        Err(e) => store_error(e),
    }
}

fn buttons(build: &Build) -> String {
    let mut out = String::new();
    if !build.state.is_final() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/builds/{}/cancel\"><button>Cancel</button></form> ",
            build.id
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/builds/{}/restart\"><button>Restart</button></form>",
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

pub(super) async fn build(State(app): AppState, Path(id): Path<i64>) -> Response {
    let (b, jobs) = match app.store.build(id).await {
        Ok(Some(x)) => x,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no such build\n"),
        Err(e) => return store_error(e),
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
    body.push_str(&buttons(&b));
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
            s = format_args!("<span class=\"s {0}\">{0}</span>", j.state.as_str()),
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

const FOLLOW_JS: &str = r#"
const log = document.getElementById('log');
let cur = null;
function out() { if (!cur) { cur = document.createElement('pre'); log.appendChild(cur); } return cur; }
const es = new EventSource(log.dataset.src);
es.addEventListener('chunk', (e) => {
  const c = JSON.parse(e.data);
  const bottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  if (c.kind === 'phase_start') {
    const d = document.createElement('details'); d.open = true; d.className = 'phase';
    const s = document.createElement('summary'); s.textContent = c.data; d.appendChild(s);
    cur = document.createElement('pre'); d.appendChild(cur); log.appendChild(d);
  } else if (c.kind === 'phase_end') {
    const p = JSON.parse(c.data);
    const d = cur && cur.parentElement;
    if (d && d.tagName === 'DETAILS') {
      d.querySelector('summary').textContent = p.name + ' (' + (p.ms / 1000).toFixed(1) + ' s)' + (p.exit_code ? ' exit ' + p.exit_code : '');
      if (p.exit_code === 0) d.open = false;
    }
    cur = null;
  } else if (c.kind === 'note') {
    const n = document.createElement('div'); n.className = 'note'; n.textContent = c.data; log.appendChild(n); cur = null;
  } else {
    out().insertAdjacentHTML('beforeend', c.html);
  }
  if (bottom) window.scrollTo(0, document.body.scrollHeight);
});
es.addEventListener('end', () => { es.close(); document.getElementById('live').textContent = 'finished'; });
"#;

pub(super) async fn job(State(app): AppState, Path(id): Path<i64>) -> Response {
    let j = match app.store.job(id).await {
        Ok(Some(j)) => j,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no such job\n"),
        Err(e) => return store_error(e),
    };
    let body = format!(
        "<h1>Job {b}.{n} <span class=\"s {s}\">{s}</span></h1>\
         <p><a href=\"/builds/{b}\">build #{b}</a> · stage {stage} · {m} · <span id=\"live\">live</span> · <a href=\"/jobs/{id}/log.txt\">raw log</a></p>{reason}\
         <div id=\"log\" data-src=\"/jobs/{id}/events\"></div><script>{FOLLOW_JS}</script>",
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

pub(super) async fn login() -> Response {
    page(
        "Sign in",
        "<h1>Sign in</h1><form method=\"post\" action=\"/login\"><input type=\"password\" name=\"token\" placeholder=\"API token\"> <button>Sign in</button></form>",
        false,
    )
}

#[derive(Deserialize)]
pub(super) struct BadgeQuery {
    branch: Option<String>,
}

pub(super) async fn badge(
    State(app): State<Arc<App>>,
    Path((owner, file)): Path<(String, String)>,
    Query(q): Query<BadgeQuery>,
) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return text(StatusCode::NOT_FOUND, "badges end in .svg\n");
    };
    let repo = format!("{owner}/{name}");
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
