//! `addons.artifacts` with `slipway run`: after `after_script` the listed paths go to the local
//! AWS double (moto, `$SLIPWAY_TEST_MOTO`) under the target path, keys named by their path from
//! the build dir; a pull request uploads nothing. Under CI=true a missing engine, image or moto
//! fails.

use crate::support::{busybox, http, moto_and_engine, new_bucket, slipway_run_s3, text};

fn repo_with(bucket: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".slipway.yml"),
        format!(
            r#"
image: "{image}"
language: shell
addons:
  artifacts:
    bucket: "{bucket}"
    key: testing
    secret: testing
    paths:
      - logs
      - build/out.txt
    target_paths: ci/$TRAVIS_BRANCH
script:
  - mkdir -p logs/deep build && echo one > logs/a.log && echo two > logs/deep/b.log
  - echo "built on $TRAVIS_BRANCH" > build/out.txt
after_script: echo after-script-ran
"#,
            image = busybox()
        ),
    )
    .unwrap();
    crate::support::commit_all(dir.path(), "pipeline");
    dir
}

#[test]
fn artifacts_are_uploaded_after_the_job_under_the_target_path() {
    let Some(moto) = moto_and_engine() else {
        return;
    };
    let bucket = new_bucket(&moto, "slipway-artifacts");
    let repo = repo_with(&bucket);
    let out = slipway_run_s3(repo.path(), &moto, &["--branch", "main"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let after_script = log.find("after-script-ran").expect(&log);
    let uploaded = log
        .find("addons.artifacts: uploaded 3 object(s)")
        .expect(&log);
    assert!(after_script < uploaded, "{log}");
    let (status, listing) = http("GET", &moto, &format!("/{bucket}")).unwrap();
    assert_eq!(status, 200, "{listing}");
    for key in [
        "ci/main/logs/a.log",
        "ci/main/logs/deep/b.log",
        "ci/main/build/out.txt",
    ] {
        assert!(
            listing.contains(&format!("<Key>{key}</Key>")),
            "{key}: {listing}\n{log}"
        );
    }
    // "built on main\n"
    assert!(listing.contains("<Size>14</Size>"), "{listing}");
}

#[test]
fn a_pull_request_uploads_no_artifacts() {
    let Some(moto) = moto_and_engine() else {
        return;
    };
    let bucket = new_bucket(&moto, "slipway-artifacts");
    let repo = repo_with(&bucket);
    let out = slipway_run_s3(repo.path(), &moto, &["--pull-request", "3"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("addons.artifacts: not uploaded for pull requests"),
        "{log}"
    );
    let (_, listing) = http("GET", &moto, &format!("/{bucket}")).unwrap();
    assert!(!listing.contains("<Key>"), "{listing}");
}
