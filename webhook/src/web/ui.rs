//! Server-rendered pages: repositories → builds → a build (stages and the jobs matrix) → a job
//! (its live log). No build step; the only script is the job page's log follower, served from
//! `/static/` like the style sheet.

use super::access::{
    Caller, can_read, constant_time_eq, filter_builds, permission, readable_build, readable_job,
    readable_repos,
};
use super::ansi::escape;
use super::{App, AppState, store_error, text};
use crate::store::{
    Build, BuildFilter, BuildState, BuiltBy, Job, JobState, Millis, Permission, matrix_value,
};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;

mod commit;

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

/// The builds table: each build's state, commit (message, short SHA, author), what was built and
/// when.
fn build_rows(web_url: &str, builds: &[Build], with_repo: bool) -> String {
    let now = crate::store::now_ms();
    let mut out = String::from("<table class=\"builds\"><tr><th>#</th>");
    if with_repo {
        out.push_str("<th>repository</th>");
    }
    out.push_str("<th>state</th><th>commit</th><th>built</th><th>when</th></tr>");
    for b in builds {
        let _ = write!(out, "<tr><td><a href=\"/builds/{0}\">#{0}</a></td>", b.id);
        if with_repo {
            let _ = write!(
                out,
                "<td><a href=\"/repos/{0}\">{0}</a></td>",
                escape(&b.repo)
            );
        }
        let author = b
            .spec
            .author
            .as_ref()
            .map(|a| format!(" · <span class=\"author\">{}</span>", escape(&a.name)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<td>{}</td><td><span class=\"message\">{}</span><br>{}{author}</td><td>{}</td><td>{}</td></tr>",
            badge_state(b.state),
            escape(commit::first_line(&b.spec.context.commit_message)),
            commit::sha_link(web_url, &b.repo, &b.spec.head_sha),
            commit::what(web_url, b),
            commit::when(b.created_at, b.started_at, b.finished_at, now)
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
                    build_rows(&app.config.github.web_url, &latest, true)
                )
            };
            page("Repositories", &body, false)
        }
        Err(e) => store_error(e),
    }
}

/// The repository page's filters: `?branch=NAME&event=push|pull_request|tag|api|cron` (empty
/// means any).
#[derive(Deserialize)]
pub(super) struct RepoQuery {
    branch: Option<String>,
    event: Option<String>,
}

/// How the page's links and form name each kind of build.
fn built_by_label(b: BuiltBy) -> &'static str {
    match b {
        BuiltBy::Push => "pushes",
        BuiltBy::PullRequest => "pull requests",
        BuiltBy::Tag => "tags",
        BuiltBy::Api => "API",
        BuiltBy::Cron => "cron",
    }
}

/// `/repos/R` with the branch and event filters given, each percent-encoded, escaped for an
/// attribute.
fn filter_href(repo: &str, branch: Option<&str>, event: Option<BuiltBy>) -> String {
    let mut query: Vec<String> = Vec::new();
    if let Some(b) = branch {
        query.push(format!("branch={}", commit::url_part(b)));
    }
    if let Some(e) = event {
        query.push(format!("event={}", e.as_str()));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    escape(&format!("/repos/{repo}{query}"))
}

/// The filter links (one per kind of build, keeping the branch) and the form: a branch
/// (suggesting those listed) and an event; plain GET, no script.
fn filter_form(repo: &str, filter: &BuildFilter, listed: &[Build]) -> String {
    let branch = filter.branch.as_deref();
    let mut out = String::from("<nav class=\"filters\">");
    let link = |event: Option<BuiltBy>, label: &str| {
        let current = if filter.event == event {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!(
            "<a href=\"{}\"{current}>{label}</a>",
            filter_href(repo, branch, event)
        )
    };
    out.push_str(&link(None, "all events"));
    for b in BuiltBy::ALL {
        let _ = write!(out, " · {}", link(Some(b), built_by_label(b)));
    }
    if let Some(b) = branch {
        let _ = write!(
            out,
            " · branch <span class=\"branch\">{}</span> (<a href=\"{}\">any branch</a>)",
            escape(b),
            filter_href(repo, None, filter.event)
        );
    }
    out.push_str("</nav>");
    let mut branches: Vec<&str> = listed
        .iter()
        .map(|b| b.spec.context.branch.as_str())
        .collect();
    branches.sort_unstable();
    branches.dedup();
    let _ = write!(
        out,
        "<form class=\"filter\" method=\"get\" action=\"/repos/{}\">\
         <label>branch <input name=\"branch\" list=\"branches\" value=\"{}\"></label><datalist id=\"branches\">",
        escape(repo),
        escape(branch.unwrap_or(""))
    );
    for b in branches {
        let _ = write!(out, "<option value=\"{}\">", escape(b));
    }
    out.push_str("</datalist> <label>event <select name=\"event\"><option value=\"\">any</option>");
    for b in BuiltBy::ALL {
        let selected = if filter.event == Some(b) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{selected}>{}</option>",
            b.as_str(),
            built_by_label(b)
        );
    }
    let _ = write!(
        out,
        "</select></label> <button>Filter</button> <a href=\"/repos/{}\">all builds</a></form>",
        escape(repo)
    );
    out
}

pub(super) async fn builds(
    State(app): AppState,
    caller: Caller,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<RepoQuery>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let access = match permission(&app, &caller, &repo, Permission::Push).await {
        Ok(Permission::None) => return text(StatusCode::NOT_FOUND, "no such repository\n"),
        Ok(p) => p,
        Err(e) => return store_error(e),
    };
    let filter = match super::api::build_filter(Some(repo.clone()), q.branch, q.event.as_deref()) {
        Ok(f) => f,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
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
    match app.store.builds(filter.clone(), 100).await {
        Ok(list) => {
            let running = list.iter().any(|b| !b.state.is_final());
            let badge = if badge.is_empty() {
                String::new()
            } else {
                format!(
                    "<p><img alt=\"status\" src=\"{badge}\"> <code class=\"badge-url\">{badge}</code></p>"
                )
            };
            let rows = if list.is_empty() {
                "<p class=\"empty\">No builds match.</p>".to_string()
            } else {
                build_rows(&app.config.github.web_url, &list, false)
            };
            let body = format!(
                "<h1>{r}</h1>{badge}{}{rows}",
                filter_form(&repo, &filter, &list),
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

/// A job's matrix keys as the jobs table shows them (`key: value`, escaped).
fn matrix_entries(job: &Job) -> Vec<(&str, String)> {
    job.matrix_keys()
        .into_iter()
        .map(|(k, v)| (k, format!("{}: {}", escape(k), escape(&matrix_value(v)))))
        .collect()
}

fn matrix_cell(job: &Job) -> String {
    matrix_entries(job)
        .into_iter()
        .map(|(_, shown)| shown)
        .collect::<Vec<_>>()
        .join("<br>")
}

/// A job's label where space is short: its name, else the matrix values that tell it from the
/// build's other jobs (all of them when none do).
fn job_label(j: &Job, jobs: &[Job]) -> String {
    if let Some(n) = &j.name {
        return escape(n);
    }
    let all = matrix_entries(j);
    let telling: Vec<String> = all
        .iter()
        .filter(|(key, shown)| {
            jobs.iter().any(|other| {
                other.id != j.id
                    && !matrix_entries(other)
                        .iter()
                        .any(|(k, s)| k == key && s == shown)
            })
        })
        .map(|(_, shown)| shown.clone())
        .collect();
    let shown = if telling.is_empty() {
        all.into_iter().map(|(_, s)| s).collect()
    } else {
        telling
    };
    shown.join(" · ")
}

/// The stages side by side in the order they run, each with its jobs (number, label, state and
/// time), so a build's shape is seen before its tables are read.
fn stage_lanes(jobs: &[Job], now: Millis) -> String {
    let mut out = String::from("<section class=\"stages\">");
    for stage in stages(jobs) {
        let name = escape(&stage[0].stage);
        let _ = write!(out, "<div class=\"stage\"><h3>{name}</h3>");
        out.extend(stage.iter().map(|j| lane_job(j, jobs, now)));
        out.push_str("</div>");
    }
    out.push_str("</section>");
    out
}

/// A job in its stage's lane: number, label, state and time, linking to its page.
fn lane_job(j: &Job, jobs: &[Job], now: Millis) -> String {
    format!(
        "<a class=\"job\" href=\"/jobs/{}\"><span class=\"num\">{}</span> <span class=\"label\">{}</span> {} <span class=\"took\">{}</span></a>",
        j.id,
        job_number(j),
        job_label(j, jobs),
        job_state(j),
        job_took(j, now),
    )
}

/// A job's row in its stage's table: number, name, matrix, state and time.
fn matrix_row(j: &Job, now: Millis) -> String {
    format!(
        "<tr><td><a href=\"/jobs/{id}\">{n}</a></td><td>{name}</td><td>{m}</td><td>{s}{af}</td><td>{d}</td></tr>",
        id = j.id,
        n = job_number(j),
        name = escape(j.name.as_deref().unwrap_or("")),
        m = matrix_cell(j),
        s = job_state(j),
        af = if j.allow_failure {
            " (allowed to fail)"
        } else {
            ""
        },
        d = job_took(j, now),
    )
}

/// A job's number as people say it: `7.2` for the second job of build 7.
fn job_number(j: &Job) -> String {
    format!("{}.{}", j.build_id, j.number)
}

/// A build's jobs stage by stage (the store lists them in stage order).
fn stages(jobs: &[Job]) -> impl Iterator<Item = &[Job]> {
    jobs.chunk_by(|a, b| a.stage_index == b.stage_index)
}

/// A job's run time, counting while it runs.
fn job_took(j: &Job, now: Millis) -> String {
    match (j.started_at, j.finished_at) {
        (Some(s), Some(e)) => commit::span(e - s),
        (Some(s), None) => format!("{}…", commit::span(now - s)),
        _ => String::new(),
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
    let now = crate::store::now_ms();
    let web_url = &app.config.github.web_url;
    let mut body = format!(
        "<h1>Build #{} {}</h1><p class=\"repo\"><a href=\"/repos/{r}\">{r}</a>{}</p>{}",
        b.id,
        badge_state(b.state),
        b.merge_sha
            .as_deref()
            .filter(|m| *m != b.spec.head_sha)
            .map(|m| format!(
                " · built the merge <code title=\"{0}\">{1}</code>",
                escape(m),
                escape(&m.chars().take(7).collect::<String>())
            ))
            .unwrap_or_default(),
        commit::header(
            web_url,
            &b,
            &commit::when(b.created_at, b.started_at, b.finished_at, now)
        ),
        r = escape(&b.repo)
    );
    if let Some(reason) = &b.reason {
        let _ = write!(body, "<p class=\"reason\">{}</p>", escape(reason));
    }
    if may_push {
        body.push_str(&buttons(&b, &caller));
    }
    if !jobs.is_empty() {
        body.push_str(&stage_lanes(&jobs, now));
    }
    for stage in stages(&jobs) {
        let _ = write!(
            body,
            "<h2>Stage: {}</h2><table class=\"matrix\"><tr><th>job</th><th>name</th><th>matrix</th><th>state</th><th>duration</th></tr>",
            escape(&stage[0].stage)
        );
        body.extend(stage.iter().map(|j| matrix_row(j, now)));
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
    let (j, b) = match readable_job(&app, &caller, id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = crate::store::now_ms();
    let when = match j.started_at {
        Some(_) => commit::when(0, j.started_at, j.finished_at, now),
        None => "not started".to_string(),
    };
    let body = format!(
        "<h1>Job {n} <span class=\"s {s}\">{s}</span></h1>{commit}\
         <p class=\"job-meta\"><a href=\"/builds/{b}\">build #{b}</a> · stage {stage}{name} · {m} · <span id=\"live\">live</span> · <a href=\"/jobs/{id}/log.txt\">raw log</a></p>{reason}\
         <div id=\"log\" data-src=\"/jobs/{id}/events\"></div><script src=\"/static/follow.js\"></script>",
        b = j.build_id,
        n = job_number(&j),
        s = j.state.as_str(),
        commit = commit::header(&app.config.github.web_url, &b, &when),
        stage = escape(&j.stage),
        name = j
            .name
            .as_deref()
            .map(|n| format!(" · <span class=\"name\">{}</span>", escape(n)))
            .unwrap_or_default(),
        m = matrix_cell(&j),
        reason = j
            .reason
            .as_deref()
            .map(|r| format!("<p>{}</p>", escape(r)))
            .unwrap_or_default(),
    );
    page(&format!("Job {}", job_number(&j)), &body, false)
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
        Some(BuildState::Passed | BuildState::Skipped) => ("passing", "#2e7d32"),
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
