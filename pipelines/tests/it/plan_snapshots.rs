//! Snapshot tests of whole plans for small fixture files written for these tests
//! (`tests/fixtures/*.yml`), one per expansion feature, for a push, a pull request and a tag.

use crate::util::{pull_request, push, tag};
use slipway_pipelines::plan::{Context, Plan};

fn plan_fixture(name: &str, ctx: &Context) -> Plan {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    let plan = slipway_pipelines::plan(name, &bytes, ctx).unwrap();
    // Planning is deterministic: the same input gives byte-identical JSON.
    let again = slipway_pipelines::plan(name, &bytes, ctx).unwrap();
    assert_eq!(
        serde_json::to_string(&plan).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    plan
}

macro_rules! snapshot {
    ($test:ident, $file:literal, $ctx:expr) => {
        #[test]
        fn $test() {
            let plan = plan_fixture($file, &$ctx);
            insta::assert_json_snapshot!(plan);
        }
    };
}

snapshot!(matrix_push, "matrix.yml", push("main"));
snapshot!(include_exclude_push, "include_exclude.yml", push("main"));
snapshot!(
    include_exclude_pr,
    "include_exclude.yml",
    pull_request("main")
);
snapshot!(stages_push_main, "stages.yml", push("main"));
snapshot!(stages_push_other, "stages.yml", push("feature-x"));
snapshot!(allow_failures_push, "allow_failures.yml", push("main"));
snapshot!(
    allow_failures_pr,
    "allow_failures.yml",
    pull_request("main")
);
snapshot!(deploy_on_push_main, "deploy_on.yml", push("main"));
snapshot!(deploy_on_push_release, "deploy_on.yml", push("release-2"));
snapshot!(deploy_on_tag, "deploy_on.yml", tag("v1.2.0"));
snapshot!(deploy_on_pr, "deploy_on.yml", pull_request("main"));
snapshot!(secure_env_push, "secure_env.yml", push("main"));
snapshot!(branches_push_main, "branches.yml", push("main"));
snapshot!(branches_tag, "branches.yml", tag("v2"));

#[test]
fn branches_only_beats_except_and_root_if_is_request_level() {
    let main = plan_fixture("branches.yml", &push("main"));
    assert!(main.build.included, "{}", main.build.reason);
    let other = plan_fixture("branches.yml", &push("feature"));
    assert!(!other.build.included);
    assert!(other.stages.is_empty());
    assert!(
        other
            .skipped
            .iter()
            .any(|s| s.reason.starts_with("no build"))
    );
    let skip = Context {
        commit_message: "docs [skip-all]".to_owned(),
        ..push("main")
    };
    let skipped = plan_fixture("branches.yml", &skip);
    assert!(!skipped.build.included);
    assert!(
        skipped.build.reason.contains("root if"),
        "{}",
        skipped.build.reason
    );
}

#[test]
fn unplannable_files_give_diagnostics() {
    let ctx = push("main");
    let empty = slipway_pipelines::plan("e.yml", b"# nothing\n", &ctx).unwrap_err();
    assert_eq!(empty[0].code, "empty_file");
    let list = slipway_pipelines::plan("l.yml", b"- a\n- b\n", &ctx).unwrap_err();
    assert_eq!(list[0].code, "invalid_root");
    assert_eq!(
        list[0].to_string().lines().next().unwrap(),
        "l.yml:1:1: error: the pipeline file must be a mapping of keys, found a list"
    );
    let bad = slipway_pipelines::plan("b.yml", b"a: [1, 2\n", &ctx).unwrap_err();
    assert_eq!(bad[0].code, "yaml_syntax");
    assert!(bad[0].hint.is_some());
}
