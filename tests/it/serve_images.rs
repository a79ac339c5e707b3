//! The server's `[images]` end to end through `slipway serve`: a pushed `.travis.yml` that names
//! public images runs unchanged, one job on a locally built image an `[images.map]` rule maps its
//! language's image to, the other on an image pulled through the `mirror` prefix from the local
//! test registry (the engine has no image of that name, so it can only come from there). Each
//! job's log says what its image became and why.

use std::process::Command;

use crate::serve::*;
use crate::support::MirroredImage;

/// Two jobs whose images (Travis's `ruby` and `python:3.12`) cannot be pulled here.
const PIPELINE: &str = "install: true\nscript: echo \"ran in $SLIPWAY_IMAGE\"\njobs:\n  include:\n    - language: ruby\n      name: mapped\n    - language: python\n      python: \"3.12\"\n      name: mirrored\n";

#[test]
fn a_pushed_travis_file_runs_on_images_the_server_maps_and_mirrors() {
    if !docker_ready() {
        return;
    }
    let Some(mirror) = MirroredImage::push("slipway-serve-mirror") else {
        return;
    };
    let (prefix, mirrored) = (&mirror.prefix, &mirror.image);

    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), PIPELINE);
    let github = FakeGitHub::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = github.start(&rt);
    let images = format!("[images]\nmirror = \"{prefix}\"\n[images.map]\nruby = \"{IMAGE}\"\n");
    let server = Served::new(tmp.path(), &api, &origin.url(), &images);
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let (status, answer) = server.deliver(
        "push",
        "images-1",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &sha),
    );
    assert_eq!(status, 202, "{answer}");
    let v = server.wait_final(1, 180);
    let logs: Vec<String> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| server.job_log(j["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(v["build"]["state"], "passed", "{v}\n{logs:#?}");

    let mapped = &logs[0];
    assert!(
        mapped.contains(&format!(
            "The job's image ruby:latest is pulled as {IMAGE} ([images.map] ruby={IMAGE})"
        )),
        "{mapped}"
    );
    assert!(mapped.contains("ran in ruby:latest"), "{mapped}");

    let through_mirror = &logs[1];
    assert!(
        through_mirror.contains(&format!(
            "The job's image python:3.12 is pulled as {mirrored} ([images] mirror {prefix})"
        )),
        "{through_mirror}"
    );
    assert!(
        through_mirror.contains("ran in python:3.12"),
        "{through_mirror}"
    );
    let pulled = Command::new("docker")
        .args(["image", "inspect", mirrored])
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "the image was pulled from the mirror"
    );
}
