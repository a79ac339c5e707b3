//! `git:` settings as they land in a job's plan: `clone`, `submodules_depth`, and plans stored
//! before those fields existed.

use crate::util::push;
use slipway_pipelines::plan::{Git, Plan};

fn job_git(yaml: &str) -> Git {
    let plan: Plan =
        slipway_pipelines::plan(".travis.yml", yaml.as_bytes(), &push("main")).unwrap();
    plan.stages[0].jobs[0].git.clone()
}

#[test]
fn defaults_clone_and_take_whole_submodules() {
    let git = job_git("language: shell\nscript: true\n");
    assert!(git.clone);
    assert_eq!(git.submodules_depth, None);
    assert_eq!(git.depth, Some(50));
}

#[test]
fn clone_false_and_submodules_depth_reach_the_job() {
    let git =
        job_git("language: shell\nscript: true\ngit:\n  clone: false\n  submodules_depth: 1\n");
    assert!(!git.clone);
    assert_eq!(git.submodules_depth, Some(1));
    let git = job_git("language: shell\nscript: true\ngit:\n  submodules_depth: 0\n");
    assert_eq!(
        git.submodules_depth, None,
        "0 means the whole history, as for depth"
    );
}

#[test]
fn lint_knows_clone_and_checks_its_type() {
    let ok = slipway_pipelines::lint::lint(
        ".travis.yml",
        b"language: shell\nscript: true\ngit:\n  clone: false\n  submodules_depth: 3\n",
    );
    assert!(ok.is_empty(), "{ok:?}");
    let bad = slipway_pipelines::lint::lint(
        ".travis.yml",
        b"language: shell\nscript: true\ngit:\n  clone: [1]\n",
    );
    assert!(
        bad.iter().any(|d| d.key.as_deref() == Some("git.clone")),
        "{bad:?}"
    );
}

#[test]
fn a_plan_stored_without_the_new_fields_still_loads() {
    let old = r#"{"depth":50,"submodules":true,"lfs_skip_smudge":false,"sparse_checkout":null}"#;
    let git: Git = serde_json::from_str(old).unwrap();
    assert_eq!(git, Git::default());
}
