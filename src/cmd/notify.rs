//! Notifications in `slipway run`: what the build would send, printed and never sent.
//!
//! A local run keeps its builds' results per repository and branch in the data dir
//! (`local-results.json`), so `on_success: change` compares with the previous local run of the
//! branch as the server compares with the previous build.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use slipway_notifications::{BuildFacts, JobFacts, compose};
use slipway_pipelines::plan::{Channel, Notification, Outcome, Plan};
use slipway_runner::{BuildOutcome, BuildResult};

/// The file of local results, in the data dir.
const RESULTS_FILE: &str = "local-results.json";

fn results_path() -> Option<PathBuf> {
    slipway_secrets::default_data_dir()
        .ok()
        .map(|d| d.join(RESULTS_FILE))
}

fn key(plan: &Plan) -> String {
    format!("{} {}", plan.context.repo, plan.context.branch)
}

fn load() -> BTreeMap<String, Outcome> {
    results_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The previous local run's outcome on this repository and branch.
pub fn previous(plan: &Plan) -> Option<Outcome> {
    load().get(&key(plan)).copied()
}

/// Remembers this run's outcome for the next one.
pub fn remember(plan: &Plan, outcome: Outcome) -> anyhow::Result<()> {
    let Some(path) = results_path() else {
        return Ok(());
    };
    let mut all = load();
    all.insert(key(plan), outcome);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&all)?)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// A build result as the notification rule sees it.
pub fn outcome_of(result: BuildResult) -> Outcome {
    match result {
        BuildResult::Passed => Outcome::Passed,
        BuildResult::Failed => Outcome::Failed,
        BuildResult::Errored => Outcome::Errored,
        BuildResult::Canceled => Outcome::Canceled,
    }
}

/// Who made the commit built and when, as the local git repository says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    pub committed_at: Option<String>,
}

/// The facts of a local build, from the plan and the local git repository.
pub fn facts(plan: &Plan, build_id: &str, people: People) -> BuildFacts {
    let ctx = &plan.context;
    BuildFacts {
        id: build_id.to_owned(),
        number: "1".to_owned(),
        url: None,
        repo: ctx.repo.clone(),
        repo_url: None,
        event: ctx.event,
        branch: ctx.branch.clone(),
        tag: ctx.tag.clone(),
        commit: ctx.commit.clone().unwrap_or_default(),
        message: ctx.commit_message.clone(),
        author_name: people.author_name,
        author_email: people.author_email,
        committer_name: people.committer_name,
        committer_email: people.committer_email,
        committed_at: people.committed_at,
        compare_url: None,
        pull_request: ctx.pull_request,
        pull_request_title: None,
        state: None,
        previous: None,
        started_at: None,
        finished_at: None,
        duration: None,
        jobs: Vec::new(),
    }
}

/// Adds a finished build's outcome and jobs to its facts.
pub fn finish(facts: &mut BuildFacts, outcome: &BuildOutcome, previous: Option<Outcome>) {
    facts.state = Some(outcome_of(outcome.result));
    facts.previous = previous;
    facts.duration = Some(outcome.duration.as_secs());
    facts.jobs = outcome
        .jobs
        .iter()
        .map(|j| JobFacts {
            id: format!("{}.{}", facts.id, j.number),
            number: format!("{}.{}", facts.number, j.number),
            state: j.result.as_str().to_owned(),
            allow_failure: j.allow_failure,
            config: serde_json::Value::Null,
            started_at: None,
            finished_at: None,
        })
        .collect();
}

/// Prints what the plan's notifications would send for `outcome` (`Started` at start): one
/// line per message, secure values as `[secure]`, and why the others send nothing.
pub fn print(plan: &Plan, outcome: Outcome, previous: Option<Outcome>, facts: &BuildFacts) {
    if plan.notifications.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let when = match outcome {
        Outcome::Started => "at start".to_owned(),
        other => format!(
            "for this {} build (previous on {}: {})",
            other.as_str(),
            plan.context.branch,
            previous.map_or("none", Outcome::as_str)
        ),
    };
    let mut lines = Vec::new();
    for n in &plan.notifications {
        let name = n.channel.name();
        if !n.decision.included {
            if outcome != Outcome::Started {
                lines.push(format!("  {name}: not sent: {}", n.decision.reason));
            }
            continue;
        }
        if !n.fires(outcome, previous) {
            if outcome != Outcome::Started {
                lines.push(format!("  {name}: not sent: {}", rule(n, outcome)));
            }
            continue;
        }
        let messages = compose(n, facts);
        if messages.is_empty() {
            lines.push(format!(
                "  {name}: not sent: no recipient (the commit names no author address)"
            ));
        }
        for m in messages {
            lines.push(format!("  would send {}", m.describe()));
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nNotifications {when} (not sent by a local run):");
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
}

/// Which `on_*` setting kept a notification back.
fn rule(n: &Notification, outcome: Outcome) -> String {
    let (key, f) = match outcome {
        Outcome::Started => ("on_start", n.on.start),
        Outcome::Passed => ("on_success", n.on.success),
        Outcome::Failed => ("on_failure", n.on.failure),
        Outcome::Errored if matches!(n.channel, Channel::Webhooks { .. }) => {
            ("on_error", n.on.error)
        }
        Outcome::Errored => ("on_failure", n.on.failure),
        Outcome::Canceled | Outcome::Superseded => ("on_cancel", n.on.cancel),
    };
    format!("{key}: {}", f.as_str())
}

/// The plan's notifications for `--dry-run`: each with whether it is sent for this event.
pub fn print_planned(out: &mut impl std::io::Write, plan: &Plan) -> std::io::Result<()> {
    if plan.notifications.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nNotifications (decided when the build starts and ends; a local run only prints them):"
    )?;
    for n in &plan.notifications {
        let targets: Vec<&str> = n.channel.targets().iter().map(|t| t.shown()).collect();
        let verdict = if n.decision.included {
            "sent"
        } else {
            "not sent"
        };
        writeln!(
            out,
            "  {} {}: {verdict}: {}",
            n.channel.name(),
            if targets.is_empty() {
                "(commit author and committer)".to_owned()
            } else {
                targets.join(", ")
            },
            n.decision.reason
        )?;
    }
    Ok(())
}
