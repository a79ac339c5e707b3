//! `slipway serve` end to end with repository secrets: a push to master deploys to S3 (moto at
//! `$SLIPWAY_TEST_MOTO`) with a `secure:` secret key that `slipway secrets` encrypted into the
//! server's data directory, and a pull request from a fork of the same pipeline gets no secret.
//! No secret value appears in any job log or in the server's own log.

use crate::serve::*;
use crate::support::{busybox, encrypt, listing, moto_bucket};

/// What the `secure:` values hold; each must never be seen in a log.
const AWS_SECRET: &str = "moto-secret-5b2e9d71c4";
const SITE_TOKEN: &str = "site-token-0f8a3c6e27";

fn pipeline(bucket: &str, secret_key: &str, site_token: &str) -> String {
    let busybox = busybox();
    format!(
        r#"image: "{busybox}"
language: shell
env:
  global:
    - secure: "{site_token}"
script:
  - mkdir -p site && echo "built on $TRAVIS_BRANCH" > site/index.txt
  - echo "token=[$SITE_TOKEN] secure_env=$TRAVIS_SECURE_ENV_VARS"
deploy:
  provider: s3
  access_key_id: testing
  secret_access_key:
    secure: "{secret_key}"
  bucket: "{bucket}"
  region: us-east-1
  local_dir: site
  skip_cleanup: true
  on:
    branch: master
"#
    )
}

#[test]
fn a_push_deploys_with_the_repositorys_secret_and_a_fork_gets_none() {
    let Some((moto, bucket)) = moto_bucket("slipway-serve") else {
        return;
    };

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let secret_key = encrypt(&data, REPO, &format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}"));
    let site_token = encrypt(&data, REPO, &format!("SITE_TOKEN={SITE_TOKEN}"));
    let origin = Origin::new(tmp.path(), &pipeline(&bucket, &secret_key, &site_token));
    let github = FakeGitHub::default();
    let server = Served::one_worker_on_moto(tmp.path(), &github, &origin, &moto);

    // A pull request from a fork: the same pipeline, no secret, nothing deployed.
    let fork = server.fork_pull_request(&origin, 5, "deploy-fork-pr");
    let fork_log = fork.expect(
        "passed",
        &["Secure variables are unset because this is a pull request from a fork"],
    );
    assert!(
        fork_log.contains("token=[] secure_env=false"),
        "the fork's job must not get the secure variable: {fork_log}"
    );
    assert!(!fork_log.contains("Deploying with s3"), "{fork_log}");
    let before = listing(&moto, &bucket);
    assert!(
        !before.contains("<Key>"),
        "a pull request deployed: {before}"
    );

    // A push to master: the secure variable is there (and masked), and the deploy authenticates
    // with the decrypted secret key. The object is "built on master\n", 16 bytes.
    let push = server.push_master(&origin, "deploy-push");
    let push_log = push.expect(
        "passed",
        &[
            "token=[[secure]] secure_env=true",
            "Deploying with s3",
            "Deploy finished",
        ],
    );
    let after = listing(&moto, &bucket);
    assert!(
        after.contains("<Key>index.txt</Key>") && after.contains("<Size>16</Size>"),
        "the object did not land: {after}\n{push_log}"
    );

    for (what, text) in [
        ("the fork's job log", fork_log),
        ("the push's job log", push_log),
        ("the server log", &server.server_log()),
    ] {
        for secret in [AWS_SECRET, SITE_TOKEN] {
            assert!(!text.contains(secret), "{what} shows a secret: {text}");
        }
    }
}
