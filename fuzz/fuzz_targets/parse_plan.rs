//! Fuzzes everything that reads a pipeline file: the YAML loader, lint and the planner must
//! return values or diagnostics for any bytes, never panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_pipelines::plan::{Context, EventType};
use slipway_pipelines::{lint, yaml};

fn contexts() -> [Context; 2] {
    let push = Context {
        event: EventType::Push,
        branch: "master".into(),
        repo: "octo/slipway".into(),
        commit_message: "Fix parser".into(),
        sender: "octo".into(),
        ..Context::default()
    };
    let pull_request = Context {
        event: EventType::PullRequest,
        branch: "master".into(),
        pull_request: Some(7),
        fork: true,
        head_repo: Some("fork/slipway".into()),
        head_branch: Some("feature/x".into()),
        ..push.clone()
    };
    [push, pull_request]
}

fuzz_target!(|data: &[u8]| {
    let _ = yaml::load(data, yaml::Limits::default());
    let _ = lint::lint(".travis.yml", data);
    for ctx in contexts() {
        let _ = slipway_pipelines::plan(".travis.yml", data, &ctx);
    }
});
