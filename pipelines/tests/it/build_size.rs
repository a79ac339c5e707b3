//! Build size: a matrix over the job cap is refused before any job is built, by lint (at the line
//! of its largest axis) and by planning, whatever the file asks for.

use std::time::{Duration, Instant};

use slipway_pipelines::PlanOptions;
use slipway_pipelines::lint::{LintOptions, lint, lint_with};
use slipway_pipelines::plan::Context;

use crate::util::matrix::matrix;

fn errors(diags: &[slipway_pipelines::diagnostic::Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.code == "too_many_jobs")
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn a_100_by_100_matrix_is_a_lint_error_naming_the_cap_at_the_largest_axis() {
    let yaml = matrix(100, 100);
    let started = Instant::now();
    let diags = lint(".travis.yml", yaml.as_bytes());
    let took = started.elapsed();
    let found = errors(&diags);
    assert_eq!(found.len(), 1, "{diags:#?}");
    let d = diags.iter().find(|d| d.code == "too_many_jobs").unwrap();
    assert!(
        d.message.contains("10000 jobs") && d.message.contains("limit of 200"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("rvm 100 × env 100"),
        "the axes: {}",
        d.message
    );
    // Equal axes: the first in expansion order is the one to shrink.
    assert_eq!(d.pos().map(|p| p.line), Some(2), "{}", found[0]);
    assert!(d.hint.as_deref().unwrap().contains("`rvm`"), "{d:?}");
    // Counted, not built: generous for a debug build on a busy machine (the benchmark has the goal).
    assert!(took < Duration::from_secs(2), "lint took {took:?}");
}

#[test]
fn the_line_is_that_of_the_largest_axis_even_inside_env() {
    let d = lint(".travis.yml", matrix(3, 90).as_bytes());
    let cap = d.iter().find(|d| d.code == "too_many_jobs").expect("error");
    assert_eq!(cap.pos().map(|p| p.line), Some(4), "env.jobs: {cap}");
    assert_eq!(cap.key.as_deref(), Some("env"));
}

#[test]
fn the_cap_is_inclusive_and_configurable() {
    assert!(errors(&lint(".travis.yml", matrix(20, 10).as_bytes())).is_empty());
    assert_eq!(
        errors(&lint(".travis.yml", matrix(201, 1).as_bytes())).len(),
        1
    );
    let generous = LintOptions { max_jobs: 1000 };
    assert!(
        errors(&lint_with(
            ".travis.yml",
            matrix(30, 30).as_bytes(),
            &generous
        ))
        .is_empty()
    );
}

#[test]
fn includes_count_too() {
    let mut yaml = String::from("language: shell\njobs:\n  include:\n");
    for i in 0..250 {
        yaml.push_str(&format!("    - script: echo {i}\n"));
    }
    let d = lint(".travis.yml", yaml.as_bytes());
    let cap = d.iter().find(|d| d.code == "too_many_jobs").expect("error");
    assert!(cap.message.contains("250 jobs"), "{cap}");
    assert_eq!(cap.pos().map(|p| p.line), Some(2), "the jobs: key: {cap}");
}

#[test]
fn planning_refuses_the_same_file_and_plans_it_under_a_higher_cap() {
    let ctx = Context {
        branch: "master".into(),
        repo: "acme/app".into(),
        ..Default::default()
    };
    let refused = slipway_pipelines::plan(".travis.yml", matrix(100, 100).as_bytes(), &ctx)
        .expect_err("over the cap");
    assert_eq!(refused[0].code, "too_many_jobs");
    assert!(refused[0].message.contains("limit of 200"), "{refused:?}");
    let options = PlanOptions {
        max_jobs: 900,
        ..PlanOptions::default()
    };
    let plan =
        slipway_pipelines::plan_with(".travis.yml", matrix(30, 30).as_bytes(), &ctx, options)
            .expect("within the cap");
    let jobs: usize = plan.stages.iter().map(|s| s.jobs.len()).sum();
    assert_eq!(jobs, 900);
}
