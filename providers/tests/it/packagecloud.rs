//! `provider: packagecloud` against a request-checking stand-in for packagecloud's API (no
//! packagecloud can run here): the token as the Basic user name, `dist` turned into the id of its
//! distributions list, each package a `multipart/form-data` upload whose parts the stand-in
//! parses (a distribution id for `.deb`, none for a gem), a file name taken once, and `force`
//! yanking the one already there. golang-migrate's deploy (`dist: ubuntu/xenial`,
//! `package_glob: '*.deb'`) is the first case.

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;
use slipway_providers::testing::packagecloud::{TOKEN, start as cloud};

fn run(ctx: &DeployContext, options: Value) -> (Outcome, Vec<String>) {
    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&deploy("packagecloud", options), ctx, &log));
    (out, log.lines())
}

fn built() -> tempfile::TempDir {
    tree(&[
        ("migrate.linux-amd64.deb", "deb package bytes"),
        ("migrate.linux-arm64.deb", "another deb"),
        (
            "cli/build/migrate.linux-amd64.tar.gz",
            "not matched by *.deb",
        ),
        ("README.md", "not a package"),
    ])
}

fn ctx(dir: &std::path::Path, url: &str) -> DeployContext {
    let mut c = context(dir);
    c.endpoints.packagecloud = Some(url.into());
    c
}

#[test]
fn debs_upload_with_their_distribution_and_force_replaces_them() {
    let (standin, state) = cloud();
    let dir = built();
    let c = ctx(dir.path(), &standin.url);
    let options = |force: bool| {
        json!({"repository": "migrate", "username": "golang-migrate", "token": TOKEN,
               "dist": "ubuntu/xenial", "package_glob": "*.deb", "force": force})
    };
    let (out, log) = run(&c, options(false));
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?}\n{log:#?}")
    };
    assert_eq!(summary, "uploaded 2 package(s) to golang-migrate/migrate");
    {
        let s = state.lock().unwrap();
        assert!(s.problems.is_empty(), "{:#?}", s.problems);
        let got: Vec<(&str, Option<&str>, &[u8])> = s
            .packages
            .iter()
            .map(|p| (p.2.as_str(), p.1.as_deref(), p.3.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "migrate.linux-amd64.deb",
                    Some("165"),
                    &b"deb package bytes"[..]
                ),
                ("migrate.linux-arm64.deb", Some("165"), &b"another deb"[..]),
            ]
        );
    }
    assert!(!log.join("\n").contains(TOKEN));

    // The same files again: taken, unless force yanks them first.
    let (out, _) = run(&c, options(false));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "packagecloud: POST /api/v1/repos/golang-migrate/migrate/packages.json failed: HTTP 422: {\"filename\":[\"has already been taken\"]}"
    );
    let (out, log) = run(&c, options(true));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let s = state.lock().unwrap();
    assert_eq!(
        s.yanked,
        ["migrate.linux-amd64.deb", "migrate.linux-arm64.deb"]
    );
    assert_eq!(s.packages.len(), 2);
}

#[test]
fn a_gem_needs_no_distribution_and_a_deb_without_dist_or_with_an_unknown_one_sends_nothing() {
    let (standin, state) = cloud();
    let dir = tree(&[
        ("pkg/tool-1.0.gem", "gem bytes"),
        ("pkg/tool_1.0_amd64.deb", "deb"),
    ]);
    let c = ctx(dir.path(), &standin.url);
    let (out, log) = run(
        &c,
        json!({"repository": "migrate", "username": "golang-migrate", "token": TOKEN,
               "local_dir": "pkg", "package_glob": "*.gem"}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(state.lock().unwrap().packages[0].1, None);

    let before = standin.requests().len();
    let (out, _) = run(
        &c,
        json!({"repository": "migrate", "username": "golang-migrate", "token": TOKEN, "local_dir": "pkg"}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "packagecloud: option `dist`: is required for .deb, .rpm and .dsc packages (e.g. ubuntu/xenial)"
    );
    assert_eq!(standin.requests().len(), before);
    let (out, _) = run(
        &c,
        json!({"repository": "migrate", "username": "golang-migrate", "token": TOKEN,
               "local_dir": "pkg", "dist": "ubuntu/warty"}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "packagecloud: option `dist`: packagecloud knows no distribution ubuntu/warty"
    );
    let (out, _) = run(
        &c,
        json!({"repository": "migrate", "username": "golang-migrate", "token": "wrong", "local_dir": "pkg",
               "package_glob": "*.gem"}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert!(
        e.one_line()
            .ends_with("HTTP 401: {\"error\":\"Unauthenticated\"}"),
        "{e}"
    );
}
