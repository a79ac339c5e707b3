//! `slipway run` and secrets: the binary with its own data dir. A job gets secrets only where the
//! repository's key is in the data dir (`--repo`, else the `origin` remote), and `--fork` plays
//! the fork rule. Under CI=true a missing engine or test image fails instead of skipping.

use crate::support::{busybox, engine_ready, text};

use std::path::Path;
use std::process::{Command, Output};

fn slipway(data: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .current_dir(dir)
        .env("SLIPWAY_DATA_DIR", data)
        .args(args)
        .output()
        .unwrap()
}

/// A git repository whose `origin` is `acme/keyed`, holding a pipeline printing `$TOKEN`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".slipway.yml"),
        format!(
            "image: \"{}\"\nlanguage: shell\nscript: echo \"token=$TOKEN secure=$TRAVIS_SECURE_ENV_VARS\"\n",
            busybox()
        ),
    )
    .unwrap();
    let git = |args: &[&str]| crate::support::git(dir.path(), args);
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "remote",
        "add",
        "origin",
        "git@example.invalid:acme/keyed.git",
    ]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "pipeline"]);
    dir
}

#[test]
fn slipway_run_has_secrets_only_where_the_key_is_and_never_as_a_fork() {
    if !engine_ready() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let repo = project();
    let dir = repo.path();
    let value = "cli-secret-value-4f1d";
    let set = slipway(
        data.path(),
        dir,
        &["secrets", "set", "--repo", "acme/keyed", "TOKEN", value],
    );
    assert!(set.status.success(), "{}", text(&set));

    // The repository from the origin remote has its key: the job gets the value, masked.
    let own = slipway(data.path(), dir, &["run"]);
    let log = text(&own);
    assert!(own.status.success(), "{log}");
    assert!(log.contains("token=[secure] secure=true"), "{log}");
    assert!(!log.contains(value), "{log}");

    // Another repository has no key here: no secrets, and none is made by running.
    let other = slipway(data.path(), dir, &["run", "--repo", "acme/keyless"]);
    let log = text(&other);
    assert!(other.status.success(), "{log}");
    assert!(log.contains("token= secure=false"), "{log}");
    assert!(!data.path().join("repos/acme/keyless").exists());

    // A fork's pull request: the fork rule, said in the log.
    let fork = slipway(
        data.path(),
        dir,
        &[
            "run",
            "--repo",
            "acme/keyed",
            "--event",
            "pull_request",
            "--fork",
        ],
    );
    let log = text(&fork);
    assert!(fork.status.success(), "{log}");
    assert!(log.contains("token= secure=false"), "{log}");
    assert!(
        log.contains("Settings variables are not exported because this is a pull request from a fork, and secrets go only to trusted builds: TOKEN"),
        "{log}"
    );
    assert!(!log.contains(value), "{log}");

    // --fork alone does not describe an event.
    let bad = slipway(data.path(), dir, &["run", "--fork"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("--fork describes a pull request"),
        "{}",
        text(&bad)
    );
}
