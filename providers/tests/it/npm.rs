//! `provider: npm` against a request-checking stand-in for the npm registry (no registry can run
//! here): the publish document is checked as the registry checks it — the bearer token, the
//! package's path, one version whose `dist` SHA-1 and SHA-512 match the attached tarball, the
//! dist-tag, the attachment's length, `access` — and a version is published once.

use std::io::Write;

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;
use slipway_providers::testing::npm::{TOKEN, start as registry};

/// A build dir holding what `npm pack` leaves: `.slipway-npm-pack/NAME-VERSION.tgz`.
pub fn packed(package: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let name = package["name"]
        .as_str()
        .unwrap()
        .trim_start_matches('@')
        .replace('/', "-");
    let pack = dir.path().join(".slipway-npm-pack");
    std::fs::create_dir_all(&pack).unwrap();
    let file = std::fs::File::create(pack.join(format!(
        "{name}-{}.tgz",
        package["version"].as_str().unwrap()
    )))
    .unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, content) in [
        ("package/package.json", package.to_string()),
        ("package/index.js", "module.exports = 42;\n".to_owned()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    dir
}

fn run(ctx: &DeployContext, options: Value) -> (Outcome, Vec<String>) {
    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&deploy("npm", options), ctx, &log));
    (out, log.lines())
}

#[test]
fn a_scoped_package_is_published_once_with_its_tag_and_access() {
    let (standin, state) = registry();
    let dir =
        packed(json!({"name": "@acme/widget", "version": "1.2.0", "description": "A widget"}));
    let ctx = context(dir.path());
    let options = json!({"api_key": TOKEN, "email": "dev@example.org", "registry": standin.url,
                         "tag": "next", "access": "public"});
    let (out, log) = run(&ctx, options.clone());
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?}\n{log:#?}")
    };
    assert_eq!(
        summary,
        format!("published @acme/widget@1.2.0 to {}/ (next)", standin.url)
    );
    {
        let s = state.lock().unwrap();
        assert!(s.problems.is_empty(), "{:#?}", s.problems);
        assert_eq!(
            s.published["@acme/widget"],
            [("1.2.0".into(), "next".into(), Some("public".into()))]
        );
    }
    assert_eq!(standin.actions(), ["PUT /@acme%2fwidget"]);
    assert!(!log.join("\n").contains(TOKEN));

    // The registry refuses the same version again; the deploy fails with its words.
    let (out, _) = run(&ctx, options);
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "npm: publish of @acme/widget failed: HTTP 403: You cannot publish over the previously published versions: 1.2.0."
    );
}

#[test]
fn publish_config_names_the_registry_and_tag_and_a_wrong_token_is_refused() {
    let (standin, state) = registry();
    let dir = packed(json!({"name": "left-pad-ng", "version": "0.3.1",
                            "publishConfig": {"registry": standin.url, "tag": "beta"}}));
    let mut ctx = context(dir.path());
    ctx.env.insert(
        "NPM_TOKEN".into(),
        slipway_providers::EnvValue::Secret(slipway_secrets::Secret::new(TOKEN.into())),
    );
    let (out, log) = run(&ctx, json!({}));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(
        state.lock().unwrap().published["left-pad-ng"],
        [("0.3.1".into(), "beta".into(), None)]
    );
    assert!(
        log.join("\n")
            .contains("credentials from the job's NPM_TOKEN")
    );

    let (out, log) = run(&context(dir.path()), json!({"api_token": "npm_wrong_1"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "npm: publish of left-pad-ng failed: HTTP 401: unauthorized"
    );
    assert!(!log.join("\n").contains("npm_wrong_1"));
}

#[test]
fn private_packages_missing_tarballs_and_bad_options_send_nothing() {
    let (standin, _) = registry();
    let private = packed(json!({"name": "secret-sauce", "version": "1.0.0", "private": true}));
    let (out, _) = run(
        &context(private.path()),
        json!({"api_token": TOKEN, "registry": standin.url}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.one_line().contains("secret-sauce is private"), "{e}");
    let empty = tree(&[("package.json", "{}")]);
    let (out, _) = run(
        &context(empty.path()),
        json!({"api_token": TOKEN, "registry": standin.url, "src": "lib"}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "npm: `npm pack lib` left no tarball in .slipway-npm-pack"
    );
    let (out, _) = run(&context(empty.path()), json!({"access": "everyone"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "npm: option `access`: `everyone` is not public or restricted"
    );
    assert!(standin.requests().is_empty());
}

#[test]
fn the_job_step_packs_src_into_the_pack_dir() {
    let step = slipway_providers::npm::job_step(
        &[("src".to_owned(), json!("packages/my lib"))]
            .into_iter()
            .collect(),
    );
    assert!(
        step.ends_with(
            "npm pack 'packages/my lib' --pack-destination \"$TRAVIS_BUILD_DIR/.slipway-npm-pack\""
        ),
        "{step}"
    );
    assert!(step.starts_with("rm -rf \"$TRAVIS_BUILD_DIR/.slipway-npm-pack\""));
}
