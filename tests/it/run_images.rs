//! Images from a mirror, through the binary: a `.travis.yml` that names public images runs
//! unchanged with `--image FROM=TO` (a locally built image) or `--image-mirror PREFIX` (pulled
//! from the local registry, as from a pull-through mirror), and `slipway plan` shows the image each
//! job and service really uses and why. Tests that need the engine or the registry skip without
//! them, and fail under CI=true.

use std::process::{Command, Output};

use crate::support::{MirroredImage, busybox, engine_ready, repo_with_pipeline, slipway, text};

fn ok(out: &Output) -> String {
    let all = text(out);
    assert!(out.status.success(), "{all}");
    all
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// A pipeline file as Travis users write it: a language and its version, no `image:`.
const PYTHON: &str = "language: python\npython: \"3.12\"\nservices:\n  - redis\n\
                      script: echo \"ran in $SLIPWAY_IMAGE\"\n";

#[test]
fn plan_shows_the_image_each_job_and_service_really_uses_and_why() {
    let repo = repo_with_pipeline(".travis.yml", PYTHON);
    let file = repo.path().join(".travis.yml");
    let file = file.to_str().unwrap();

    let plain = ok(&slipway(&["plan", file]));
    assert!(
        plain.contains("    image: python:3.12 (from the language table)\n"),
        "{plain}"
    );

    let mapped = ok(&slipway(&[
        "plan",
        file,
        "--image-mirror",
        "mirror.internal:5000/hub",
        "--image",
        "redis=registry.internal/ci/redis:7",
    ]));
    assert!(
        mapped.contains(
            "    image: mirror.internal:5000/hub/library/python:3.12 (the language table names \
             python:3.12; mapped by --image-mirror mirror.internal:5000/hub)"
        ),
        "{mapped}"
    );
    assert!(
        mapped.contains(
            "    service redis: registry.internal/ci/redis:7 (redis:7 mapped by --image \
             redis=registry.internal/ci/redis:7)"
        ),
        "{mapped}"
    );

    let bad = slipway(&["plan", file, "--image", "python 3=x"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("--image: `python 3` is not an image reference"),
        "{}",
        text(&bad)
    );
}

#[test]
fn an_unchanged_travis_file_runs_on_a_locally_built_image_mapped_with_image() {
    if !engine_ready() {
        return;
    }
    // No `language:`: Travis's default, ruby, whose image cannot be pulled here.
    let repo = repo_with_pipeline(".travis.yml", "script: echo \"ran in $SLIPWAY_IMAGE\"\n");
    let to = busybox();
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(repo.path())
        .args(["--image", &format!("ruby={to}")])
        .output()
        .unwrap();
    let log = ok(&out);
    assert!(
        log.contains(&format!(
            "The job's image ruby:latest is pulled as {to} (--image ruby={to})"
        )),
        "{log}"
    );
    assert!(log.contains("ran in ruby:latest"), "{log}");
    assert!(log.contains("Build passed"), "{log}");
}

#[test]
fn an_unchanged_travis_file_runs_on_images_pulled_through_a_mirror() {
    if !engine_ready() {
        return;
    }
    // The mirror holds `library/python:3.12` (a local image pushed there); the engine has no
    // image of that name, so the job's image can only come from the mirror.
    let Some(mirror) = MirroredImage::push("slipway-mirror") else {
        return;
    };
    let (prefix, mirrored) = (&mirror.prefix, &mirror.image);

    let repo = repo_with_pipeline(
        ".travis.yml",
        "language: python\npython: \"3.12\"\ninstall: true\nscript: echo \"ran in $SLIPWAY_IMAGE\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(repo.path())
        .args(["--image-mirror", prefix])
        .output()
        .unwrap();
    let log = ok(&out);
    assert!(
        log.contains(&format!(
            "The job's image python:3.12 is pulled as {mirrored} (--image-mirror {prefix})"
        )),
        "{log}"
    );
    assert!(log.contains("ran in python:3.12"), "{log}");
    assert!(
        docker(&["image", "inspect", mirrored]).status.success(),
        "the image was pulled from the mirror"
    );
}
