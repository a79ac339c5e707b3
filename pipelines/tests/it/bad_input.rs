//! Bad input never panics lint, and every problem is named with its position.
//!
//! Fixtures are inline and written for these tests. The lint output of the multi-problem fixture
//! is pinned with insta snapshots, in the human text form and as JSON.

use std::time::Instant;

use slipway_pipelines::diagnostic::{Diagnostic, Severity};
use slipway_pipelines::lint::{has_errors, lint};
use slipway_pipelines::yaml::Pos;

fn codes(diags: &[Diagnostic]) -> Vec<&str> {
    diags.iter().map(|d| d.code.as_str()).collect()
}

fn only(diags: &[Diagnostic], code: &str) -> Diagnostic {
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "expected one `{code}` in {diags:#?}");
    found[0].clone()
}

fn human(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// Peak resident memory of this process so far, in MiB (Linux), for the printed figures.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let diags = lint(
        "ci.yml",
        b"language: node_js\nscript:\n  - npm test\nenv: A=1: B\n",
    );
    let d = only(&diags, "yaml_syntax");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.pos().map(|p| p.line), Some(4), "{d}");
    assert!(d.to_string().starts_with("ci.yml:4:"), "{d}");
    assert!(d.hint.is_some());
}

#[test]
fn wrong_types_say_what_was_expected() {
    let diags = lint(
        "ci.yml",
        b"language: ruby\nscript:\n  run: rake\nfast_finish: maybe\ncache:\n  timeout: soon\n",
    );
    let script = diags
        .iter()
        .find(|d| d.key.as_deref() == Some("script"))
        .unwrap();
    assert_eq!(script.code, "invalid_type");
    assert_eq!(script.pos(), Some(Pos { line: 3, column: 3 }));
    assert!(
        script.message.contains("a string or a list of strings"),
        "{script}"
    );
    let timeout = diags
        .iter()
        .find(|d| d.key.as_deref() == Some("cache.timeout"))
        .unwrap();
    assert_eq!(timeout.code, "invalid_type");
    assert!(timeout.message.contains("a number"), "{timeout}");
    assert!(has_errors(&diags));
}

#[test]
fn a_list_where_one_value_is_expected_warns() {
    let diags = lint("ci.yml", b"language:\n  - python\ndist: [jammy]\n");
    let keys: Vec<_> = diags
        .iter()
        .filter(|d| d.code == "unexpected_seq")
        .map(|d| d.key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["language", "dist"]);
    assert!(!has_errors(&diags));
}

#[test]
fn misspelled_key_is_read_as_the_nearest_key() {
    let diags = lint(
        "ci.yml",
        b"language: node_js\nbefore_instal: npm ci\nscript: npm test\n",
    );
    let d = only(&diags, "find_key");
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.pos(), Some(Pos { line: 2, column: 1 }));
    assert!(d.message.contains("`before_install`"), "{d}");
    assert_eq!(d.hint.as_deref(), Some("rename it to `before_install`"));
}

#[test]
fn unknown_key_is_a_warning_with_position() {
    let diags = lint(
        "ci.yml",
        b"language: go\nscript: go test ./...\ncolour_output: true\n",
    );
    let d = only(&diags, "unknown_key");
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.key.as_deref(), Some("colour_output"));
    assert_eq!(d.pos(), Some(Pos { line: 3, column: 1 }));
}

#[test]
fn private_keys_holding_anchors_are_ignored_but_public_ones_warn() {
    let src = b"_defaults: &d\n  script: make\nshared: &s\n  script: make\njobs:\n  include:\n    - <<: *d\n";
    let diags = lint("ci.yml", src);
    let d = only(&diags, "deprecated_key");
    assert_eq!(d.key.as_deref(), Some("shared"));
    assert!(d.hint.unwrap().contains("`_shared`"));
}

#[test]
fn duplicate_keys_are_errors_at_the_second_occurrence() {
    let diags = lint("ci.yml", b"language: c\nscript: make\nscript: make test\n");
    let d = only(&diags, "duplicate_key");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.pos(), Some(Pos { line: 3, column: 1 }));
}

#[test]
fn alias_and_key_given_together_overwrite() {
    let diags = lint(
        "ci.yml",
        b"matrix:\n  fast_finish: true\njobs:\n  include:\n    - script: a\n",
    );
    let d = only(&diags, "overwrite");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.pos().unwrap().line, 3);
}

#[test]
fn bad_condition_points_at_the_column_inside_the_value() {
    let diags = lint(
        "ci.yml",
        b"language: python\nif: branch = main AND (type = push\n",
    );
    let d = only(&diags, "invalid_condition");
    assert_eq!(d.severity, Severity::Error);
    let pos = d.pos().unwrap();
    assert_eq!(pos.line, 2);
    assert!(
        pos.column > 5,
        "the column points into the condition, not at `if:`: {d}"
    );
}

#[test]
fn invalid_env_var_is_an_error() {
    let diags = lint(
        "ci.yml",
        b"env:\n  global:\n    - API_URL = http://localhost\n",
    );
    let d = only(&diags, "invalid_env_var");
    assert_eq!(d.pos(), Some(Pos { line: 3, column: 7 }));
}

#[test]
fn secure_values_are_checked() {
    let src = b"deploy:\n  provider: elasticbeanstalk\n  access_key_id: $AWS_KEY\n  secret_access_key:\n    secure: $AWS_SECRET\n  region: us-east-1\n  app: web\n  env: Web-env\n  bucket_name: bucket\n";
    let diags = lint("ci.yml", src);
    let d = only(&diags, "invalid_secure");
    assert_eq!(d.key.as_deref(), Some("deploy.secret_access_key.secure"));
    let plain = lint(
        "ci.yml",
        b"deploy:\n  provider: releases\n  token: 0123abcd\n",
    );
    assert_eq!(only(&plain, "secure").key.as_deref(), Some("deploy.token"));
    let empty = lint(
        "ci.yml",
        b"deploy:\n  provider: releases\n  token:\n    secure:\n",
    );
    assert_eq!(
        only(&empty, "empty").key.as_deref(),
        Some("deploy.token.secure")
    );
}

#[test]
fn deploy_providers_and_options_are_checked() {
    let diags = lint("ci.yml", b"deploy:\n  - provider: elasticbeanstlak\n  - provider: s3\n    bukket: x\n  - on: master\n");
    let unknown = diags.iter().find(|d| d.code == "unknown_value").unwrap();
    assert_eq!(
        unknown.pos(),
        Some(Pos {
            line: 2,
            column: 15
        })
    );
    assert!(
        unknown
            .hint
            .as_deref()
            .unwrap()
            .contains("elasticbeanstalk")
    );
    let option = diags
        .iter()
        .find(|d| d.key.as_deref() == Some("deploy[1].bukket"))
        .unwrap();
    assert_eq!(option.code, "find_key");
    // The s3 provider reads only `bucket`, so the misspelt one leaves it missing; the last entry
    // has no provider at all.
    let missing: Vec<(usize, &str)> = diags
        .iter()
        .filter(|d| d.code == "required")
        .map(|d| (d.pos().unwrap().line, d.message.as_str()))
        .collect();
    assert_eq!(
        missing,
        [
            (3, "the `s3` provider needs `bucket:`"),
            (5, "`deploy[2]` has no `provider:`")
        ]
    );
}

#[test]
fn unsupported_features_warn() {
    let diags = lint(
        "ci.yml",
        b"language: ruby\naddons:\n  apt:\n    packages: [curl]\n  homebrew:\n    packages: [wget]\nnotifications:\n  email: false\n  campfire:\n    rooms: {secure: abc}\n",
    );
    let unsupported: Vec<_> = diags
        .iter()
        .filter(|d| d.code == "unsupported")
        .map(|d| d.key.clone().unwrap())
        .collect();
    // `addons.apt` is applied; `homebrew` cannot be, and lint says why and what to do instead.
    assert_eq!(unsupported, ["addons.homebrew", "notifications.campfire"]);
    let homebrew = diags.iter().find(|d| d.code == "unsupported").unwrap();
    assert!(
        homebrew.message.contains("macOS package manager"),
        "{homebrew:?}"
    );
    assert!(
        homebrew.hint.as_deref().unwrap().contains("addons: apt:"),
        "{homebrew:?}"
    );
    assert!(!has_errors(&diags));
}

#[test]
fn alias_bomb_is_rejected_quickly() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..20 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let before = peak_rss_mib();
    let start = Instant::now();
    let diags = lint("bomb.yml", src.as_bytes());
    let elapsed = start.elapsed();
    let after = peak_rss_mib();
    println!(
        "alias bomb (10^20 nodes if expanded): rejected in {:.2} ms; peak RSS {:?} MiB before, {:?} MiB after",
        elapsed.as_secs_f64() * 1000.0,
        before,
        after
    );
    assert_eq!(codes(&diags), ["alias_budget"]);
    assert!(diags[0].pos().is_some());
    // Generous bound so a loaded machine never makes this flaky; the real figure is printed above.
    assert!(elapsed.as_secs() < 2, "took {elapsed:?}");
}

#[test]
fn ten_thousand_levels_of_nesting_are_rejected() {
    let flow = "[".repeat(10_000) + &"]".repeat(10_000);
    assert_eq!(codes(&lint("deep.yml", flow.as_bytes())), ["too_deep"]);
    let mut block = String::new();
    for depth in 0..10_000 {
        block.push_str(&" ".repeat(depth));
        block.push_str("a:\n");
    }
    let diags = lint("deep.yml", block.as_bytes());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(has_errors(&diags));
    let seqs = "- ".repeat(10_000) + "x\n";
    let diags = lint("deep.yml", seqs.as_bytes());
    assert_eq!(codes(&diags), ["too_deep"]);
}

#[test]
fn ten_megabyte_file_is_rejected_without_parsing() {
    let mut big = b"script:\n".to_vec();
    while big.len() < 10 * 1024 * 1024 {
        big.extend_from_slice(b"  - echo 0123456789012345678901234567890123456789\n");
    }
    let start = Instant::now();
    let diags = lint("big.yml", &big);
    println!(
        "10 MiB file rejected in {:.2} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    let d = only(&diags, "too_large");
    assert!(d.message.contains("bytes"));
}

#[test]
fn non_utf8_bytes_name_the_position() {
    let diags = lint("latin1.yml", b"language: c\nscript: echo caf\xe9\n");
    let d = only(&diags, "not_utf8");
    assert_eq!(
        d.pos(),
        Some(Pos {
            line: 2,
            column: 17
        })
    );
}

#[test]
fn empty_file_is_a_clear_error() {
    for src in [&b""[..], b"\n\n", b"# nothing here\n", b"---\n", b"~\n"] {
        let diags = lint("empty.yml", src);
        assert_eq!(codes(&diags), ["empty_file"], "{src:?}");
        assert!(diags[0].message.contains("no configuration"));
    }
}

#[test]
fn a_file_that_is_not_a_map_is_an_error() {
    let diags = lint("list.yml", b"- language: c\n");
    assert_eq!(codes(&diags), ["invalid_root"]);
}

#[test]
fn clean_pipeline_has_no_diagnostics() {
    let src = b"language: node_js\nnode_js: [18, 20]\nservices: [docker]\ncache: npm\nenv:\n  global:\n    - CI=true FOO=\"a b\"\nbefore_install: npm ci\nscript:\n  - npm test\njobs:\n  include:\n    - stage: deploy\n      if: branch = main AND type = push\n      script: skip\n      deploy:\n        provider: elasticbeanstalk\n        region: us-west-2\n        app: web\n        env: Web-env\n        bucket_name: my-bucket\n        access_key_id: $AWS_ACCESS_KEY\n        secret_access_key: $AWS_SECRET_KEY\n        on:\n          branch: main\n";
    let diags = lint("ok.yml", src);
    assert!(diags.is_empty(), "{}", human(&diags));
}

/// Several problems in one file, all reported at once and in file order.
const MANY_PROBLEMS: &str = "\
language: node_js
sudo: required
node_js:
  - 18
before_instal: npm ci
script:
  run: npm test
services: [docker, mariadb]
env:
  - NODE_ENV = test
if: branch = main AND
jobs:
  include:
    - stage: deploy
      deploy:
        provider: elasticbeanstalk
        skip_cleanup: true
        regoin: us-east-1
        secret_access_key:
          secure: not base64!
colour: true
colour: false
";

#[test]
fn every_problem_is_reported_at_once_human() {
    let diags = lint("many.yml", MANY_PROBLEMS.as_bytes());
    let positions: Vec<Pos> = diags.iter().filter_map(Diagnostic::pos).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "sorted by position");
    insta::assert_snapshot!("many_problems_human", human(&diags));
}

#[test]
fn every_problem_is_reported_at_once_json() {
    let diags = lint("many.yml", MANY_PROBLEMS.as_bytes());
    insta::assert_json_snapshot!("many_problems_json", diags);
}
