//! Matrix and stage expansion, step for step as Travis's config processor does it.
//!
//! The order of the steps matters as much as the steps, because each one sees the previous one's
//! output (e.g. `exclude` runs after `env.global` was added, `allow_failures` after stages were
//! assigned). [`expand`] runs them in Travis's order:
//!
//! 1. the cartesian product of the root's expand keys ([`crate::config::EXPAND_KEYS`] order, the
//!    first key varying slowest), `env.jobs` rows being the values of `env`;
//! 2. `jobs.include` appended — or replacing the product when that is a single job;
//!    an include without `stage:` takes the previous include's stage;
//! 3. one default job when there is still none;
//! 4. every job inherits the root's other keys, then the FIRST value of each expand key;
//! 5. env: jobs without `env` get the first `env.jobs` row; `env.global` is put first;
//! 6. `jobs.exclude` (partial match; `env` must match exactly, without the global part);
//! 7. keys the job's language/OS does not support are dropped (`python:` in a Go job, `arch:` on
//!    macOS, …); 8. duplicates dropped; 9. job `if:` evaluated;
//! 10. stages: ordered by `stages:` then first use, default `test`, a job without a stage takes
//!     the previous job's, stage `if:` evaluated, empty stages and their jobs dropped;
//! 11. `allow_failures` (partial match, `env` special, `if:` on the entry);
//! 12. jobs ordered by stage, then required before allowed-to-fail, then original order.

use std::borrow::Cow;

use serde_json::Value;

use crate::conditions::{self, Variables};
use crate::config::{
    Attrs, BUILD_ONLY_KEYS, Config, EXPAND_KEYS, EnvEntry, JobAttrs, is_expand_key,
    languages_supporting, oses_supporting,
};
use crate::plan::{Context, EnvValue, Skipped};

/// The default stage name.
pub const DEFAULT_STAGE: &str = "test";

/// One job after expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedJob {
    /// The job's settings (root keys inherited, expand keys single-valued, env a list).
    pub attrs: Attrs,
    /// Its stage; `None` when the file uses no stages at all.
    pub stage: Option<String>,
    /// Marked by `allow_failures`.
    pub allow_failure: bool,
    /// Why it is in: its origin and the conditions it passed.
    pub reason: String,
}

/// A stage that survived filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedStage {
    /// The stage name, as first written.
    pub name: String,
    /// Why it is in.
    pub reason: String,
}

/// The result of expansion for one context.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expansion {
    /// Stages in order (empty when the file uses none: all jobs are in the default stage).
    pub stages: Vec<ExpandedStage>,
    /// Jobs in Travis's order.
    pub jobs: Vec<ExpandedJob>,
    /// Jobs and stages left out, with why.
    pub skipped: Vec<Skipped>,
}

/// What a condition evaluates against: the request plus one job's (or the root's) settings,
/// the job's settings winning, as in Travis.
pub struct ConditionData<'a> {
    /// The job's or root's attributes.
    pub attrs: &'a Attrs,
    /// The request.
    pub ctx: &'a Context,
}

fn attr_scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) => a.first().and_then(attr_scalar),
        _ => None,
    }
}

impl Variables for ConditionData<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let ctx = self.ctx;
        match name {
            "os" | "dist" | "group" | "language" | "sudo" | "arch" => {
                self.attrs.get(name).and_then(attr_scalar)
            }
            "type" => Some(ctx.event.as_str().to_owned()),
            "branch" => Some(ctx.branch.clone()),
            "tag" => ctx.tag.clone(),
            "repo" => Some(ctx.repo.clone()),
            "head_repo" => ctx.head_repo.clone(),
            "head_branch" => ctx.head_branch.clone(),
            "sender" => Some(ctx.sender.clone()),
            "fork" => Some(ctx.fork.to_string()),
            "commit_message" => Some(ctx.commit_message.clone()),
            "pull_request" => ctx.pull_request.map(|n| n.to_string()),
            _ => None,
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        let mut found = None;
        for entry in env_of_attrs(self.attrs) {
            if let EnvEntry::Vars(vars) = entry {
                for (k, v) in vars {
                    if k == name
                        && let EnvValue::Plain(s) = v
                    {
                        found = Some(unquote(&s));
                    }
                }
            }
        }
        found.or_else(|| self.ctx.env.get(name).cloned())
    }
}

/// The env entries conditions see: a job's list, or the root's `{global, jobs}` flattened.
fn env_of_attrs(attrs: &Attrs) -> Vec<EnvEntry> {
    match attrs.get("env") {
        Some(Value::Object(map)) => ["global", "jobs"]
            .iter()
            .filter_map(|k| map.get(*k))
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(EnvEntry::from_json)
            .collect(),
        _ => attrs.env_entries(),
    }
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].to_owned();
        }
    }
    t.to_owned()
}

/// The outcome of evaluating an `if:` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondOutcome {
    /// No condition, or it holds.
    Accepted,
    /// It does not hold.
    Rejected,
    /// It does not parse; Travis treats that as false.
    Invalid(String),
}

/// Evaluates an optional `if:` condition like Travis: absent is true, invalid is false.
pub fn evaluate(cond: Option<&str>, attrs: &Attrs, ctx: &Context) -> CondOutcome {
    let Some(cond) = cond else {
        return CondOutcome::Accepted;
    };
    match conditions::parse(cond) {
        Ok(c) => {
            if c.evaluate(&ConditionData { attrs, ctx }) {
                CondOutcome::Accepted
            } else {
                CondOutcome::Rejected
            }
        }
        Err(e) => CondOutcome::Invalid(e.to_string()),
    }
}

fn cond_text(cond: &str) -> String {
    cond.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn wrap(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Whether the root supports `key` for its language and OS list (a key unsupported by the root
/// does not expand).
fn root_supports(config: &Config, key: &str) -> bool {
    let language = config.root.str_of("language").unwrap_or("");
    if let Some(langs) = languages_supporting(key)
        && !langs.contains(&language)
    {
        return false;
    }
    if let Some(oses) = oses_supporting(key, None) {
        let root_os = config.root.str_list("os");
        return root_os.iter().any(|o| oses.contains(&o.as_str()));
    }
    true
}

/// Whether a job of `language` on `os` keeps `key` = `value`.
fn job_supports(language: &str, os: &str, key: &str, value: &Value) -> bool {
    if let Some(langs) = languages_supporting(key)
        && !langs.contains(&language)
    {
        return false;
    }
    if let Some(oses) = oses_supporting(key, value.as_str())
        && !oses.contains(&os)
    {
        return false;
    }
    if key == "os" && language == "objective-c" && value.as_str() != Some("osx") {
        return false;
    }
    true
}

/// The expand keys the root sets (non-empty) and supports, in expansion order.
fn axes(config: &Config) -> Vec<&'static str> {
    EXPAND_KEYS
        .iter()
        .copied()
        .filter(|k| config.root.get(*k).is_some_and(|v| !is_blank(v)))
        .filter(|k| root_supports(config, k))
        .collect()
}

fn product(config: &Config, keys: &[&'static str]) -> Vec<Attrs> {
    if keys.is_empty() {
        return Vec::new();
    }
    let mut rows: Vec<Attrs> = vec![Attrs::new()];
    for key in keys {
        let values: Vec<Value> = if *key == "env" {
            match &config.env_jobs {
                Some(rows) => rows.clone(),
                // `env` with only `global`: one row without job vars.
                None => vec![Value::Array(Vec::new())],
            }
        } else {
            wrap(&config.root[*key])
        };
        let mut next = Vec::with_capacity(rows.len() * values.len());
        for row in &rows {
            for value in &values {
                let mut r = row.clone();
                r.insert((*key).to_owned(), value.clone());
                next.push(r);
            }
        }
        rows = next;
    }
    rows
}

/// How big a build's matrix is, counted from its axes without building a single job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixSize {
    /// Jobs the expansion makes before `jobs.exclude`, duplicates and `if:` remove any: the
    /// product of the axes (or the includes in its place when it is one job) plus the includes.
    /// Saturates instead of overflowing.
    pub jobs: u64,
    /// Each expanding root key with more than one value and how many it has, in expansion order.
    pub axes: Vec<(&'static str, u64)>,
    /// `jobs.include` entries.
    pub includes: u64,
}

impl MatrixSize {
    /// The axis with the most values (the first of equals), the one to shrink first.
    pub fn largest_axis(&self) -> Option<(&'static str, u64)> {
        self.axes
            .iter()
            .copied()
            .fold(None, |best, axis| match best {
                Some((_, n)) if n >= axis.1 => best,
                _ => Some(axis),
            })
    }

    /// `env 100 × rvm 100 = 10000`, for messages.
    pub fn describe(&self) -> String {
        let product = self
            .axes
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(" × ");
        match (product.is_empty(), self.includes) {
            (true, 0) => "one job".to_owned(),
            (true, n) => format!("jobs.include {n}"),
            (false, 0) => product,
            (false, n) => format!("{product} + jobs.include {n}"),
        }
    }
}

/// Counts the jobs `config` expands to, as [`expand`] steps 1–3 would make them, in time
/// proportional to the file rather than to the jobs: a 100 × 100 matrix is refused before ten
/// thousand jobs are built.
pub fn matrix_size(config: &Config) -> MatrixSize {
    let axes: Vec<(&'static str, u64)> = axes(config)
        .into_iter()
        .map(|key| {
            let n = if key == "env" {
                config.env_jobs.as_ref().map_or(1, Vec::len)
            } else {
                wrap_len(&config.root[key])
            };
            (key, n as u64)
        })
        .collect();
    let product = if axes.is_empty() {
        0
    } else {
        axes.iter().fold(1u64, |acc, (_, n)| acc.saturating_mul(*n))
    };
    // Only axes with several values multiply anything (an `os: linux` is one job's setting).
    let axes: Vec<(&'static str, u64)> = axes.into_iter().filter(|(_, n)| *n > 1).collect();
    let includes = config.include.len() as u64;
    let jobs = match (product, includes) {
        (1, i) if i > 0 => i,
        (0, 0) => 1,
        (p, i) => p.saturating_add(i),
    };
    MatrixSize {
        jobs,
        axes,
        includes,
    }
}

fn wrap_len(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        _ => 1,
    }
}

/// Includes with Travis's stage inheritance: no `stage:` means the previous include's stage.
fn included(config: &Config) -> Vec<Attrs> {
    let mut prev: Option<Value> = None;
    config
        .include
        .iter()
        .map(|job| {
            let mut job = job.clone();
            match job.get("stage") {
                Some(s) => prev = Some(s.clone()),
                None => {
                    if let Some(s) = &prev {
                        job.insert("stage".to_owned(), s.clone());
                    }
                }
            }
            job
        })
        .collect()
}

/// Env rows become lists; a job without env gets the first `env.jobs` row; `env.global` goes first.
fn with_env(config: &Config, job: &mut Attrs) {
    let own: Option<Vec<Value>> = job.get("env").map(|e| match e {
        Value::Array(items) => items.iter().filter(|v| !is_blank(v)).cloned().collect(),
        Value::Object(_) => vec![e.clone()],
        other => vec![other.clone()],
    });
    let mut env = match own {
        Some(list) => list,
        None => match config.env_jobs.as_ref().and_then(|rows| rows.first()) {
            Some(first) => vec![first.clone()],
            None => Vec::new(),
        },
    };
    if !config.env_global.is_empty() {
        let mut all = config.env_global.clone();
        all.append(&mut env);
        let mut uniq: Vec<Value> = Vec::new();
        for v in all {
            if !uniq.contains(&v) {
                uniq.push(v);
            }
        }
        env = uniq;
    }
    if job.contains_key("env") || !env.is_empty() {
        job.insert("env".to_owned(), Value::Array(env));
    }
}

/// The job's env without the global entries, as `exclude` and `allow_failures` compare it.
fn own_env(config: &Config, job: &Attrs) -> Option<Vec<Value>> {
    let env = job.get("env")?.as_array()?;
    Some(
        env.iter()
            .filter(|v| !config.env_global.contains(v))
            .cloned()
            .collect(),
    )
}

fn excluded(config: &Config, job: &Attrs, ctx: &Context) -> bool {
    config.exclude.iter().any(|ex| {
        if evaluate(ex.str_of("if"), job, ctx) != CondOutcome::Accepted {
            return false;
        }
        ex.iter()
            .filter(|(k, _)| *k != "if")
            .all(|(k, v)| match k.as_str() {
                "env" => own_env(config, job).as_ref() == v.as_array(),
                "stage" => match job.str_of("stage") {
                    Some(s) => Some(s) == v.as_str(),
                    None => v
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(DEFAULT_STAGE)),
                },
                _ => job.get(k).map(wrap) == Some(wrap(v)),
            })
    })
}

fn allow_failure_matches(config: &Config, af: &Attrs, job: &Attrs, ctx: &Context) -> bool {
    af.iter()
        .filter(|(k, _)| *k != "if")
        .all(|(k, v)| match k.as_str() {
            "branch" => v.as_str() == Some(ctx.branch.as_str()),
            "env" => {
                let Some(lft) = own_env(config, job) else {
                    return false;
                };
                let rgt = v.as_array().cloned().unwrap_or_default();
                if lft == rgt {
                    return true;
                }
                // Travis's workaround for env.jobs and env.global being merged by now.
                let others: Vec<&Value> = rgt.iter().filter(|x| !lft.contains(x)).collect();
                !others.is_empty() && others.iter().all(|x| config.env_global.contains(x))
            }
            _ => job.get(k) == Some(v),
        })
}

fn describe(job: &Attrs) -> String {
    if let Some(name) = job.str_of("name") {
        return name.to_owned();
    }
    let mut parts = Vec::new();
    for key in EXPAND_KEYS {
        if *key == "env" || *key == "os" {
            continue;
        }
        if let Some(v) = job.get(*key).and_then(Value::as_str) {
            parts.push(format!("{key}: {v}"));
        }
    }
    if let Some(Value::Array(env)) = job.get("env") {
        let vars: Vec<String> = env
            .iter()
            .filter_map(EnvEntry::from_json)
            .map(|e| match e {
                EnvEntry::Secure(_) => "[secure]".to_owned(),
                EnvEntry::Vars(v) => v
                    .iter()
                    .map(|(k, v)| match v {
                        EnvValue::Plain(s) => format!("{k}={s}"),
                        _ => format!("{k}=[secure]"),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect();
        if !vars.is_empty() {
            parts.push(vars.join(" "));
        }
    }
    if parts.is_empty() {
        parts.push(job.str_of("language").unwrap_or("job").to_owned());
    }
    parts.join(", ")
}

/// `a == b` for two jobs' settings, cheaply in the usual case (the duplicate checks compare every
/// pair of jobs, and jobs share most of their settings).
///
/// Jobs expanded from one file hold their keys in the same order, so they compare position by
/// position without hashing; settings with another key order are compared as maps. Single values
/// are compared first (matrix jobs differ in `node_js: 14` and the like), then lists and maps from
/// the last one back (`env` and an include's own keys are set after the shared root keys).
fn same_attrs(a: &Attrs, b: &Attrs) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if !a.keys().eq(b.keys()) {
        return a == b;
    }
    let nested = |v: &Value| matches!(v, Value::Array(_) | Value::Object(_));
    let pairs = || a.values().zip(b.values());
    pairs().filter(|(x, _)| !nested(x)).all(|(x, y)| x == y)
        && pairs()
            .rev()
            .filter(|(x, _)| nested(x))
            .all(|(x, y)| x == y)
}

/// Expands `config` into stages and jobs for `ctx`, as Travis does, in its order of steps.
pub fn expand(config: &Config, ctx: &Context) -> Expansion {
    let mut skipped = Vec::new();
    let jobs = matrix_jobs(config);
    let jobs = not_excluded(config, ctx, jobs, &mut skipped);
    let jobs = unique_jobs(jobs, &mut skipped);
    let jobs = accepted_jobs(ctx, jobs, &mut skipped);
    let (stages, expanded) = staged(config, ctx, jobs, &mut skipped);
    let mut expanded = expanded;
    mark_allowed_failures(config, ctx, &mut expanded);
    Expansion {
        jobs: ordered(&stages, expanded),
        stages,
        skipped,
    }
}

/// Steps 1–5: the product of the expand keys, the includes (or the root job), each with the
/// shared root keys, the first value of each expand key and its `env`; keys the job's language
/// and OS do not support are dropped (step 7, which sees no other job). Each job comes with why
/// it exists.
fn matrix_jobs(config: &Config) -> Vec<(Attrs, String)> {
    let keys = axes(config);
    // 1–3: product, includes, default.
    let rows = product(config, &keys);
    let origin = if rows.len() == 1 {
        "the root job"
    } else {
        "expanded from the build matrix"
    };
    let mut jobs: Vec<(Attrs, String)> = rows.into_iter().map(|j| (j, origin.to_owned())).collect();
    let includes: Vec<(Attrs, String)> = included(config)
        .into_iter()
        .enumerate()
        .map(|(i, j)| (j, format!("jobs.include[{i}]")))
        .collect();
    if jobs.len() == 1 && !includes.is_empty() {
        // A single matrix job is replaced by the includes (it is probably their duplicate).
        jobs = includes;
    } else {
        jobs.extend(includes);
    }
    if jobs.is_empty() {
        jobs.push((Attrs::new(), "the root job (no matrix)".to_owned()));
    }

    // 4: shared root keys, then the first value of each expand key.
    let shared: Vec<(&String, &Value)> = config
        .root
        .iter()
        .filter(|(k, v)| {
            !is_expand_key(k) && !BUILD_ONLY_KEYS.contains(&k.as_str()) && !is_blank(v)
        })
        .collect();
    let global: Vec<(&'static str, Value)> = keys
        .iter()
        .filter(|k| **k != "env")
        .filter_map(|k| wrap(&config.root[*k]).into_iter().next().map(|v| (*k, v)))
        .collect();
    for (job, _) in &mut jobs {
        let mut merged = Attrs::new();
        for (k, v) in &global {
            merged.insert((*k).to_owned(), v.clone());
        }
        for (k, v) in &shared {
            merged.insert((*k).clone(), (*v).clone());
        }
        for (k, v) in job.drain(..) {
            merged.insert(k, v);
        }
        *job = merged;
        // 5: env.
        with_env(config, job);
    }
    jobs
}

/// Step 6 (`jobs.exclude`), then step 7: keys a job's language and OS do not support.
fn not_excluded(
    config: &Config,
    ctx: &Context,
    mut jobs: Vec<(Attrs, String)>,
    skipped: &mut Vec<Skipped>,
) -> Vec<(Attrs, String)> {
    jobs.retain(|(job, _)| {
        let out = excluded(config, job, ctx);
        if out {
            skipped.push(Skipped {
                what: format!("job {}", describe(job)),
                reason: "matches an entry of jobs.exclude".to_owned(),
            });
        }
        !out
    });
    for (job, _) in &mut jobs {
        let language = job.str_of("language").unwrap_or("").to_owned();
        let os = job.str_of("os").unwrap_or("").to_owned();
        job.retain(|k, v| job_supports(&language, &os, k, v));
    }
    jobs
}

/// Step 8: a job the same as an earlier one is left out.
fn unique_jobs(jobs: Vec<(Attrs, String)>, skipped: &mut Vec<Skipped>) -> Vec<(Attrs, String)> {
    let mut unique: Vec<(Attrs, String)> = Vec::new();
    for (job, why) in jobs {
        if unique.iter().any(|(j, _)| same_attrs(j, &job)) {
            skipped.push(Skipped {
                what: format!("job {}", describe(&job)),
                reason: "duplicate of an earlier job".to_owned(),
            });
        } else {
            unique.push((job, why));
        }
    }
    unique
}

/// Why `what` is left out by its condition `cond`, when it is.
fn condition_skip(what: String, cond: Option<&str>, outcome: CondOutcome) -> Option<Skipped> {
    let cond = cond_text(cond.unwrap_or(""));
    let reason = match outcome {
        CondOutcome::Accepted => return None,
        CondOutcome::Rejected => format!("if: {cond} is false"),
        CondOutcome::Invalid(e) => format!("if: {cond} is invalid ({e})"),
    };
    Some(Skipped { what, reason })
}

/// Step 9: each job's `if:`.
fn accepted_jobs(
    ctx: &Context,
    jobs: Vec<(Attrs, String)>,
    skipped: &mut Vec<Skipped>,
) -> Vec<(Attrs, String)> {
    let mut accepted: Vec<(Attrs, String)> = Vec::new();
    for (job, why) in jobs {
        let cond = job.str_of("if").map(str::to_owned);
        let outcome = evaluate(cond.as_deref(), &job, ctx);
        if let Some(skip) =
            condition_skip(format!("job {}", describe(&job)), cond.as_deref(), outcome)
        {
            skipped.push(skip);
            continue;
        }
        let why = match &cond {
            Some(c) => format!("{why}; if: {} is true", cond_text(c)),
            None => why,
        };
        accepted.push((job, why));
    }
    accepted
}

/// Step 10: the stages of the build, and each job in its stage; a job whose stage is left out
/// is left out too.
fn staged(
    config: &Config,
    ctx: &Context,
    jobs: Vec<(Attrs, String)>,
    skipped: &mut Vec<Skipped>,
) -> (Vec<ExpandedStage>, Vec<ExpandedJob>) {
    let uses_stages =
        !config.stages.is_empty() || jobs.iter().any(|(j, _)| j.str_of("stage").is_some());
    let mut stages: Vec<ExpandedStage> = Vec::new();
    let mut job_stage: Vec<Option<String>> = vec![None; jobs.len()];
    if uses_stages {
        job_stage = assigned_stages(config, &jobs);
        stages = build_stages(config, ctx, &job_stage, skipped);
    }
    let mut expanded: Vec<ExpandedJob> = Vec::new();
    for ((attrs, reason), stage) in jobs.into_iter().zip(job_stage) {
        if let Some(s) = &stage
            && !stages.iter().any(|st| st.name.eq_ignore_ascii_case(s))
        {
            skipped.push(Skipped {
                what: format!("job {}", describe(&attrs)),
                reason: format!("its stage {s} is not part of this build"),
            });
            continue;
        }
        expanded.push(ExpandedJob {
            attrs,
            stage,
            allow_failure: false,
            reason,
        });
    }
    (stages, expanded)
}

/// Each job's stage: its own `stage:`, else the one of the job before it, else the default.
fn assigned_stages(config: &Config, jobs: &[(Attrs, String)]) -> Vec<Option<String>> {
    let mut names: Vec<String> = config.stages.iter().map(|s| s.name.clone()).collect();
    names.extend(
        jobs.iter()
            .filter_map(|(j, _)| j.str_of("stage").map(str::to_owned)),
    );
    let mut current = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case(DEFAULT_STAGE))
        .cloned()
        .unwrap_or_else(|| DEFAULT_STAGE.to_owned());
    jobs.iter()
        .map(|(job, _)| {
            if let Some(s) = job.str_of("stage") {
                current = s.to_owned();
            }
            Some(current.clone())
        })
        .collect()
}

/// The stages that run: every stage declared or used, first spelling wins, that has jobs and
/// whose `if:` holds.
fn build_stages(
    config: &Config,
    ctx: &Context,
    job_stage: &[Option<String>],
    skipped: &mut Vec<Skipped>,
) -> Vec<ExpandedStage> {
    let mut all: Vec<(String, Option<String>)> = Vec::new();
    let declared = config
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.condition.clone()));
    let used = job_stage.iter().flatten().map(|s| (s.clone(), None));
    for (name, cond) in declared.chain(used) {
        if !all.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            all.push((name, cond));
        }
    }
    let mut stages = Vec::new();
    for (name, cond) in all {
        let has_jobs = job_stage
            .iter()
            .flatten()
            .any(|s| s.eq_ignore_ascii_case(&name));
        let outcome = evaluate(cond.as_deref(), &config.root, ctx);
        if let Some(skip) = condition_skip(format!("stage {name}"), cond.as_deref(), outcome) {
            skipped.push(skip);
        } else if !has_jobs {
            skipped.push(Skipped {
                what: format!("stage {name}"),
                reason: "no jobs".to_owned(),
            });
        } else {
            stages.push(ExpandedStage {
                reason: match &cond {
                    Some(c) => format!("if: {} is true", cond_text(c)),
                    None => "declared or used by a job".to_owned(),
                },
                name,
            });
        }
    }
    stages
}

/// Step 11: `allow_failures` (matching sees the assigned stage, as in Travis).
fn mark_allowed_failures(config: &Config, ctx: &Context, expanded: &mut [ExpandedJob]) {
    if config.allow_failures.is_empty() {
        return;
    }
    for job in expanded {
        // Copy the settings only when the assigned stage is not already in them.
        let attrs = match &job.stage {
            Some(s) if job.attrs.str_of("stage") != Some(s) => {
                let mut attrs = job.attrs.clone();
                attrs.insert("stage".to_owned(), Value::String(s.clone()));
                Cow::Owned(attrs)
            }
            _ => Cow::Borrowed(&job.attrs),
        };
        job.allow_failure = config.allow_failures.iter().any(|af| {
            allow_failure_matches(config, af, &attrs, ctx)
                && evaluate(af.str_of("if"), &attrs, ctx) == CondOutcome::Accepted
        });
    }
}

/// Step 12: by stage, required before allowed failures, then original order; unique again.
fn ordered(stages: &[ExpandedStage], expanded: Vec<ExpandedJob>) -> Vec<ExpandedJob> {
    let stage_index = |job: &ExpandedJob| {
        job.stage
            .as_ref()
            .and_then(|s| stages.iter().position(|st| st.name.eq_ignore_ascii_case(s)))
    };
    let mut order: Vec<(Option<usize>, bool, usize)> = expanded
        .iter()
        .enumerate()
        .map(|(i, j)| (stage_index(j), j.allow_failure, i))
        .collect();
    order.sort();
    let mut sorted: Vec<ExpandedJob> = Vec::with_capacity(expanded.len());
    let mut slots: Vec<Option<ExpandedJob>> = expanded.into_iter().map(Some).collect();
    for (_, _, i) in order {
        let Some(job) = slots[i].take() else {
            continue;
        };
        if !sorted.iter().any(|j| {
            j.stage == job.stage
                && j.allow_failure == job.allow_failure
                && same_attrs(&j.attrs, &job.attrs)
        }) {
            sorted.push(job);
        }
    }
    sorted
}
