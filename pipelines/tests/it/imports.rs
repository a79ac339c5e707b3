//! `import:`: imported files merged the way Travis's config processor merges them, with cycles,
//! the import limit and unreadable sources reported at the import's position.

use std::collections::HashMap;

use slipway_pipelines::PlanOptions;
use slipway_pipelines::diagnostic::Diagnostic;
use slipway_pipelines::imports::Source;
use slipway_pipelines::plan::{Job, Plan};

/// Plans `travis_yml` with `files` (keyed by `Source` display: `path` or `owner/name:path@ref`)
/// as everything importable; returns the plan and the sources read, in order.
fn plan(travis_yml: &str, files: &[(&str, &str)]) -> (Result<Plan, Vec<Diagnostic>>, Vec<String>) {
    let files: HashMap<String, String> = files
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut read = Vec::new();
    let mut fetch = |s: &Source| {
        read.push(s.to_string());
        files
            .get(&s.to_string())
            .map(|f| f.as_bytes().to_vec())
            .ok_or_else(|| "no such file".to_owned())
    };
    let planned = slipway_pipelines::plan_imported(
        ".travis.yml",
        travis_yml.as_bytes(),
        &crate::util::push("main"),
        PlanOptions::default(),
        &mut fetch,
    );
    (planned, read)
}

fn only_job(plan: &Plan) -> &Job {
    &plan.stages[0].jobs[0]
}

fn packages(mode: &str) -> Vec<String> {
    // travis-yml's own merge spec: .travis.yml imports one.yml, which imports two.yml.
    let travis_yml = format!(
        "import:\n- source: one.yml\n  mode: {mode}\naddons:\n  apt:\n    packages: [cmake]\n  chrome: stable\nscript: true\n"
    );
    let one = format!(
        "import:\n- source: two.yml\n  mode: {mode}\naddons:\n  apt:\n    packages: [curl]\n  hostname: one\n"
    );
    let (planned, _) = plan(
        &travis_yml,
        &[
            ("one.yml", &one),
            ("two.yml", "addons:\n  apt:\n    packages: [wget]\n"),
        ],
    );
    let plan = planned.unwrap();
    let job = only_job(&plan);
    let mut out = job.addons.apt.as_ref().unwrap().packages.clone();
    if job.addons.hostname.is_some() {
        out.push("+hostname".into());
    }
    out
}

#[test]
fn merge_modes_follow_travis() {
    assert_eq!(
        packages("deep_merge_append"),
        ["wget", "curl", "cmake", "+hostname"]
    );
    assert_eq!(
        packages("deep_merge_prepend"),
        ["cmake", "curl", "wget", "+hostname"]
    );
    assert_eq!(packages("deep_merge"), ["cmake", "+hostname"]);
    // `merge` is shallow: the importing file's `addons` wins whole.
    assert_eq!(packages("merge"), ["cmake"]);
}

#[test]
fn the_default_mode_appends_and_the_importing_file_wins_scalars() {
    let (planned, read) = plan(
        "import: shared/node.yml\nlanguage: node_js\nnode_js: '20'\nscript: npm test\n",
        &[(
            "shared/node.yml",
            "node_js: '18'\nbefore_install: echo shared\nenv:\n  global: [SHARED=1]\n",
        )],
    );
    let plan = planned.unwrap();
    assert_eq!(read, ["shared/node.yml"]);
    let job = only_job(&plan);
    assert_eq!(job.matrix["node_js"], "20");
    assert_eq!(job.env[0].name, "SHARED");
    assert!(
        job.phases
            .iter()
            .any(|p| p.commands == ["echo shared".to_owned()])
    );
}

#[test]
fn another_repositorys_file_and_relative_paths_inside_it() {
    let (planned, read) = plan(
        "import:\n  - source: acme/shared:ci/base.yml@v2\nscript: true\n",
        &[
            (
                "acme/shared:ci/base.yml@v2",
                "import: ./env.yml\nos: linux\n",
            ),
            (
                "acme/shared:ci/env.yml@v2",
                "env:\n  global: [FROM_SHARED=yes]\n",
            ),
        ],
    );
    let plan = planned.unwrap();
    assert_eq!(
        read,
        ["acme/shared:ci/base.yml@v2", "acme/shared:ci/env.yml@v2"]
    );
    assert_eq!(only_job(&plan).env[0].name, "FROM_SHARED");
}

#[test]
fn an_import_whose_condition_is_false_is_not_read() {
    let (planned, read) = plan(
        "import:\n  - source: deploy.yml\n    if: branch = release\nscript: true\n",
        &[("deploy.yml", "deploy:\n  provider: script\n  script: x\n")],
    );
    assert!(read.is_empty());
    assert!(only_job(&planned.unwrap()).deploys.is_empty());
}

#[test]
fn a_cycle_is_an_error_at_the_import_that_closes_it() {
    let (planned, _) = plan(
        "import: a.yml\nscript: true\n",
        &[("a.yml", "import: b.yml\n"), ("b.yml", "\nimport: a.yml\n")],
    );
    let diags = planned.unwrap_err();
    assert_eq!(diags.len(), 1);
    let d = &diags[0];
    assert_eq!(d.code, "import_cycle");
    assert_eq!(d.file, "b.yml");
    assert_eq!(d.span.unwrap().start.line, 2, "{d:?}");
    assert!(d.message.contains("a.yml → b.yml → a.yml"), "{}", d.message);
}

#[test]
fn importing_the_file_itself_is_a_cycle() {
    let (planned, _) = plan("import: .travis.yml\nscript: true\n", &[]);
    assert_eq!(planned.unwrap_err()[0].code, "import_cycle");
}

#[test]
fn more_than_25_imports_is_an_error() {
    let names: Vec<String> = (0..30).map(|i| format!("f{i}.yml")).collect();
    let travis_yml = format!("import: [{}]\nscript: true\n", names.join(", "));
    let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "os: linux\n")).collect();
    let (planned, read) = plan(&travis_yml, &files);
    let d = &planned.unwrap_err()[0];
    assert_eq!(d.code, "too_many_imports");
    assert_eq!(read.len(), 25);
    assert_eq!(d.span.unwrap().start.line, 1);
}

#[test]
fn an_unreadable_import_names_the_source_and_where_it_is_imported() {
    let (planned, _) = plan("script: true\nimport:\n  - missing.yml\n", &[]);
    let d = &planned.unwrap_err()[0];
    assert_eq!(d.code, "import_unavailable");
    assert!(
        d.message.contains("missing.yml: no such file"),
        "{}",
        d.message
    );
    assert_eq!(d.span.unwrap().start.line, 3);
}

#[test]
fn an_unknown_mode_is_an_error() {
    let (planned, _) = plan(
        "import:\n  - source: a.yml\n    mode: smush\nscript: true\n",
        &[("a.yml", "os: linux\n")],
    );
    let d = &planned.unwrap_err()[0];
    assert_eq!(d.code, "invalid_import");
    assert!(d.message.contains("smush"));
}

#[test]
fn without_imports_the_plan_is_the_plain_one() {
    let yml = "language: python\npython: ['3.11', '3.12']\nscript: pytest\n";
    let (planned, read) = plan(yml, &[]);
    assert!(read.is_empty());
    assert_eq!(
        planned.unwrap(),
        slipway_pipelines::plan(".travis.yml", yml.as_bytes(), &crate::util::push("main")).unwrap()
    );
}

#[test]
fn an_imported_matrix_counts_toward_the_job_limit() {
    let versions: Vec<String> = (0..15).map(|i| format!("'3.{i}'")).collect();
    let envs: Vec<String> = (0..15).map(|i| format!("N={i}")).collect();
    let shared = format!(
        "language: python\npython: [{}]\nenv: [{}]\n",
        versions.join(", "),
        envs.join(", ")
    );
    let (planned, _) = plan(
        "import: matrix.yml\nscript: true\n",
        &[("matrix.yml", &shared)],
    );
    let d = &planned.unwrap_err()[0];
    assert!(d.message.contains("225"), "{d:?}");
}
