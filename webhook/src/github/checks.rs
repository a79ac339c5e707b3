//! Check runs, for a server that authenticates as a GitHub App: one per job, created
//! `in_progress` when the job starts and concluded when it ends with a summary (its phases and
//! their durations, the failing command, the end of its log) and a link to the job's page; and one
//! for a pipeline file that cannot be planned, with its problems as annotations on its lines.
//!
//! Each `checks` outbox item brings every check run of its build up to date with the store, so a
//! superseded item is never needed and a retry repeats only what GitHub has not acknowledged.

use super::{ReportError, Reporter};
use crate::auth::Credential;
use crate::store::{
    Build, CheckRun, CheckSync, Job, JobState, LintAnnotation, LogDigest, OutboxItem, matrix_value,
};
use axum::http::Method;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// How much of the end of a job's log its check run shows.
const LOG_TAIL_BYTES: usize = 4096;

/// GitHub takes at most this many annotations per request.
const ANNOTATIONS_PER_REQUEST: usize = 50;

/// GitHub's limit on a summary or text.
const MAX_OUTPUT_CHARS: usize = 65_535;

impl Reporter {
    /// Brings the check runs of `item`'s build up to date.
    pub(super) async fn sync_checks(
        &self,
        item: &OutboxItem,
        credential: &Credential,
    ) -> Result<(), ReportError> {
        let Some((build, jobs)) = self.store.build(item.build_id).await? else {
            return Ok(());
        };
        let stages = {
            let mut s: Vec<i64> = jobs.iter().map(|j| j.stage_index).collect();
            s.dedup();
            s.len()
        };
        for job in &jobs {
            let wanted = match job.state {
                JobState::Waiting | JobState::Queued => continue,
                JobState::Running => CheckSync::InProgress,
                _ => CheckSync::Completed,
            };
            let known = self.store.check_run(job.id).await?;
            let id = match (wanted, &known) {
                (_, Some(k)) if k.synced == CheckSync::Completed => continue,
                (CheckSync::InProgress, Some(_)) => continue,
                (_, Some(k)) => Some(k.check_run_id),
                (_, None) if job.started_at.is_some() => {
                    let name = check_name(job, &jobs, stages > 1);
                    let body = self.in_progress(&build, job, &name);
                    let id = self.create(&build.repo, credential, &body).await?;
                    self.save(&build, Some(job.id), id, CheckSync::InProgress)
                        .await?;
                    Some(id)
                }
                (_, None) => None,
            };
            if wanted == CheckSync::Completed {
                let body = self
                    .completed(&build, job, check_name(job, &jobs, stages > 1))
                    .await?;
                let id = match id {
                    Some(id) => {
                        // An update names no commit: the run keeps the one it was made for.
                        let mut body = body;
                        if let Some(fields) = body.as_object_mut() {
                            fields.remove("head_sha");
                        }
                        let path = format!("/repos/{}/check-runs/{id}", build.repo);
                        self.call(Method::PATCH, &path, credential, &body).await?;
                        id
                    }
                    // Ended without starting (cancelled, or an earlier stage failed).
                    None => self.create(&build.repo, credential, &body).await?,
                };
                self.save(&build, Some(job.id), id, CheckSync::Completed)
                    .await?;
            }
        }
        Ok(())
    }

    /// Reports a pipeline file that could not be planned: a failed check run with its problems
    /// on the file's lines, fifty per request as GitHub takes them.
    pub(super) async fn send_lint(
        &self,
        item: &OutboxItem,
        credential: &Credential,
    ) -> Result<(), ReportError> {
        let Some((build, _)) = self.store.build(item.build_id).await? else {
            return Ok(());
        };
        let annotations: Vec<LintAnnotation> = item
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let file = annotations
            .first()
            .map_or(".travis.yml", |a| a.path.as_str());
        let title = format!("{file} cannot be planned");
        let summary = format!(
            "{}\n\n{} problem(s) in `{file}`, shown on its lines. [The build's page]({})",
            item.description,
            annotations.len(),
            self.build_url(build.id)
        );
        let mut chunks = annotations.chunks(ANNOTATIONS_PER_REQUEST);
        let output = |chunk: Option<&[LintAnnotation]>| {
            json!({
                "title": title,
                "summary": summary,
                "annotations": chunk.unwrap_or_default().iter().map(|a| json!({
                    "path": a.path,
                    "start_line": a.start_line,
                    "end_line": a.end_line,
                    "annotation_level": a.level,
                    "title": a.title,
                    "message": a.message,
                })).collect::<Vec<_>>(),
            })
        };
        let body = json!({
            "name": format!("{}: {file}", self.config.github.status_context),
            "head_sha": build.spec.head_sha,
            "details_url": self.build_url(build.id),
            "external_id": format!("build-{}", build.id),
            "status": "completed",
            "conclusion": "failure",
            "completed_at": timestamp(build.finished_at),
            "output": output(chunks.next()),
        });
        let id = self.create(&build.repo, credential, &body).await?;
        self.save(&build, None, id, CheckSync::Completed).await?;
        for chunk in chunks {
            let path = format!("/repos/{}/check-runs/{id}", build.repo);
            let body = json!({ "output": output(Some(chunk)) });
            self.call(Method::PATCH, &path, credential, &body).await?;
        }
        Ok(())
    }

    fn in_progress(&self, build: &Build, job: &Job, name: &str) -> Value {
        json!({
            "name": name,
            "head_sha": build.spec.head_sha,
            "details_url": self.job_url(job.id),
            "external_id": job.id.to_string(),
            "status": "in_progress",
            "started_at": timestamp(job.started_at),
            "output": {
                "title": "Running",
                "summary": format!("Job {}.{} is running. [Follow its log]({})", build.id, job.number, self.job_url(job.id)),
            },
        })
    }

    async fn completed(
        &self,
        build: &Build,
        job: &Job,
        name: String,
    ) -> Result<Value, ReportError> {
        let digest = self.store.log_digest(job.id, LOG_TAIL_BYTES).await?;
        let conclusion = conclusion(job);
        let mut body = json!({
            "name": name,
            "head_sha": build.spec.head_sha,
            "details_url": self.job_url(job.id),
            "external_id": job.id.to_string(),
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": timestamp(job.finished_at),
            "output": {
                "title": title(job),
                "summary": clip(summary(job, &digest, &self.job_url(job.id))),
                "text": clip(log_text(&digest)),
            },
        });
        if let Some(started) = job.started_at {
            body["started_at"] = json!(timestamp(Some(started)));
        }
        Ok(body)
    }

    /// `POST /repos/{repo}/check-runs`; the new check run's id.
    async fn create(
        &self,
        repo: &str,
        credential: &Credential,
        body: &Value,
    ) -> Result<i64, ReportError> {
        let path = format!("/repos/{repo}/check-runs");
        let answer = self.call(Method::POST, &path, credential, body).await?;
        answer["id"].as_i64().ok_or_else(|| ReportError::Refused {
            status: 201,
            message: format!("POST {path}: the answer has no check run id"),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        credential: &Credential,
        body: &Value,
    ) -> Result<Value, ReportError> {
        let answer = self
            .auth
            .api()
            .send(
                method.clone(),
                path,
                Some(&credential.authorization()),
                Some(body),
            )
            .await?;
        if (200..300).contains(&answer.status) {
            return Ok(serde_json::from_str(&answer.body).unwrap_or(Value::Null));
        }
        if answer.status == 401 {
            self.auth.forget(credential).await;
        }
        Err(ReportError::Refused {
            status: answer.status,
            message: format!("{method} {path}: {}", answer.message())
                .chars()
                .take(480)
                .collect(),
        })
    }

    async fn save(
        &self,
        build: &Build,
        job_id: Option<i64>,
        check_run_id: i64,
        synced: CheckSync,
    ) -> Result<(), ReportError> {
        self.store
            .save_check_run(CheckRun {
                job_id,
                build_id: build.id,
                repo: build.repo.clone(),
                check_run_id,
                synced,
            })
            .await?;
        Ok(())
    }

    fn job_url(&self, job: i64) -> String {
        format!("{}/jobs/{job}", self.public_url.trim_end_matches('/'))
    }

    fn build_url(&self, build: i64) -> String {
        format!("{}/builds/{build}", self.public_url.trim_end_matches('/'))
    }
}

/// The check run's name: the job's `name:`, else the matrix keys that tell it from the build's
/// other jobs (`rvm: 3.1, env: A=1`), else its number; with the stage in front when the build
/// has several.
pub(crate) fn check_name(job: &Job, jobs: &[Job], show_stage: bool) -> String {
    let label = match &job.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => {
            let m = matrix_label(job, jobs);
            if m.is_empty() {
                format!("job {}", job.number)
            } else {
                m
            }
        }
    };
    let name = if show_stage && !job.stage.is_empty() {
        format!("{}: {label}", job.stage)
    } else {
        label
    };
    name.chars().take(200).collect()
}

/// The matrix keys whose values differ between `job` and another job of the build, as Travis's
/// job list shows them.
fn matrix_label(job: &Job, jobs: &[Job]) -> String {
    job.matrix_keys()
        .into_iter()
        .filter(|(k, v)| {
            jobs.iter()
                .any(|other| other.id != job.id && other.matrix.get(k) != Some(*v))
        })
        .map(|(k, v)| format!("{k}: {}", matrix_value(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// GitHub's conclusion for a job: an allowed failure is `neutral`, as it does not fail the build.
fn conclusion(job: &Job) -> &'static str {
    match job.state {
        JobState::Passed => "success",
        JobState::Failed | JobState::Errored if job.allow_failure => "neutral",
        JobState::Failed | JobState::Errored => "failure",
        JobState::Canceled => "cancelled",
        _ => "skipped",
    }
}

fn title(job: &Job) -> String {
    let word = match job.state {
        JobState::Passed => "Passed",
        JobState::Failed => "Failed",
        JobState::Errored => "Errored",
        JobState::Canceled => "Canceled",
        _ => "Not run",
    };
    match (job.started_at, job.finished_at) {
        (Some(s), Some(f)) if f >= s => format!("{word} in {}", seconds(f - s)),
        _ => word.to_string(),
    }
}

/// The summary: the outcome and why, the failing command, the phases with their durations.
fn summary(job: &Job, digest: &LogDigest, job_url: &str) -> String {
    let mut out = format!("**{}**", title(job));
    if let Some(reason) = &job.reason {
        let _ = write!(out, ": {reason}");
    }
    if job.allow_failure && matches!(job.state, JobState::Failed | JobState::Errored) {
        out.push_str(" (allowed to fail)");
    }
    out.push_str("\n\n");
    let failing = (digest.failure.as_deref())
        .and_then(failing_command)
        .or_else(|| failing_command(&digest.tail));
    if let Some(command) = failing {
        let _ = writeln!(out, "The failing command: {}\n", inline_code(&command));
    }
    if !digest.phases.is_empty() {
        out.push_str("| phase | result | duration |\n| --- | --- | --- |\n");
        for p in &digest.phases {
            let result = if p.exit_code == 0 {
                "passed".to_string()
            } else {
                format!("exit {}", p.exit_code)
            };
            let _ = writeln!(out, "| {} | {result} | {} |", p.name, seconds(p.ms as i64));
        }
        out.push('\n');
    }
    let _ = write!(out, "[The job's page and whole log]({job_url})");
    out
}

/// The end of the log in a fenced block (longer than any run of backticks in it).
fn log_text(digest: &LogDigest) -> String {
    let plain = plain_text(&digest.tail);
    if plain.trim().is_empty() {
        return "The job wrote nothing.".to_string();
    }
    let longest = plain.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "The last lines of the log:\n\n{fence}\n{}\n{fence}",
        plain.trim_end()
    )
}

/// The command the runner reported failing (`The command "…" exited with N.`), the first one.
fn failing_command(tail: &str) -> Option<String> {
    let plain = plain_text(tail);
    plain.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("The command \"")?;
        let (command, code) = rest.rsplit_once("\" exited with ")?;
        Some(format!("{command} (exit {})", code.trim_end_matches('.')))
    })
}

/// Text without ANSI escapes, each line as a terminal leaves it after carriage returns.
fn plain_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters up to a final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out.lines()
        .map(|l| l.rsplit('\r').find(|p| !p.is_empty()).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn inline_code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let tick = "`".repeat(longest + 1);
    format!("{tick} {s} {tick}")
}

fn seconds(ms: i64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// At most GitHub's limit, cut at a character boundary.
fn clip(s: String) -> String {
    if s.chars().count() <= MAX_OUTPUT_CHARS {
        return s;
    }
    s.chars().take(MAX_OUTPUT_CHARS - 1).collect::<String>() + "…"
}

/// RFC 3339 in UTC, as GitHub takes timestamps; now when the time is unknown.
fn timestamp(ms: Option<i64>) -> String {
    let secs = ms.map_or_else(|| crate::store::now_ms() / 1000, |m| m / 1000);
    crate::auth::format_timestamp(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_command_and_the_plain_log_come_out_of_ansi_and_carriage_returns() {
        let tail = "$ make\nprogress 10%\rprogress 100%\n\u{1b}[31;1mThe command \"make test\" exited with 2.\u{1b}[0m\n";
        assert_eq!(failing_command(tail).as_deref(), Some("make test (exit 2)"));
        assert_eq!(
            plain_text(tail),
            "$ make\nprogress 100%\nThe command \"make test\" exited with 2."
        );
        let text = log_text(&LogDigest {
            tail: "a ``` b\n".into(),
            ..LogDigest::default()
        });
        assert!(text.contains("\n````\na ``` b\n````"), "{text}");
    }

    #[test]
    fn a_jobs_check_run_is_named_after_its_name_else_what_sets_it_apart() {
        let job = |id: i64, matrix: Value| Job {
            id,
            build_id: 1,
            number: id,
            stage_index: 0,
            stage: "test".into(),
            name: None,
            allow_failure: false,
            matrix,
            state: JobState::Failed,
            reason: None,
            attempts: 1,
            started_at: Some(1_000),
            finished_at: Some(3_500),
        };
        let jobs = vec![
            job(
                1,
                json!({"language": "ruby", "rvm": "3.1", "env": {"A": "1", "B": {"secure": "x"}}, "script": ["x"]}),
            ),
            job(
                2,
                json!({"language": "ruby", "rvm": "3.2", "env": {"A": "1", "B": {"secure": "x"}}, "script": ["y"]}),
            ),
        ];
        assert_eq!(check_name(&jobs[0], &jobs, false), "rvm: 3.1");
        assert_eq!(check_name(&jobs[1], &jobs, true), "test: rvm: 3.2");
        let alone = vec![job(
            3,
            json!({"language": "ruby", "env": {"B": {"secure": "x"}}}),
        )];
        assert_eq!(check_name(&alone[0], &alone, false), "job 3");
        let with_env = vec![alone[0].clone(), job(4, json!({"language": "ruby"}))];
        assert_eq!(
            check_name(&with_env[0], &with_env, false),
            "env: B=[secure]"
        );
        let mut named = jobs[0].clone();
        named.name = Some("Unit tests".into());
        assert_eq!(check_name(&named, &jobs, false), "Unit tests");
        assert_eq!(conclusion(&named), "failure");
        named.allow_failure = true;
        assert_eq!(conclusion(&named), "neutral");
        assert_eq!(title(&named), "Failed in 2.5 s");
    }
}
