//! `os:` jobs other than Linux from the command line: `slipway plan` says they are not run here
//! and why, and lists add-ons; `slipway run` passes with them not run, and runs them in the image
//! `--os-image` maps their OS to. Under CI=true a missing engine or image fails.

use crate::support::{busybox, engine_ready, slipway, text};

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".travis.yml"),
        format!(
            "image: \"{}\"\nlanguage: shell\nos: [linux, osx]\naddons:\n  hosts: [db.local.test]\n  homebrew:\n    packages: [wget]\nscript: echo \"on $TRAVIS_OS_NAME\"\n",
            busybox()
        ),
    )
    .unwrap();
    crate::support::commit_all(dir.path(), "pipeline");
    dir
}

#[test]
fn plan_says_which_jobs_are_not_run_here_and_lists_addons() {
    let dir = repo();
    let file = dir.path().join(".travis.yml");
    let out = slipway(&["plan", file.to_str().unwrap()]);
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    assert_eq!(
        plan.matches("not run here: os: osx needs a macOS machine")
            .count(),
        1,
        "{plan}"
    );
    assert!(plan.contains("addons.hosts: db.local.test"), "{plan}");
    assert!(
        plan.contains("addons.homebrew: skipped: Homebrew is the macOS package manager"),
        "{plan}"
    );
}

#[test]
fn run_passes_without_the_osx_job_and_runs_it_when_mapped_to_an_image() {
    if !engine_ready() {
        return;
    }
    let dir = repo();
    let d = dir.path().to_str().unwrap();
    let out = slipway(&["run", d]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("on linux"), "{log}");
    assert!(!log.contains("on osx"), "{log}");
    assert!(log.contains("This job is not run here: os: osx"), "{log}");

    let mapped = format!("osx={}", busybox());
    let out = slipway(&["run", d, "--os-image", &mapped]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("on osx"), "{log}");

    let out = slipway(&["run", d, "--os-image", "osx"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--os-image takes OS=IMAGE"),
        "{}",
        text(&out)
    );
}
