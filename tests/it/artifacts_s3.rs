//! `addons.artifacts` with `slipway run`: after `after_script` the listed paths go to the local
//! AWS double (moto, `$SLIPWAY_TEST_MOTO`) under the target path, keys named by their path from
//! the build dir; a pull request uploads nothing. Under CI=true a missing engine, image or moto
//! fails.

use crate::support::{http, listing, moto_bucket, slipway_run_s3, succeeded};

fn repo_with(bucket: &str) -> tempfile::TempDir {
    let pipeline = format!(
        r#"
image: "{{busybox}}"
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
"#
    );
    crate::support::repo_with_pipeline(".slipway.yml", &pipeline)
}

#[test]
fn artifacts_are_uploaded_after_the_job_under_the_target_path() {
    let Some((moto, bucket)) = moto_bucket("slipway-artifacts") else {
        return;
    };
    let repo = repo_with(&bucket);
    let out = slipway_run_s3(repo.path(), &moto, &["--branch", "main"]);
    let log = succeeded(&out, &[]);
    let after_script = log.find("after-script-ran").expect(&log);
    let uploaded = log
        .find("addons.artifacts: uploaded 3 object(s)")
        .expect(&log);
    assert!(after_script < uploaded, "{log}");
    let listing = listing(&moto, &bucket);
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
    let Some((moto, bucket)) = moto_bucket("slipway-artifacts") else {
        return;
    };
    let repo = repo_with(&bucket);
    let out = slipway_run_s3(repo.path(), &moto, &["--pull-request", "3"]);
    let log = succeeded(&out, &[]);
    assert!(
        log.contains("addons.artifacts: not uploaded for pull requests"),
        "{log}"
    );
    let (_, listing) = http("GET", &moto, &format!("/{bucket}")).unwrap();
    assert!(!listing.contains("<Key>"), "{listing}");
}
