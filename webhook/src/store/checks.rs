//! What GitHub check runs need from the store: which check run shows each job and what it was
//! last told, a digest of a job's log for the run's summary, and re-runs asked for from GitHub.
//!
//! Check-run work goes through the same outbox as statuses (so it is durable and retried): a
//! `checks` item says "bring the check runs of this build up to date", and the reporter compares
//! each job's state with what its check run last showed; a `lint` item carries the annotations
//! of a pipeline file that could not be planned.

use super::StoreError;
use async_trait::async_trait;
use serde::Serialize;

string_enum! {
    /// What an outbox item asks the reporter to do.
    OutboxKind {
        /// Set the build's commit status.
        Status = "status",
        /// Bring the build's check runs up to date (GitHub App only).
        Checks = "checks",
        /// Report the pipeline file's problems as a check run with annotations (GitHub App only).
        Lint = "lint",
    }
}

string_enum! {
    /// What a job's check run was last told.
    CheckSync {
        /// Created as `in_progress`.
        InProgress = "in_progress",
        /// Concluded.
        Completed = "completed",
    }
}

/// A check run Slipway made: one per job, or one for a pipeline file's problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// The job it shows; `None` for the pipeline file's problems.
    pub job_id: Option<i64>,
    pub build_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// GitHub's id of the check run.
    pub check_run_id: i64,
    /// What GitHub was last told.
    pub synced: CheckSync,
}

/// A phase of a job as its log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseDigest {
    /// `install`, `script`, …
    pub name: String,
    /// The last non-zero exit code of its commands, else 0.
    pub exit_code: i64,
    /// How long it took.
    pub ms: u64,
}

/// What a check run's summary shows of a job's log (already masked when stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDigest {
    /// The phases that ended, in order.
    pub phases: Vec<PhaseDigest>,
    /// The end of the output and notes, at most the bytes asked for (cut at a line start).
    pub tail: String,
    /// The first output chunk where the runner reported a failing command
    /// (`The command "…" exited with N.`), wherever it is in the log.
    pub failure: Option<String>,
}

/// What a `rerequested` check event asks to run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rerun {
    /// The job shown by this check run (GitHub's id).
    CheckRun(i64),
    /// The builds of this commit that have check runs.
    Suite {
        /// The head commit of the suite.
        head_sha: String,
    },
}

impl LogDigest {
    /// A digest from a job's `phase_end` chunks (in order), its first failure line, and its
    /// output and note chunks newest first as (kind, data), read only as far as `tail_bytes`
    /// needs; the tail starts at a line.
    pub(crate) fn of(
        phase_ends: Vec<String>,
        failure: Option<String>,
        newest_first: impl Iterator<Item = (String, String)>,
        tail_bytes: usize,
    ) -> LogDigest {
        let phases = phase_ends
            .iter()
            .map(|data| {
                let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                PhaseDigest {
                    name: v["name"].as_str().unwrap_or("?").to_string(),
                    exit_code: v["exit_code"].as_i64().unwrap_or(0),
                    ms: v["ms"].as_u64().unwrap_or(0),
                }
            })
            .collect();
        let mut pieces = Vec::new();
        let mut bytes = 0;
        for (kind, mut data) in newest_first {
            if kind == "note" && !data.ends_with('\n') {
                data.push('\n');
            }
            bytes += data.len();
            pieces.push(data);
            if bytes > tail_bytes {
                break;
            }
        }
        pieces.reverse();
        let text = pieces.concat();
        let tail = match text.len().checked_sub(tail_bytes) {
            Some(cut) if cut > 0 => {
                let from = (cut..text.len())
                    .find(|&i| text.is_char_boundary(i) && text[..i].ends_with('\n'))
                    .unwrap_or(text.len());
                text[from..].to_string()
            }
            _ => text,
        };
        LogDigest {
            phases,
            tail,
            failure,
        }
    }
}

/// The check-run part of the store.
#[async_trait]
pub trait ChecksStore: Send + Sync {
    /// The check run showing a job, if one was made.
    async fn check_run(&self, job_id: i64) -> Result<Option<CheckRun>, StoreError>;
    /// Records the check run showing a job and what it was told.
    async fn save_check_run(&self, run: CheckRun) -> Result<(), StoreError>;
    /// The phases of a job's log and its last `tail_bytes` of output.
    async fn log_digest(&self, job_id: i64, tail_bytes: usize) -> Result<LogDigest, StoreError>;
}

/// The annotations of a `lint` outbox item: one per problem of the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LintAnnotation {
    /// The pipeline file, relative to the repository.
    pub path: String,
    /// 1-based line where the problem starts.
    pub start_line: u64,
    /// 1-based line where it ends.
    pub end_line: u64,
    /// `failure` for errors, `warning` otherwise.
    pub level: String,
    /// The diagnostic's code (`unknown_key`, …).
    pub title: String,
    /// What is wrong and how to fix it.
    pub message: String,
}
