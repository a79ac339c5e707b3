//! `import:` with `slipway run` and `slipway plan`: a file from a second local repository
//! (`--import-repo owner/name=DIR`, at a tag through `@ref`) and one from the same repository are
//! merged before planning; an import that cannot be read stops the run, naming the fix. Under
//! CI=true a missing engine or image fails.

use std::path::Path;

use crate::support::{busybox, engine_ready, slipway, text};

fn repos() -> (tempfile::TempDir, tempfile::TempDir) {
    let shared = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(shared.path().join("ci")).unwrap();
    std::fs::write(
        shared.path().join("ci/common.yml"),
        "env:\n  global:\n    - FROM_SHARED=tagged\nbefore_script: echo \"shared before_script, FROM_SHARED=$FROM_SHARED\"\n",
    )
    .unwrap();
    let git = |dir: &Path, args: &[&str]| crate::support::git(dir, args);
    crate::support::commit_all(shared.path(), "shared");
    git(shared.path(), &["tag", "v1"]);
    // After the tag: the working tree says something else, so `@v1` must read the tag.
    std::fs::write(
        shared.path().join("ci/common.yml"),
        "env:\n  global:\n    - FROM_SHARED=working-tree\n",
    )
    .unwrap();

    let app = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(app.path().join("ci")).unwrap();
    std::fs::write(
        app.path().join(".slipway.yml"),
        format!(
            r#"
import:
  - source: acme/shared:ci/common.yml@v1
  - source: ci/local.yml
    mode: deep_merge_prepend
image: "{}"
script: echo "app script, LOCAL=$LOCAL"
"#,
            busybox()
        ),
    )
    .unwrap();
    std::fs::write(
        app.path().join("ci/local.yml"),
        "env:\n  global:\n    - LOCAL=from-the-same-repository\n",
    )
    .unwrap();
    crate::support::commit_all(app.path(), "app");
    (app, shared)
}

#[test]
fn a_run_merges_a_file_from_a_second_local_repository_and_one_from_its_own() {
    if !engine_ready() {
        return;
    }
    let (app, shared) = repos();
    let import = format!("acme/shared={}", shared.path().display());
    let app_dir = app.path().to_str().unwrap();
    let out = slipway(&["run", app_dir, "--import-repo", &import]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("shared before_script, FROM_SHARED=tagged"),
        "{log}"
    );
    assert!(
        log.contains("app script, LOCAL=from-the-same-repository"),
        "{log}"
    );

    let file = app.path().join(".slipway.yml");
    let out = slipway(&["plan", file.to_str().unwrap(), "--import-repo", &import]);
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    assert!(plan.contains("env: FROM_SHARED=tagged"), "{plan}");
}

#[test]
fn an_import_that_cannot_be_read_stops_the_run_and_says_how_to_fix_it() {
    let (app, _shared) = repos();
    let out = slipway(&["run", app.path().to_str().unwrap(), "--dry-run"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("cannot import acme/shared:ci/common.yml@v1")
            && log.contains("--import-repo acme/shared=DIR"),
        "{log}"
    );
}
