//! `slipway serve` end to end with repository secrets: a push to master deploys to S3 (moto at
//! `$SLIPWAY_TEST_MOTO`) with a `secure:` secret key that `slipway secrets` encrypted into the
//! server's data directory, and a pull request from a fork of the same pipeline gets no secret.
//! No secret value appears in any job log or in the server's own log.

use crate::serve::*;
use crate::support::{busybox, http, moto_and_engine};
use std::path::Path;
use std::process::Command;

/// What the `secure:` values hold; each must never be seen in a log.
const AWS_SECRET: &str = "moto-secret-5b2e9d71c4";
const SITE_TOKEN: &str = "site-token-0f8a3c6e27";

/// `slipway secrets encrypt NAME=VALUE` for the served repository, in the server's data dir;
/// returns the ciphertext the pipeline puts under `secure:`.
fn encrypt(data: &Path, assignment: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "secrets",
            "encrypt",
            assignment,
            "--repo",
            REPO,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim()
        .strip_prefix("secure: \"")
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("unexpected output of slipway secrets encrypt: {text}"))
        .to_string()
}

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

fn build_of(answer: (u16, String)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    serde_json::from_str::<serde_json::Value>(&answer.1).unwrap()["build"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_push_deploys_with_the_repositorys_secret_and_a_fork_gets_none() {
    let Some(moto) = moto_and_engine() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("slipway-serve-{}-{nanos}", std::process::id());
    assert_eq!(
        http("PUT", &moto, &format!("/{bucket}")).map(|r| r.0),
        Some(200)
    );

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let secret_key = encrypt(&data, &format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}"));
    let site_token = encrypt(&data, &format!("SITE_TOKEN={SITE_TOKEN}"));
    let origin = Origin::new(tmp.path(), &pipeline(&bucket, &secret_key, &site_token));
    let github = FakeGitHub::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = github.start(&rt);
    let server = Served::with_env(
        tmp.path(),
        &api,
        &origin.url(),
        "workers = 1",
        &[("SLIPWAY_S3_ENDPOINT", &moto)],
    );

    // A pull request from a fork: the same pipeline, no secret, nothing deployed.
    let head = origin.pull_request(5, "master", "feature.txt", "from a fork\n");
    let base = git(&origin.work, &["rev-parse", "master"]);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&pr_payload(REPO, &origin.url(), "opened", 5, &head, &base))
            .unwrap();
    payload["pull_request"]["head"]["repo"] = serde_json::json!({"full_name": "eve/app", "clone_url": "https://example.invalid/eve/app.git"});
    let fork = build_of(server.deliver(
        "pull_request",
        "deploy-fork-pr",
        &serde_json::to_vec(&payload).unwrap(),
    ));
    let v = server.wait_final(fork, 180);
    let fork_log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{fork_log}");
    assert!(
        fork_log.contains("token=[] secure_env=false"),
        "the fork's job must not get the secure variable: {fork_log}"
    );
    assert!(
        fork_log.contains("Secure variables are unset because this is a pull request from a fork"),
        "{fork_log}"
    );
    assert!(!fork_log.contains("Deploying with s3"), "{fork_log}");
    let (_, listing) = http("GET", &moto, &format!("/{bucket}")).unwrap();
    assert!(
        !listing.contains("<Key>"),
        "a pull request deployed: {listing}"
    );

    // A push to master: the secure variable is there (and masked), and the deploy authenticates
    // with the decrypted secret key. The object is "built on master\n", 16 bytes.
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let push = build_of(server.deliver(
        "push",
        "deploy-push",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &sha),
    ));
    let v = server.wait_final(push, 180);
    let push_log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{push_log}");
    assert!(
        push_log.contains("token=[[secure]] secure_env=true"),
        "{push_log}"
    );
    assert!(push_log.contains("Deploying with s3"), "{push_log}");
    assert!(push_log.contains("Deploy finished"), "{push_log}");
    let (status, listing) = http("GET", &moto, &format!("/{bucket}")).unwrap();
    assert_eq!(status, 200, "{listing}");
    assert!(
        listing.contains("<Key>index.txt</Key>") && listing.contains("<Size>16</Size>"),
        "the object did not land: {listing}\n{push_log}"
    );

    for (what, text) in [
        ("the fork's job log", &fork_log),
        ("the push's job log", &push_log),
        ("the server log", &server.server_log()),
    ] {
        for secret in [AWS_SECRET, SITE_TOKEN] {
            assert!(!text.contains(secret), "{what} shows a secret: {text}");
        }
    }
}
