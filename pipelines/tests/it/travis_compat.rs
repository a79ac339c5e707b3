//! Travis's processor's leniencies, each fixture in and the plan or lint out: blank entries of
//! `include` lists are no jobs, deploy options are read under the name dpl reads them by, and a
//! command YAML split into a map is named with the quoted line that keeps it.

use serde_json::{Value, json};
use slipway_pipelines::config::JobAttrs;
use slipway_pipelines::diagnostic::Severity;
use slipway_pipelines::lint::lint;
use slipway_pipelines::plan::Plan;

use crate::util::{push, shared_dir};

fn planned(src: &str) -> Plan {
    slipway_pipelines::plan("ci.yml", src.as_bytes(), &push("main")).expect("plans")
}

fn job_names(plan: &Plan) -> Vec<String> {
    plan.stages
        .iter()
        .flat_map(|s| &s.jobs)
        .map(|j| j.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn blank_include_entries_are_dropped_not_made_into_jobs() {
    let plan = planned(
        "language: shell\nscript: echo hi\njobs:\n  include:\n    - {}\n    -\n    - name: one\n    - env:\n    - name: two\n  allow_failures:\n    - {}\n",
    );
    assert_eq!(job_names(&plan), ["one", "two"]);
    // A blank `allow_failures` entry matches nothing (it would otherwise match every job).
    assert!(
        plan.stages
            .iter()
            .flat_map(|s| &s.jobs)
            .all(|j| !j.allow_failure)
    );
}

#[test]
fn a_list_of_only_blank_includes_leaves_the_root_job() {
    let plan = planned("language: shell\nscript: echo hi\njobs:\n  include:\n    - {}\n    -\n");
    assert_eq!(plan.stages.iter().map(|s| s.jobs.len()).sum::<usize>(), 1);
}

fn deploy_options(src: &str) -> Vec<serde_json::Map<String, Value>> {
    let plan = planned(src);
    plan.stages
        .iter()
        .flat_map(|s| &s.jobs)
        .flat_map(|j| &j.deploys)
        .map(|d| d.options.clone().into_iter().collect())
        .collect()
}

#[test]
fn deploy_aliases_are_planned_under_the_name_dpl_reads() {
    let options = deploy_options(
        "script: make\ndeploy:\n  - provider: releases\n    api_key: $GH_TOKEN\n    file: dist/app\n  - provider: pages\n    github_token: $GH_TOKEN\n    local_dir: public\n  - provider: elasticbeanstalk\n    bucket_name: bundles\n    access_key: $AWS_ID\n    secret_key: $AWS_SECRET\n    region: us-east-1\n    app: web\n    env: web-env\n  - provider: heroku\n    api_key: $HEROKU\n",
    );
    let keys = |i: usize| options[i].keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(0), ["token", "file"]);
    assert_eq!(keys(1), ["token", "local_dir"]);
    assert_eq!(
        keys(2),
        [
            "bucket",
            "access_key_id",
            "secret_access_key",
            "region",
            "app",
            "env"
        ]
    );
    // heroku's own option is `api_key`: nothing to rename.
    assert_eq!(keys(3), ["api_key"]);
    assert_eq!(options[0]["token"], json!("$GH_TOKEN"));
}

#[test]
fn a_deploy_option_under_both_names_keeps_the_canonical_one() {
    let options = deploy_options(
        "script: make\ndeploy:\n  provider: releases\n  api_key: $OLD\n  token: $NEW\n  file: a\n",
    );
    assert_eq!(options[0].get("token"), Some(&json!("$NEW")));
    assert!(!options[0].contains_key("api_key"));
}

#[test]
fn every_deploy_alias_travis_reports_in_the_corpus_is_planned_canonical() {
    let Some(shared) = shared_dir() else { return };
    let mut checked = 0;
    for (set, dir) in [("travis", "corpus/travis"), ("course", "corpus/course")] {
        let lines =
            std::fs::read_to_string(shared.join(format!("corpus/expected/{set}.jsonl"))).unwrap();
        for line in lines.lines().filter(|l| !l.trim().is_empty()) {
            let expected: Value = serde_json::from_str(line).unwrap();
            let file = expected["file"].as_str().unwrap();
            let aliases: Vec<&Value> = expected["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| {
                    m["code"] == "alias_key" && m["key"].as_str().unwrap().ends_with("deploy")
                })
                .collect();
            if aliases.is_empty() {
                continue;
            }
            let bytes = std::fs::read(shared.join(dir).join(file)).unwrap();
            let config = slipway_pipelines::load_config(file, &bytes).expect("loads");
            let deploys: Vec<_> = std::iter::once(&config.root)
                .chain(&config.include)
                .flat_map(|attrs| attrs.deploys())
                .collect();
            for m in aliases {
                let (provider, alias, key) = (
                    m["args"]["provider"].as_str().unwrap(),
                    m["args"]["alias"].as_str().unwrap(),
                    m["args"]["key"].as_str().unwrap(),
                );
                let of_provider: Vec<_> = deploys
                    .iter()
                    .filter(|d| d.provider.eq_ignore_ascii_case(provider))
                    .collect();
                assert!(
                    of_provider.iter().any(|d| d.options.contains_key(key)),
                    "{file}: no {provider} deploy has `{key}`"
                );
                assert!(
                    of_provider.iter().all(|d| !d.options.contains_key(alias)),
                    "{file}: a {provider} deploy still has `{alias}`"
                );
                checked += 1;
            }
        }
    }
    // The corpus's deploy aliases as Travis reported them (`alias_key` under `deploy`).
    assert_eq!(checked, 28);
}

#[test]
fn a_command_split_at_colon_space_is_a_warning_with_the_quoted_fix() {
    let diags = lint(
        "ci.yml",
        b"language: shell\nscript:\n  - make\n  - echo Done: 100%\n",
    );
    let d = diags
        .iter()
        .find(|d| d.key.as_deref() == Some("script"))
        .expect("a diagnostic for script");
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.to_string().starts_with("ci.yml:4:"), "{d}");
    assert!(
        d.message.contains("`echo Done: 100%` was read as a map"),
        "{}",
        d.message
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("quote the command: `- 'echo Done: 100%'`")
    );
    // The plan leaves the command out, as Travis's processor does.
    let plan = planned("language: shell\nscript:\n  - make\n  - echo Done: 100%\n");
    let job = &plan.stages[0].jobs[0];
    let script = job
        .phases
        .iter()
        .find(|p| p.name.as_str() == "script")
        .expect("a script phase");
    assert_eq!(script.commands, ["make"]);
}

#[test]
fn the_quoted_fix_escapes_single_quotes() {
    let diags = lint("ci.yml", b"script:\n  - echo it's: done\n");
    let d = diags
        .iter()
        .find(|d| d.code == "invalid_type")
        .expect("invalid_type");
    assert_eq!(
        d.hint.as_deref(),
        Some("quote the command: `- 'echo it''s: done'`")
    );
}
