//! GitHub's REST resources as the stand-in plays them: commit statuses and check runs, each
//! request checked against the body GitHub documents (required fields, enumerations, types,
//! timestamps, sizes, fields the endpoint does not take). A request that breaks the schema is
//! answered 422 as GitHub answers it, and listed in `problems`.

use serde_json::{Map, Value, json};

/// A check run the stand-in holds: what was created, and every request that changed it.
#[derive(Debug, Clone)]
pub struct FakeCheckRun {
    pub id: i64,
    pub repo: String,
    /// The fields as they stand after every update (GitHub's view of the run).
    pub fields: Map<String, Value>,
    /// Every annotation sent, in order.
    pub annotations: Vec<Value>,
    /// The bodies of the create request and each update.
    pub requests: Vec<Value>,
}

impl FakeCheckRun {
    /// A field as it stands (`status`, `conclusion`, `name`, `output`, …).
    pub fn get(&self, field: &str) -> &Value {
        self.fields.get(field).unwrap_or(&Value::Null)
    }
}

/// The resources and the problems found in requests for them.
#[derive(Debug, Clone, Default)]
pub struct FakeRest {
    pub check_runs: Vec<FakeCheckRun>,
    pub problems: Vec<String>,
}

const STATUS_STATES: [&str; 4] = ["error", "failure", "pending", "success"];
const CHECK_STATUSES: [&str; 6] = [
    "queued",
    "in_progress",
    "completed",
    "waiting",
    "requested",
    "pending",
];
const CONCLUSIONS: [&str; 8] = [
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];
const LEVELS: [&str; 3] = ["notice", "warning", "failure"];

impl FakeRest {
    /// The answer to an authenticated request for `/repos/{owner}/{name}/…`; `app` says whether
    /// it came with a GitHub App's installation token (check runs take nothing else).
    pub(super) fn answer(
        &mut self,
        method: &str,
        path: &str,
        body: &Value,
        app: bool,
    ) -> (u16, Value) {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let result = match (method, segments.as_slice()) {
            ("POST", ["repos", owner, name, "statuses", sha]) => {
                check_sha(sha).and_then(|()| check_status(body)).map(|()| {
                    let _ = (owner, name);
                    (
                        201,
                        json!({"id": 1, "state": body["state"], "context": body["context"], "url": "", "creator": null}),
                    )
                })
            }
            (_, ["repos", _, _, "check-runs", ..]) if !app => Err((
                403,
                format!("{method} {path}: check runs can only be written by a GitHub App"),
            )),
            ("POST", ["repos", owner, name, "check-runs"]) => {
                self.create(&format!("{owner}/{name}"), body)
            }
            ("PATCH", ["repos", owner, name, "check-runs", id]) => {
                self.update(&format!("{owner}/{name}"), id, body)
            }
            _ => Err((404, format!("{method} {path}: no such endpoint"))),
        };
        match result {
            Ok(answer) => answer,
            Err((status, problem)) => {
                self.problems.push(problem.clone());
                let message = if status == 422 {
                    "Validation Failed"
                } else {
                    "Not Found"
                };
                (status, json!({"message": message, "errors": [problem]}))
            }
        }
    }

    fn create(&mut self, repo: &str, body: &Value) -> Result<(u16, Value), (u16, String)> {
        let fields = check_run_body(body, true).map_err(|e| (422, e))?;
        let id = 9000 + self.check_runs.len() as i64;
        let mut run = FakeCheckRun {
            id,
            repo: repo.to_string(),
            fields: Map::new(),
            annotations: vec![],
            requests: vec![],
        };
        run.apply(&fields, body);
        let answer = run.answer();
        self.check_runs.push(run);
        Ok((201, answer))
    }

    fn update(
        &mut self,
        repo: &str,
        id: &str,
        body: &Value,
    ) -> Result<(u16, Value), (u16, String)> {
        let fields = check_run_body(body, false).map_err(|e| (422, e))?;
        let run = self
            .check_runs
            .iter_mut()
            .find(|r| r.id.to_string() == id && r.repo.eq_ignore_ascii_case(repo))
            .ok_or_else(|| {
                (
                    404,
                    format!("PATCH check run {id} of {repo}: no such check run"),
                )
            })?;
        run.apply(&fields, body);
        Ok((200, run.answer()))
    }
}

impl FakeCheckRun {
    fn apply(&mut self, fields: &Map<String, Value>, body: &Value) {
        for (k, v) in fields {
            self.fields.insert(k.clone(), v.clone());
        }
        if let Some(a) = body
            .pointer("/output/annotations")
            .and_then(Value::as_array)
        {
            self.annotations.extend(a.iter().cloned());
        }
        self.requests.push(body.clone());
    }

    fn answer(&self) -> Value {
        let mut v = Value::Object(self.fields.clone());
        v["id"] = json!(self.id);
        v
    }
}

fn check_sha(sha: &str) -> Result<(), (u16, String)> {
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err((422, format!("{sha} is not a commit SHA")))
    }
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`.
fn check_status(body: &Value) -> Result<(), (u16, String)> {
    let bad = |m: String| Err((422, format!("status: {m}: {body}")));
    let Some(obj) = body.as_object() else {
        return bad("the body is not a JSON object".into());
    };
    for k in obj.keys() {
        if !["state", "target_url", "description", "context"].contains(&k.as_str()) {
            return bad(format!("unknown field {k}"));
        }
    }
    match body["state"].as_str() {
        Some(s) if STATUS_STATES.contains(&s) => {}
        other => {
            return bad(format!(
                "state must be one of {STATUS_STATES:?}, not {other:?}"
            ));
        }
    }
    for k in ["target_url", "description", "context"] {
        if !(body[k].is_null() || body[k].is_string()) {
            return bad(format!("{k} must be a string or null"));
        }
    }
    Ok(())
}

/// The fields of a check run's create (`POST`, which needs `name` and `head_sha`) or update
/// (`PATCH`, which takes no `head_sha`) request, checked.
fn check_run_body(body: &Value, create: bool) -> Result<Map<String, Value>, String> {
    let what = if create {
        "create check run"
    } else {
        "update check run"
    };
    let bad = |m: String| Err(format!("{what}: {m}: {body}"));
    let Some(obj) = body.as_object() else {
        return bad("the body is not a JSON object".into());
    };
    let mut allowed = vec![
        "name",
        "details_url",
        "external_id",
        "status",
        "started_at",
        "conclusion",
        "completed_at",
        "output",
        "actions",
    ];
    if create {
        allowed.push("head_sha");
    }
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return bad(format!("{what} takes no field {k}"));
        }
    }
    if create {
        for k in ["name", "head_sha"] {
            if !obj.get(k).is_some_and(Value::is_string) {
                return bad(format!("{k} is required and a string"));
            }
        }
        if check_sha(body["head_sha"].as_str().unwrap_or("")).is_err() {
            return bad("head_sha is not a commit SHA".into());
        }
    }
    for k in ["name", "details_url", "external_id"] {
        if obj.get(k).is_some_and(|v| !v.is_string()) {
            return bad(format!("{k} must be a string"));
        }
    }
    if let Some(url) = obj.get("details_url").and_then(Value::as_str)
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return bad(format!("details_url {url} is not a URL"));
    }
    if let Some(s) = obj.get("status")
        && !s.as_str().is_some_and(|s| CHECK_STATUSES.contains(&s))
    {
        return bad(format!("status must be one of {CHECK_STATUSES:?}"));
    }
    if let Some(c) = obj.get("conclusion")
        && !c.as_str().is_some_and(|c| CONCLUSIONS.contains(&c))
    {
        return bad(format!("conclusion must be one of {CONCLUSIONS:?}"));
    }
    let completed = body["status"] == "completed" || obj.contains_key("completed_at");
    if completed && !obj.contains_key("conclusion") {
        return bad("conclusion is required with status completed or completed_at".into());
    }
    if obj.contains_key("conclusion") && obj.get("status").is_some_and(|s| s != "completed") {
        return bad(
            "a conclusion makes the status completed; another status contradicts it".into(),
        );
    }
    for k in ["started_at", "completed_at"] {
        if let Some(t) = obj.get(k)
            && t.as_str().and_then(crate::auth::parse_timestamp).is_none()
        {
            return bad(format!(
                "{k} must be an ISO 8601 timestamp (YYYY-MM-DDTHH:MM:SSZ)"
            ));
        }
    }
    if let Some(output) = obj.get("output")
        && let Err(m) = check_output(output)
    {
        return bad(m);
    }
    Ok(obj.clone())
}

fn check_output(output: &Value) -> Result<(), String> {
    let Some(o) = output.as_object() else {
        return Err("output must be an object".into());
    };
    for k in o.keys() {
        if !["title", "summary", "text", "annotations", "images"].contains(&k.as_str()) {
            return Err(format!("output takes no field {k}"));
        }
    }
    for k in ["title", "summary"] {
        if !o.get(k).is_some_and(Value::is_string) {
            return Err(format!("output.{k} is required and a string"));
        }
    }
    for k in ["summary", "text"] {
        if let Some(v) = o.get(k) {
            let Some(s) = v.as_str() else {
                return Err(format!("output.{k} must be a string"));
            };
            if s.chars().count() > 65_535 {
                return Err(format!("output.{k} is longer than 65535 characters"));
            }
        }
    }
    let Some(annotations) = o.get("annotations") else {
        return Ok(());
    };
    let Some(list) = annotations.as_array() else {
        return Err("output.annotations must be an array".into());
    };
    if list.len() > 50 {
        return Err(format!(
            "{} annotations in one request, at most 50",
            list.len()
        ));
    }
    for a in list {
        let int = |k: &str| a.get(k).and_then(Value::as_u64);
        if !a["path"].is_string() || !a["message"].is_string() {
            return Err(format!("an annotation needs path and message: {a}"));
        }
        let (Some(start), Some(end)) = (int("start_line"), int("end_line")) else {
            return Err(format!("an annotation needs start_line and end_line: {a}"));
        };
        if start == 0 || end < start {
            return Err(format!(
                "annotation lines must be 1-based and in order: {a}"
            ));
        }
        if !a["annotation_level"]
            .as_str()
            .is_some_and(|l| LEVELS.contains(&l))
        {
            return Err(format!("annotation_level must be one of {LEVELS:?}: {a}"));
        }
        if (a.get("start_column").is_some() || a.get("end_column").is_some()) && start != end {
            return Err(format!("columns only on a one-line annotation: {a}"));
        }
    }
    Ok(())
}
