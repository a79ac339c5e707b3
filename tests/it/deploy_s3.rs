//! `slipway run` with an `s3` deploy: a push to the deploy branch uploads the job's files into the
//! local AWS double (moto, `$SLIPWAY_TEST_MOTO`), a pull request deploys nothing, a dry run lists
//! the calls without contacting anything, and `secure:` options made with `slipway secrets encrypt`
//! are decrypted for the upload and never shown. Under CI=true a missing engine, image or moto
//! fails.

use crate::support::{
    busybox, encrypt, http, listing, moto_bucket, slipway_run_s3, succeeded, text,
};

use std::net::TcpListener;
use std::process::Command;

const PIPELINE: &str = r#"
image: "{busybox}"
language: shell
env:
  global:
    - AWS_ACCESS_KEY_ID=testing
    - AWS_SECRET_ACCESS_KEY=testing
script:
  - mkdir -p site/docs && echo "built on $TRAVIS_BRANCH" > site/docs/index.txt
deploy:
  provider: s3
  bucket: "{bucket}"
  local_dir: site
  skip_cleanup: true
  on:
    branch: main
"#;

fn repo_with(bucket: &str) -> tempfile::TempDir {
    crate::support::repo_with_pipeline(".slipway.yml", &PIPELINE.replace("{bucket}", bucket))
}

#[test]
fn a_push_to_the_deploy_branch_uploads_the_jobs_files_to_s3() {
    let Some((moto, bucket)) = moto_bucket("slipway-e2e") else {
        return;
    };
    let repo = repo_with(&bucket);

    let out = slipway_run_s3(repo.path(), &moto, &["--branch", "main"]);
    let log = succeeded(&out, &["Deploying with s3", "Deploy finished"]);

    // The object is private, so the anonymous check reads the listing: key and size of
    // "built on main\n", written by the job's script.
    let listing = listing(&moto, &bucket);
    assert!(
        listing.contains("<Key>docs/index.txt</Key>") && listing.contains("<Size>14</Size>"),
        "{listing}\n{log}"
    );
}

#[test]
fn secure_deploy_options_are_decrypted_for_the_upload_and_never_shown() {
    let Some((moto, bucket)) = moto_bucket("slipway-e2e") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let slug = "acme/secure-deploy";
    // moto accepts any key pair; the secret half and the key prefix come from `secure:` options.
    let secret_key = format!("{bucket}-secret-access-key");
    let prefix = format!("{bucket}-prefix");
    let secure_key = encrypt(
        data.path(),
        slug,
        &format!("AWS_SECRET_ACCESS_KEY={secret_key}"),
    );
    let secure_prefix = encrypt(data.path(), slug, &format!("UPLOAD_DIR={prefix}"));

    let pipeline = format!(
        r#"
image: "{{busybox}}"
language: shell
script:
  - mkdir -p site && echo "secure deploy" > site/index.txt
deploy:
  provider: s3
  access_key_id: testing
  secret_access_key:
    secure: "{secure_key}"
  bucket: "{bucket}"
  local_dir: site
  upload_dir:
    secure: "{secure_prefix}"
  skip_cleanup: true
  on:
    branch: main
"#
    );
    let dir = crate::support::repo_with_pipeline(".slipway.yml", &pipeline);
    let run = |repo: &str| {
        Command::new(env!("CARGO_BIN_EXE_slipway"))
            .arg("run")
            .arg(dir.path())
            .args(["--branch", "main", "--repo", repo])
            .env("SLIPWAY_DATA_DIR", data.path())
            .env("SLIPWAY_S3_ENDPOINT", &moto)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .output()
            .unwrap()
    };

    let out = run(slug);
    let log = succeeded(&out, &[]);
    // The destination's secure prefix is masked in the provider's progress.
    assert!(log.contains(&format!("to s3://{bucket}/[secure]")), "{log}");
    assert!(log.contains("Deploy finished"), "{log}");
    assert!(!log.contains(&secret_key), "{log}");
    assert!(!log.contains(&prefix), "{log}");
    let listing = listing(&moto, &bucket);
    assert!(
        listing.contains(&format!("<Key>{prefix}/index.txt</Key>")),
        "{listing}\n{log}"
    );

    // Without the repository's key nothing decrypts: the deploy fails naming the option, and
    // the job errors.
    let out = run("acme/keyless");
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("s3: option `secret_access_key`: cannot decrypt the secure value"),
        "{log}"
    );
    assert!(!log.contains(&secret_key), "{log}");
}

#[test]
fn a_pull_request_does_not_deploy() {
    let Some((moto, bucket)) = moto_bucket("slipway-e2e") else {
        return;
    };
    let repo = repo_with(&bucket);

    let out = slipway_run_s3(
        repo.path(),
        &moto,
        &["--branch", "main", "--pull-request", "7"],
    );
    let log = succeeded(&out, &[]);
    assert!(!log.contains("Deploying with s3"), "{log}");
    assert!(
        log.contains("Deploy skipped: deploys never run on pull request builds (provider s3)"),
        "{log}"
    );

    let listing = listing(&moto, &bucket);
    assert!(
        !listing.contains("<Key>"),
        "the bucket must stay empty: {listing}"
    );
}

#[test]
fn a_dry_run_lists_the_s3_calls_and_contacts_nothing() {
    // Any connection to this listener would be the dry run contacting the endpoint.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let repo = repo_with("dry-bucket");
    std::fs::create_dir_all(repo.path().join("site/docs")).unwrap();
    std::fs::write(repo.path().join("site/docs/index.txt"), "local").unwrap();

    let out = slipway_run_s3(repo.path(), &endpoint, &["--branch", "main", "--dry-run"]);
    let log = succeeded(&out, &[]);
    let deploy = log
        .split_once("deploy s3: runs")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no deploy section: {log}"));
    assert!(
        deploy.lines().next().is_some_and(
            |l| l.ends_with("(skip_cleanup: deploys the build dir as the job left it)")
        ),
        "the verdict line does not say the build dir is kept: {deploy}"
    );
    assert!(
        deploy.contains("credentials: the job's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
        "{deploy}"
    );
    assert!(
        deploy.contains("1. aws Credentials source=the job's AWS_ACCESS_KEY_ID"),
        "{deploy}"
    );
    let put = deploy
        .lines()
        .find(|l| l.contains("s3 PutObject"))
        .unwrap_or_else(|| panic!("no PutObject: {deploy}"));
    assert!(put.contains("Bucket=dry-bucket"), "{put}");
    assert!(put.contains("Key=docs/index.txt"), "{put}");
    assert!(
        listener.accept().is_err(),
        "the dry run connected to the endpoint"
    );

    // A pull request's dry run lists no deploy calls.
    let out = slipway_run_s3(
        repo.path(),
        &endpoint,
        &["--branch", "main", "--pull-request", "7", "--dry-run"],
    );
    let log = succeeded(&out, &[]);
    assert!(!log.contains("s3 PutObject"), "{log}");
}

#[test]
fn slipway_run_on_ones_own_machine_deploys_with_its_ambient_credentials() {
    let Some((moto, bucket)) = moto_bucket("slipway-e2e") else {
        return;
    };
    // The pipeline gives no keys: the machine's own environment does, as dpl would use them.
    let dir = tempfile::tempdir().unwrap();
    let pipeline = PIPELINE
        .replace("{busybox}", &busybox())
        .replace("{bucket}", &bucket)
        .replace(
            "    - AWS_ACCESS_KEY_ID=testing\n    - AWS_SECRET_ACCESS_KEY=testing\n",
            "    - SITE=site\n",
        );
    assert!(!pipeline.contains("AWS_ACCESS_KEY_ID"), "{pipeline}");
    std::fs::write(dir.path().join(".slipway.yml"), pipeline).unwrap();
    let git = |args: &[&str]| crate::support::git(dir.path(), args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "pipeline"]);
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_slipway"))
            .arg("run")
            .arg(dir.path())
            .args(["--branch", "main"])
            .args(extra)
            .env("SLIPWAY_S3_ENDPOINT", &moto)
            .env("AWS_ACCESS_KEY_ID", "machine-key")
            .env("AWS_SECRET_ACCESS_KEY", "machine-secret")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .output()
            .unwrap()
    };
    let dry = text(&run(&["--dry-run"]));
    assert!(
        dry.contains("credentials: the standard AWS credential chain of this machine"),
        "{dry}"
    );
    let out = run(&[]);
    let log = succeeded(&out, &["Deploy finished"]);
    let (_, listing) = http("GET", &moto, &format!("/{bucket}")).unwrap();
    assert!(
        listing.contains("<Key>docs/index.txt</Key>"),
        "{listing}\n{log}"
    );
}
