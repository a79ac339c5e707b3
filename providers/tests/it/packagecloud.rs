//! `provider: packagecloud` against a request-checking stand-in for packagecloud's API (no
//! packagecloud can run here): the token as the Basic user name, `dist` turned into the id of its
//! distributions list, each package a `multipart/form-data` upload whose parts the stand-in
//! parses (a distribution id for `.deb`, none for a gem), a file name taken once, and `force`
//! yanking the one already there. golang-migrate's deploy (`dist: ubuntu/xenial`,
//! `package_glob: '*.deb'`) is the first case.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;

const TOKEN: &str = "pc_token_52ab";

/// One part of a `multipart/form-data` body: (name, file name, bytes).
type Part = (String, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` body.
fn parts(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=")?;
    let text = body;
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let at = find(rest, delimiter.as_bytes())?;
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            return Some(out);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())?;
        let data = rest[..end].to_vec();
        rest = &rest[end + 2..];
        let field = |key: &str| {
            head.split(';')
                .find_map(|p| p.trim().strip_prefix(&format!("{key}=\"")))
                .and_then(|v| v.strip_suffix('"').or(v.split('"').next()))
                .map(str::to_owned)
        };
        out.push((field("name")?, field("filename"), data));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Default)]
struct Cloud {
    /// (repository, distro id, file name, bytes).
    packages: Vec<(String, Option<String>, String, Vec<u8>)>,
    yanked: Vec<String>,
    problems: Vec<String>,
}

fn cloud() -> (StandIn, Arc<Mutex<Cloud>>) {
    let state = Arc::new(Mutex::new(Cloud::default()));
    let s = state.clone();
    let standin = StandIn::start(move |req| {
        let mut s = s.lock().unwrap();
        // "pc_token_52ab:" in Basic.
        if req.header("authorization").as_deref() != Some("Basic cGNfdG9rZW5fNTJhYjo=") {
            s.problems
                .push(format!("{} {} without the token", req.method, req.path));
            return Reply::json(401, json!({"error": "Unauthenticated"}));
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v1/distributions.json") => Reply::json(
                200,
                json!({"deb": [{"display_name": "Ubuntu", "index_name": "ubuntu",
                                "versions": [{"id": 165, "index_name": "xenial"}, {"id": 190, "index_name": "focal"}]}],
                       "rpm": [{"display_name": "Enterprise Linux", "index_name": "el",
                                "versions": [{"id": 140, "index_name": "7"}]}]}),
            ),
            ("DELETE", path)
                if path.starts_with("/api/v1/repos/golang-migrate/migrate/ubuntu/xenial/") =>
            {
                let file = path.rsplit('/').next().unwrap().to_owned();
                let before = s.packages.len();
                s.packages.retain(|p| p.2 != file);
                if s.packages.len() == before {
                    return Reply::json(404, json!({"error": "not found"}));
                }
                s.yanked.push(file);
                Reply::json(200, json!({}))
            }
            ("POST", "/api/v1/repos/golang-migrate/migrate/packages.json") => {
                let Some(parts) = parts(&req.header("content-type").unwrap_or_default(), &req.body)
                else {
                    s.problems.push("not multipart/form-data".into());
                    return Reply::json(400, json!({"error": "multipart expected"}));
                };
                let distro = parts
                    .iter()
                    .find(|p| p.0 == "package[distro_version_id]")
                    .map(|p| String::from_utf8_lossy(&p.2).into_owned());
                let Some((_, Some(file), bytes)) =
                    parts.into_iter().find(|p| p.0 == "package[package_file]")
                else {
                    s.problems.push("no package[package_file]".into());
                    return Reply::json(422, json!({"package_file": ["can't be blank"]}));
                };
                if file.ends_with(".deb") && distro.as_deref() != Some("165") {
                    s.problems.push(format!("{file} with distro {distro:?}"));
                    return Reply::json(422, json!({"distribution": ["is required"]}));
                }
                if s.packages.iter().any(|p| p.2 == file) {
                    return Reply::json(422, json!({"filename": ["has already been taken"]}));
                }
                s.packages.push(("migrate".into(), distro, file, bytes));
                Reply::json(201, json!({}))
            }
            (m, p) => {
                s.problems.push(format!("{m} {p}"));
                Reply::json(404, json!({"error": "not found"}))
            }
        }
    });
    (standin, state)
}

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
