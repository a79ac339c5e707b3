//! Plans every real-world pipeline file of the shared corpus and compares the jobs with what
//! Travis CI's own config processor (travis-yml) reported for the same file and event.
//!
//! The corpus and the expected results live in `../shared` (or `$SLIPWAY_SHARED`); they are read,
//! never copied. Without them the tests print that they skipped, unless `CI=true`.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use slipway_pipelines::plan::{Context, EventType, Plan};
use slipway_pipelines::{PlanOptions, plan_with};

use crate::util::shared_dir;

/// One corpus file with Travis's verdicts.
struct Case {
    /// `travis/NAME` or `course/PATH`.
    id: String,
    path: PathBuf,
    expected: Value,
}

fn cases(shared: &std::path::Path) -> Vec<Case> {
    let mut out = Vec::new();
    for (set, dir) in [("travis", "corpus/travis"), ("course", "corpus/course")] {
        let lines = std::fs::read_to_string(shared.join(format!("corpus/expected/{set}.jsonl")))
            .expect("expected results are readable");
        for line in lines.lines().filter(|l| !l.trim().is_empty()) {
            let expected: Value = serde_json::from_str(line).expect("expected line is JSON");
            let file = expected["file"].as_str().expect("file name").to_owned();
            out.push(Case {
                id: format!("{set}/{file}"),
                path: shared.join(dir).join(&file),
                expected,
            });
        }
    }
    out
}

/// The four contexts' request data turned into a [`Context`].
fn context_of(data: &Value) -> Context {
    let s = |k: &str| data[k].as_str().map(str::to_owned);
    let event = match data["type"].as_str() {
        Some("pull_request") => EventType::PullRequest,
        Some("api") => EventType::Api,
        Some("cron") => EventType::Cron,
        _ => EventType::Push,
    };
    Context {
        event,
        branch: s("branch").unwrap_or_default(),
        tag: s("tag"),
        pull_request: (event == EventType::PullRequest).then_some(1),
        fork: data["fork"].as_bool().unwrap_or(false),
        repo: s("repo").unwrap_or_default(),
        head_repo: s("head_repo"),
        head_branch: s("head_branch"),
        commit_message: s("commit_message").unwrap_or_default(),
        commit: None,
        sender: s("sender").unwrap_or_default(),
        env: Default::default(),
        default_branch: None,
        compare_url: None,
    }
}

/// A planned job in the shape of travis-yml's job list.
fn travis_shape(plan: &Plan) -> Vec<Value> {
    plan.stages
        .iter()
        .flat_map(|s| &s.jobs)
        .map(|job| {
            let mut m = Map::new();
            m.insert("allow_failure".into(), json!(job.allow_failure));
            m.insert("stage".into(), json!(job.stage));
            if let Some(name) = &job.name {
                m.insert("name".into(), json!(name));
            }
            for (k, v) in &job.matrix {
                m.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        })
        .collect()
}

/// Travis's job list with the default stage spelled out (travis-yml leaves it null when a file
/// uses no stages; Slipway always names it `test`).
fn expected_shape(jobs: &Value) -> Vec<Value> {
    jobs.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut j| {
            if j["stage"].is_null() {
                j["stage"] = json!("test");
            }
            j
        })
        .collect()
}

const CONTEXTS: [&str; 4] = ["push_master", "pr_master", "push_other", "tag"];

/// Files where Slipway and travis-yml disagree on purpose, each pinned by a named test below.
const PINNED: &[(&str, &str)] = &[(
    "travis/aio-libs__aiohttp.travis.yml",
    "aiohttp_undefined_alias_is_a_diagnostic_not_a_plan",
)];

/// Compares one file in every context; returns the differences found.
fn compare(case: &Case) -> Vec<String> {
    let bytes = std::fs::read(&case.path).expect("corpus file readable");
    let mut diffs = Vec::new();
    for name in CONTEXTS {
        let expected = &case.expected["contexts"][name];
        let ctx = context_of(&expected["request"]["data"]);
        let unfiltered = match plan_with(
            &case.id,
            &bytes,
            &ctx,
            PlanOptions {
                request_filters: false,
                ..PlanOptions::default()
            },
        ) {
            Ok(p) => p,
            Err(diags) => {
                diffs.push(format!(
                    "{name}: cannot plan: {}",
                    diags
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
                continue;
            }
        };
        let ours = travis_shape(&unfiltered);
        let theirs = expected_shape(&expected["jobs"]);
        if ours != theirs {
            let first = (0..ours.len().max(theirs.len()))
                .find(|i| ours.get(*i) != theirs.get(*i))
                .unwrap_or(0);
            let show = |v: Option<&Value>| v.map_or("none".to_owned(), |v| v.to_string());
            diffs.push(format!(
                "{name}: jobs differ ({} ours, {} travis); first difference at job {}\n  ours:   {}\n  travis: {}",
                ours.len(),
                theirs.len(),
                first + 1,
                show(ours.get(first)),
                show(theirs.get(first)),
            ));
        }
        let request = &expected["request"];
        let accepted = request["if_accepted"].as_bool().unwrap_or(true)
            && request["branches_accepted_approx"]
                .as_bool()
                .unwrap_or(true);
        if unfiltered.build.included != accepted {
            diffs.push(format!(
                "{name}: build decision differs: ours {} ({}), travis {accepted}",
                unfiltered.build.included, unfiltered.build.reason
            ));
        }
        let filtered = slipway_pipelines::plan(&case.id, &bytes, &ctx).expect("planned once");
        let planned_jobs: usize = filtered.stages.iter().map(|s| s.jobs.len()).sum();
        if accepted && planned_jobs != ours.len() || !accepted && planned_jobs != 0 {
            diffs.push(format!(
                "{name}: request filters not applied: {planned_jobs} jobs planned"
            ));
        }
    }
    diffs
}

#[test]
fn corpus_jobs_match_travis() {
    let Some(shared) = shared_dir() else { return };
    let cases = cases(&shared);
    assert!(cases.len() >= 100, "only {} corpus files", cases.len());
    let mut matched = 0usize;
    let mut per_context = [0usize; 4];
    let mut report = String::new();
    for case in &cases {
        let diffs = compare(case);
        for (i, name) in CONTEXTS.iter().enumerate() {
            if !diffs.iter().any(|d| d.starts_with(&format!("{name}:"))) {
                per_context[i] += 1;
            }
        }
        if diffs.is_empty() {
            matched += 1;
            assert!(
                !PINNED.iter().any(|(id, _)| *id == case.id),
                "{} matches now; remove its pinned difference",
                case.id
            );
        } else if !PINNED.iter().any(|(id, _)| *id == case.id) {
            report.push_str(&format!("\n== {}\n{}\n", case.id, diffs.join("\n")));
        }
    }
    let total = cases.len();
    let pct = matched as f64 * 100.0 / total as f64;
    println!("corpus: {matched}/{total} files match travis-yml in all four contexts ({pct:.1}%)");
    for (i, name) in CONTEXTS.iter().enumerate() {
        println!(
            "  {name}: {}/{total} ({:.1}%)",
            per_context[i],
            per_context[i] as f64 * 100.0 / total as f64
        );
    }
    assert!(
        pct >= 98.0,
        "only {pct:.1}% of the corpus matches travis-yml; unpinned differences:{report}"
    );
    assert!(
        report.is_empty(),
        "differences that are neither fixed nor pinned:{report}"
    );
}

#[test]
fn every_corpus_file_plans_or_gives_a_diagnostic() {
    let Some(shared) = shared_dir() else { return };
    for case in cases(&shared) {
        let bytes = std::fs::read(&case.path).unwrap();
        let ctx = context_of(&case.expected["contexts"]["push_master"]["request"]["data"]);
        match slipway_pipelines::plan(&case.id, &bytes, &ctx) {
            Ok(plan) => {
                // Deterministic: planning twice gives byte-identical JSON.
                let again = slipway_pipelines::plan(&case.id, &bytes, &ctx).unwrap();
                assert_eq!(
                    serde_json::to_string(&plan).unwrap(),
                    serde_json::to_string(&again).unwrap(),
                    "{}",
                    case.id
                );
            }
            Err(diags) => {
                assert!(!diags.is_empty(), "{}: error without a diagnostic", case.id);
                assert!(diags.iter().all(|d| d.span.is_some()), "{}", case.id);
            }
        }
    }
}

/// Pinned: `aio-libs__aiohttp` uses `*py35` and `*deploy_stage_name`, anchors defined only in
/// comments. YAML says an alias must refer to an earlier anchor, so the file is invalid; travis-yml's
/// own loader let it through (planning 11 jobs). Slipway is right to refuse it: guessing what an
/// undefined alias meant would plan jobs the author never wrote. It reports a diagnostic with the
/// alias's position instead.
#[test]
fn aiohttp_undefined_alias_is_a_diagnostic_not_a_plan() {
    let Some(shared) = shared_dir() else { return };
    let path = shared.join("corpus/travis/aio-libs__aiohttp.travis.yml");
    let bytes = std::fs::read(path).unwrap();
    let diags = slipway_pipelines::plan("aiohttp.yml", &bytes, &Context::default()).unwrap_err();
    assert_eq!(diags.len(), 1);
    // saphyr reports the unknown anchor itself, as a syntax error naming it.
    assert!(
        matches!(diags[0].code.as_str(), "undefined_alias" | "yaml_syntax"),
        "{:?}",
        diags[0]
    );
    assert!(diags[0].message.contains("anchor"), "{}", diags[0].message);
    assert_eq!(diags[0].span.unwrap().start.line, 285);
    assert!(diags[0].hint.is_some());
}

/// Pinned: `Automattic__mongoose` and `jekyll__jekyll` name jobs with an emoji. Travis's loader
/// read the file as binary and dropped every non-ASCII byte, so Travis ran `Linter` where the file
/// says `👕Linter`. Slipway reproduces that for `.travis.yml` files, because those jobs (and their
/// commands) must behave as they did on Travis; a `.slipway.yml` keeps its UTF-8 text as written,
/// which is what an author of a new file means.
#[test]
fn travis_files_drop_non_ascii_as_travis_did_slipway_files_keep_it() {
    let text = "language: node_js\njobs:\n  include:\n    - name: \"\u{1F455}Linter\"\n      script: echo \u{2713}\n";
    let name_of = |file: &str| {
        let plan = slipway_pipelines::plan(file, text.as_bytes(), &Context::default()).unwrap();
        let job = &plan.stages[0].jobs[0];
        (
            job.name.clone().unwrap(),
            job.phases
                .iter()
                .find(|p| p.name.as_str() == "script")
                .unwrap()
                .commands[0]
                .clone(),
        )
    };
    assert_eq!(
        name_of(".travis.yml"),
        ("Linter".to_owned(), "echo".to_owned())
    );
    assert_eq!(
        name_of(".slipway.yml"),
        ("\u{1F455}Linter".to_owned(), "echo \u{2713}".to_owned())
    );
}
