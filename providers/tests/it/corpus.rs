//! Every deploy of the shared corpus that Slipway runs reads its options without an error: each
//! corpus file planned for a tag push, each planned deploy of a provider Slipway runs parsed as a
//! dry run, with every variable the options name set, so only a wrong or unknown option can fail.

use std::path::PathBuf;

use slipway_pipelines::plan::{Context, EventType};
use slipway_pipelines::spec::{self, Support};
use slipway_providers::{DeployContext, parse};

use crate::util::*;

fn files(shared: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (set, dir) in [("travis", "corpus/travis"), ("course", "corpus/course")] {
        let Ok(list) = std::fs::read_to_string(shared.join(format!("corpus/expected/{set}.jsonl")))
        else {
            continue;
        };
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push(shared.join(dir).join(v["file"].as_str().unwrap()));
        }
    }
    out
}

/// Every `$NAME` in the options, so the dry run can expand them.
fn names(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => {
            for part in s.split('$').skip(1) {
                let name: String = part
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| names(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| names(v, out)),
        _ => {}
    }
}

#[test]
fn the_corpus_deploys_slipway_runs_read_their_options() {
    let shared = shared();
    if !shared.join("corpus/expected").is_dir() {
        skip_or_fail(&format!(
            "the shared corpus is missing ({})",
            shared.display()
        ));
        return;
    }
    let mut problems = Vec::new();
    let mut parsed = 0;
    for file in files(&shared) {
        let bytes = std::fs::read(&file).unwrap();
        let ctx = Context {
            event: EventType::Push,
            branch: "v1.0.0".into(),
            tag: Some("v1.0.0".into()),
            repo: "acme/app".into(),
            ..Context::default()
        };
        let Ok(plan) = slipway_pipelines::plan(".travis.yml", &bytes, &ctx) else {
            continue;
        };
        for job in plan.stages.iter().flat_map(|s| &s.jobs) {
            for deploy in &job.deploys {
                let runs =
                    spec::provider(&deploy.provider).is_some_and(|p| p.support == Support::Yes);
                if !runs || deploy.provider == "script" {
                    continue;
                }
                let mut vars = Vec::new();
                deploy.options.values().for_each(|v| names(v, &mut vars));
                let mut dctx = DeployContext::for_event(&plan.context, "/nonexistent");
                // Registries as a server's `[endpoints]` would name them: only options are tested.
                dctx.endpoints = slipway_providers::testing::unreachable_registries();
                for v in vars {
                    dctx = dctx.with_env(&v, "x");
                }
                parsed += 1;
                if let Err(e) = parse(deploy, &dctx, true) {
                    problems.push(format!("{}: {e}", file.display()));
                }
            }
        }
    }
    println!("corpus: {parsed} planned deploys of providers Slipway runs read their options");
    assert!(parsed >= 20, "only {parsed} deploys planned");
    assert!(problems.is_empty(), "{problems:#?}");
}
