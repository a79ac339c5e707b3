//! Dry runs: every deploy's API calls in order, secrets as `[secure]`, nothing contacted or decrypted.

use std::sync::Arc;

use crate::util::*;
use slipway_pipelines::plan::{Context, EventType};
use slipway_providers::{dry_run_job, parse};

fn job() -> slipway_pipelines::plan::Job {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dry-run.slipway.yml");
    let ctx = Context {
        event: EventType::Push,
        branch: "master".into(),
        repo: "acme/shop".into(),
        commit: Some("c0ffee".into()),
        ..Context::default()
    };
    let plan =
        slipway_pipelines::plan(".slipway.yml", &std::fs::read(file).unwrap(), &ctx).unwrap();
    plan.stages[0].jobs[0].clone()
}

fn workdir() -> tempfile::TempDir {
    tree(&[
        (".gitignore", "node_modules\n"),
        ("node_modules/left-pad/index.js", "x"),
        (
            "Dockerrun.aws.json",
            r#"{"AWSEBDockerrunVersion": 2, "containerDefinitions": [{"name": "web", "image": "acme/shop-web", "memory": 256}, {"name": "cache", "image": "redis:7", "memory": 64}]}"#,
        ),
        (
            "k8s/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: acme/shop-web\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
        ),
        (
            "k8s/issuer.yaml",
            "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\n",
        ),
        ("public/index.html", "<h1>shop</h1>"),
        ("public/app.js", "1"),
    ])
}

/// [`workdir`] plus a gzip-compressed asset, which `detect_encoding` marks `Content-Encoding: gzip`.
fn workdir_with_gzip() -> tempfile::TempDir {
    let dir = workdir();
    std::fs::write(
        dir.path().join("public/app.js.gz"),
        [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00],
    )
    .unwrap();
    dir
}

/// A secret source a dry run must never call.
struct NeverDecrypt;

impl slipway_runner::SecretSource for NeverDecrypt {
    fn decrypt_env(
        &self,
        _: &str,
        _: &str,
    ) -> Result<(String, slipway_secrets::Secret<String>), slipway_secrets::Error> {
        panic!("a dry run decrypted a value")
    }

    fn decrypt_file(
        &self,
        _: &str,
        _: &[u8],
    ) -> Result<slipway_secrets::Secret<Vec<u8>>, slipway_secrets::Error> {
        panic!("a dry run decrypted a file")
    }
}

#[test]
fn dry_run_lists_each_deploys_calls_in_order() {
    let dir = workdir_with_gzip();
    // Endpoints point at a recorder: a dry run must not contact it, and must not decrypt.
    let recorder = StandIn::start(|_| Reply::json(500, serde_json::json!({})));
    let mut ctx = context(dir.path())
        .with_env("SHA", "c0ffee")
        .with_env("AWS_ACCESS_KEY", "AKIDSHOP");
    ctx.endpoints = aws_at(&recorder.url);
    ctx.endpoints.kubernetes = Some(recorder.url.clone());
    ctx.endpoints.github_api = Some("http://github.invalid/api".into());
    ctx.endpoints.github = Some("http://git.invalid".into());
    ctx.endpoints.heroku = Some("http://heroku.invalid".into());
    ctx.endpoints.packagecloud = Some("http://packagecloud.invalid".into());
    ctx.pushed_images = vec!["acme/shop-web:c0ffee".into()];
    ctx.secrets = Some(Arc::new(NeverDecrypt));
    let runs = dry_run_job(&job(), &ctx);
    insta::assert_yaml_snapshot!(runs);
    assert!(recorder.requests().is_empty());
}

#[test]
fn the_dry_run_shows_plain_text_and_lines_render_as_the_cli_prints_them() {
    let dir = workdir();
    let ctx = context(dir.path())
        .with_env("SHA", "c0ffee")
        .with_env("AWS_ACCESS_KEY", "AKIDSHOP");
    let job = job();
    let eb = parse(&job.deploys[0], &ctx, true).unwrap();
    let lines: Vec<String> = eb.dry_run(&ctx).iter().map(|c| c.to_string()).collect();
    assert_eq!(
        lines[0],
        "aws Credentials source=options (access_key_id AKIDSHOP) region=eu-west-1"
    );
    assert_eq!(
        lines[4],
        "s3 PutObject Bucket=shop-bundles Key=releases/slipway-c0ffee1234567890c0ffee1234567890c0ffee12-1700000000.zip"
    );
}

#[test]
fn option_problems_show_in_the_dry_run_instead_of_calls() {
    let ctx = context("/nonexistent").with_env("AWS_ACCESS_KEY", "AKIDSHOP");
    let mut job = job();
    job.deploys[1]
        .options
        .insert("clustr".into(), serde_json::json!("x"));
    let runs = dry_run_job(&job, &ctx);
    // Options are read in order: without $SHA in the job's environment the image cannot be named.
    assert!(runs[1].calls.is_empty());
    assert_eq!(
        runs[1].error.as_deref(),
        Some("ecs: option `images.web`: $SHA is not set in the job's environment")
    );
    let ctx = ctx.with_env("SHA", "c0ffee");
    let runs = dry_run_job(&job, &ctx);
    assert_eq!(
        runs[1].error.as_deref(),
        Some(
            "ecs: option `clustr`: unknown option (the ecs provider takes: access_key_id, secret_access_key, region, endpoint, cluster, service, task_definition, dockerrun, family, container, image, images, pin_images, wait_until_deployed, timeout, rollback)"
        )
    );
    assert_eq!(runs[2].error, None);
}
