//! What a job's deploys would do, as `slipway plan` and `slipway run --dry-run` show it: the API
//! calls in order with secret values as `[secure]`, and where each `$NAME` an option reads comes
//! from. Variables are resolved by name ([`crate::cmd::vars`]); nothing is decrypted or contacted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use slipway_pipelines::plan::{Deploy, Job, Plan};
use slipway_providers::{DeployContext, DryRun, EnvValue, hook::endpoints_from};
use slipway_secrets::{MASK, Secret};

use crate::cmd::vars::{Known, RunVars};

/// One deploy's dry run and the sources of the values its options read.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The provider's dry run.
    pub run: DryRun,
    /// One line per `$NAME` the options read (and per encrypted option): where its value comes from.
    pub sources: Vec<String>,
}

/// The context deploy dry runs see for `job`: the event's repository, branch and commit (also as
/// `TRAVIS_*` variables), the working tree at `workdir`, every variable `vars` knows by name (secrets as `[secure]`) and
/// the endpoint overrides of this process. Nothing is decrypted.
pub fn deploy_context(
    plan: &Plan,
    workdir: &Path,
    vars: &BTreeMap<String, Known>,
) -> DeployContext {
    let mut out = DeployContext::for_event(&plan.context, workdir);
    out.endpoints = endpoints_from(|name| std::env::var(name).ok());
    // Plans and dry runs are of one's own machine, as `slipway run` deploys.
    out.credentials = slipway_providers::Credentials::Ambient;
    for (name, value) in event_vars(&plan.context) {
        out = out.with_env(name, &value);
    }
    for (name, known) in vars {
        let value = match &known.value {
            Some(v) => EnvValue::Plain(v.clone()),
            None => EnvValue::Secret(Secret::new(MASK.to_owned())),
        };
        out.env.insert(name.clone(), value);
    }
    out
}

/// The event's own variables, as the job will have them (`name: Tool $TRAVIS_TAG`).
fn event_vars(c: &slipway_pipelines::plan::Context) -> [(&'static str, String); 5] {
    [
        ("TRAVIS_BRANCH", c.branch.clone()),
        ("TRAVIS_TAG", c.tag.clone().unwrap_or_default()),
        ("TRAVIS_COMMIT", c.commit.clone().unwrap_or_default()),
        ("TRAVIS_REPO_SLUG", c.repo.clone()),
        ("TRAVIS_EVENT_TYPE", c.event.as_str().to_owned()),
    ]
}

/// Each deploy of `job` with the API calls it would make, in order, and its values' sources.
pub fn deploy_previews(plan: &Plan, job: &Job, workdir: &Path, vars: &RunVars) -> Vec<Preview> {
    let known = vars.for_job(job);
    let ctx = deploy_context(plan, workdir, &known);
    job.deploys
        .iter()
        .map(|deploy| Preview {
            run: slipway_providers::dry_run_deploy(deploy, &ctx),
            sources: if deploy.decision.included {
                value_sources(deploy, &known, &plan.context)
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// Where the values of `deploy`'s options come from: each `$NAME` once, in the order the options
/// name them, and each encrypted `secure:` option.
fn value_sources(
    deploy: &Deploy,
    known: &BTreeMap<String, Known>,
    event: &slipway_pipelines::plan::Context,
) -> Vec<String> {
    let repo = &event.repo;
    let from_event = event_vars(event);
    let mut names = Vec::new();
    let mut out = Vec::new();
    for (option, value) in &deploy.options {
        if let Some(cipher) = value.get("secure").and_then(|v| v.as_str())
            && !cipher.trim_start().starts_with('$')
        {
            out.push(format!(
                "`{option}` is an encrypted secure: value, decrypted only when the job runs"
            ));
        }
        references(value, &mut names);
    }
    for name in names {
        if !known.contains_key(&name)
            && let Some((_, value)) = from_event.iter().find(|(n, _)| *n == name)
        {
            out.push(format!("${name} comes from the build's event ({value})"));
            continue;
        }
        out.push(match known.get(&name) {
            Some(Known {
                value: Some(_),
                origin,
            }) => format!("${name} comes from {origin}"),
            Some(Known {
                value: None,
                origin,
            }) => {
                format!("${name} comes from {origin}, shown as {MASK}")
            }
            None => format!(
                "${name} is not set: give it with --env {name}=… or --secret {name}=…, or \
                 `slipway secrets set --repo {repo} {name}`"
            ),
        });
    }
    out
}

/// Every `$NAME` and `${NAME}` in the strings of `value`, each once (`\$` is a literal dollar).
fn references(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find('$') {
                let escaped = rest[..i].ends_with('\\');
                let after = &rest[i + 1..];
                let (name, skip) = match after.strip_prefix('{') {
                    Some(b) => b.find('}').map_or(("", 0), |end| (&b[..end], end + 2)),
                    None => {
                        let end = after
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(after.len());
                        (&after[..end], end)
                    }
                };
                if !escaped
                    && crate::cmd::dotenv::is_var_name(name)
                    && !out.iter().any(|n| n == name)
                {
                    out.push(name.to_owned());
                }
                rest = &after[skip..];
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// The plan as JSON, each job's deploys carrying their API calls (`calls`, `sources`, and `error`
/// when the options cannot be used), so machine readers see the same as the text.
pub fn with_deploy_calls(plan: &Plan, workdir: &Path, vars: &RunVars) -> serde_json::Value {
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    let jobs = plan.stages.iter().flat_map(|s| s.jobs.iter());
    let stages = value.get_mut("stages").and_then(|s| s.as_array_mut());
    let job_values = stages
        .into_iter()
        .flatten()
        .filter_map(|s| s.get_mut("jobs").and_then(|j| j.as_array_mut()))
        .flatten();
    for (job, job_value) in jobs.zip(job_values) {
        let previews = deploy_previews(plan, job, workdir, vars);
        let deploys = job_value.get_mut("deploys").and_then(|d| d.as_array_mut());
        for (preview, deploy) in previews.into_iter().zip(deploys.into_iter().flatten()) {
            let Some(obj) = deploy.as_object_mut() else {
                continue;
            };
            let run = preview.run;
            obj.insert(
                "calls".into(),
                serde_json::to_value(&run.calls).unwrap_or_default(),
            );
            if !preview.sources.is_empty() {
                obj.insert("sources".into(), preview.sources.into());
            }
            if let Some(c) = run.credentials {
                obj.insert("credentials".into(), c.into());
            }
            if let Some(e) = run.error {
                obj.insert("error".into(), e.into());
            }
        }
    }
    value
}

/// What a deploy that runs does to the build dir first, for its verdict line: dpl v1 resets it to
/// how the job started unless `skip_cleanup` (see the runner's docs), so a deploy of build output
/// that forgot `skip_cleanup: true` shows it here before it uploads nothing.
pub fn cleanup_note(deploy: &Deploy) -> &'static str {
    match (deploy.decision.included, deploy.skip_cleanup) {
        (false, _) => "",
        (true, false) => " (the build dir is reset to how the job started first)",
        (true, true) => " (skip_cleanup: deploys the build dir as the job left it)",
    }
}

/// Writes a deploy's preview under its verdict line: one numbered line per API call, then where
/// the values come from.
pub fn write_preview(out: &mut String, indent: &str, preview: &Preview) {
    let run = &preview.run;
    if let Some(e) = &run.error {
        let _ = writeln!(out, "{indent}cannot run: {e}");
    }
    if !run.conditions.is_empty() {
        let _ = writeln!(
            out,
            "{indent}only if the job's shell says: {}",
            run.conditions.join(" && ")
        );
    }
    if let Some(c) = &run.credentials {
        let _ = writeln!(out, "{indent}credentials: {c}");
    }
    for (i, call) in run.calls.iter().enumerate() {
        let _ = writeln!(out, "{indent}{}. {call}", i + 1);
    }
    for line in &preview.sources {
        let _ = writeln!(out, "{indent}value: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_once_in_order_and_escapes_are_not_references() {
        let value = serde_json::json!({
            "a": "$B-${A}", "b": ["x$B", "\\$NOT"], "c": {"secure": "$S"}, "d": "$1 ${} $"
        });
        let mut names = Vec::new();
        references(&value, &mut names);
        assert_eq!(names, ["B", "A", "S"]);
    }
}
