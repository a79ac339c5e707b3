//! `provider: releases` against the GitHub stand-in of `slipway_webhook::testing` (`FakeGitHub`
//! with its Releases side), which checks every request as GitHub does: a release is created as a
//! draft, its assets uploaded, then published with the options; existing releases and assets are
//! found and kept or replaced; credentials come from the options, the job, or (on a server) the
//! server's own GitHub access for the built repository only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::*;
use async_trait::async_trait;
use serde_json::json;
use slipway_providers::{
    Credentials, DeployContext, EnvValue, GitHubTokens, MemorySink, Outcome, run_deploy,
};
use slipway_secrets::Secret;
use slipway_webhook::testing::{FakeGitHub, FakeRelease, FakeReleases};

const TOKEN: &str = "ghp_release_token_5d1c9e";
const SERVER_TOKEN: &str = "ghs_server_token_77a0b2";
const SHA: &str = "c0ffee1234567890c0ffee1234567890c0ffee12";

struct GitHub {
    rt: tokio::runtime::Runtime,
    fake: FakeGitHub,
    url: String,
}

fn github(existing: Vec<FakeRelease>) -> GitHub {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = FakeGitHub::default();
    fake.releases(FakeReleases {
        tokens: vec![TOKEN.into(), SERVER_TOKEN.into()],
        passwords: vec![("octo".into(), "hunter2-pass".into())],
        repos: vec!["octo/app".into(), "octo/other".into()],
        releases: existing,
        ..FakeReleases::default()
    });
    let url = fake.start(&rt);
    GitHub { rt, fake, url }
}

impl GitHub {
    fn ctx(&self, dir: &std::path::Path) -> DeployContext {
        let mut c = context(dir);
        c.repo = "octo/app".into();
        c.commit = SHA.into();
        c.tag = Some("v1.2.0".into());
        c.endpoints.github_api = Some(self.url.clone());
        c.credentials = Credentials::default();
        c
    }

    fn run(&self, ctx: &DeployContext, options: serde_json::Value) -> (Outcome, Vec<String>) {
        let log = MemorySink::default();
        let out = self
            .rt
            .block_on(run_deploy(&deploy("releases", options), ctx, &log));
        (out, log.lines())
    }

    fn calls(&self) -> Vec<String> {
        self.fake
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.answered))
            .collect()
    }
}

fn built() -> tempfile::TempDir {
    tree(&[
        ("target/deploy/app-v1.2.0-x86_64.tar.gz", "linux binary"),
        ("target/deploy/app-v1.2.0-x86_64.zip", "windows binary!"),
        ("target/deploy/.DS_Store", "not an asset"),
        ("NOTES.md", "Fixed everything.\n"),
    ])
}

#[test]
fn a_tag_gets_a_release_with_its_assets_published_after_the_upload() {
    let gh = github(vec![]);
    let dir = built();
    let mut ctx = gh.ctx(dir.path());
    ctx.env.insert(
        "GH_TOKEN".into(),
        EnvValue::Secret(Secret::new(TOKEN.into())),
    );
    let (out, log) = gh.run(
        &ctx,
        json!({
            "api_key": "$GH_TOKEN",
            "file_glob": true,
            "file": "./target/deploy/*",
            "name": "App 1.2.0",
            "release_notes_file": "NOTES.md",
            "prerelease": true,
        }),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let state = gh.fake.releases_state();
    assert!(state.problems.is_empty(), "{:#?}", state.problems);
    assert_eq!(state.releases.len(), 1);
    let r = &state.releases[0];
    assert_eq!(
        (
            r.tag_name.as_str(),
            r.target_commitish.as_str(),
            r.name.as_deref(),
            r.body.as_deref(),
            r.draft,
            r.prerelease
        ),
        (
            "v1.2.0",
            SHA,
            Some("App 1.2.0"),
            Some("Fixed everything.\n"),
            false,
            true
        )
    );
    let assets: Vec<(&str, &str, &[u8])> = r
        .assets
        .iter()
        .map(|a| (a.name.as_str(), a.content_type.as_str(), a.bytes.as_slice()))
        .collect();
    assert_eq!(
        assets,
        [
            (
                "app-v1.2.0-x86_64.tar.gz",
                "application/gzip",
                &b"linux binary"[..]
            ),
            (
                "app-v1.2.0-x86_64.zip",
                "application/zip",
                &b"windows binary!"[..]
            ),
        ]
    );
    // Created as a draft, so it is public only once its assets are there.
    let calls = gh.calls();
    assert_eq!(
        calls,
        [
            "GET /repos/octo/app/releases 200",
            "POST /repos/octo/app/releases 201",
            "GET /repos/octo/app/releases/1/assets 200",
            "POST /uploads/repos/octo/app/releases/1/assets 201",
            "POST /uploads/repos/octo/app/releases/1/assets 201",
            "PATCH /repos/octo/app/releases/1 200",
        ]
    );
    let requests = gh.fake.requests.lock().unwrap().clone();
    assert_eq!(requests[1].body["draft"], true);
    assert_eq!(requests[5].body["draft"], false);
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "{requests:#?}"
    );
    let text = log.join("\n");
    assert!(
        text.contains("credentials from the token option ([secure])"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
}

fn published(assets: &[(&str, &[u8])]) -> FakeRelease {
    FakeRelease {
        id: 40,
        repo: "octo/app".into(),
        tag_name: "v1.2.0".into(),
        target_commitish: "main".into(),
        name: Some("Hand-written".into()),
        body: Some("kept".into()),
        draft: false,
        prerelease: false,
        assets: assets
            .iter()
            .enumerate()
            .map(|(i, (n, b))| slipway_webhook::testing::FakeAsset {
                id: 100 + i as u64,
                name: (*n).into(),
                content_type: "application/octet-stream".into(),
                bytes: b.to_vec(),
            })
            .collect(),
    }
}

#[test]
fn an_existing_release_keeps_its_assets_unless_overwrite_replaces_them() {
    let gh = github(vec![published(&[("app-v1.2.0-x86_64.zip", b"old")])]);
    let dir = built();
    let ctx = gh.ctx(dir.path());
    let options = |overwrite: bool| {
        json!({"token": TOKEN, "file": ["target/deploy/app-v1.2.0-x86_64.zip", "missing.bin"],
               "overwrite": overwrite})
    };
    let (out, log) = gh.run(&ctx, options(false));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let text = log.join("\n");
    assert!(
        text.contains("no file matches missing.bin; skipping it"),
        "{text}"
    );
    assert!(
        text.contains("app-v1.2.0-x86_64.zip is already an asset of the release; skipping it"),
        "{text}"
    );
    let r = &gh.fake.releases_state().releases[0];
    assert_eq!(r.assets[0].bytes, b"old");
    // Not created again; the hand-written name and notes stay (no option changes them).
    assert_eq!(
        (r.name.as_deref(), r.body.as_deref()),
        (Some("Hand-written"), Some("kept"))
    );

    let (out, log) = gh.run(&ctx, options(true));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let state = gh.fake.releases_state();
    assert!(state.problems.is_empty(), "{:#?}", state.problems);
    let assets = &state.releases[0].assets;
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].bytes, b"windows binary!");
    assert!(
        gh.calls()
            .contains(&"DELETE /repos/octo/app/releases/assets/100 204".to_string()),
        "{:#?}",
        gh.calls()
    );
}

#[test]
fn a_draft_release_of_the_tag_is_found_and_published_not_made_twice() {
    let mut draft = published(&[]);
    draft.draft = true;
    let gh = github(vec![draft]);
    let dir = built();
    let (out, log) = gh.run(
        &gh.ctx(dir.path()),
        json!({"username": "octo", "password": "hunter2-pass",
               "file": "target/deploy/app-v1.2.0-x86_64.tar.gz", "body": "Notes"}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let state = gh.fake.releases_state();
    assert!(state.problems.is_empty(), "{:#?}", state.problems);
    assert_eq!(state.releases.len(), 1);
    let r = &state.releases[0];
    assert!(!r.draft);
    assert_eq!(r.body.as_deref(), Some("Notes"));
    assert_eq!(r.assets.len(), 1);
    assert!(
        log.join("\n")
            .contains("username octo and password ([secure])")
    );
}

#[test]
fn a_wrong_token_fails_in_one_line_that_never_shows_it() {
    let gh = github(vec![]);
    let dir = built();
    let (out, log) = gh.run(&gh.ctx(dir.path()), json!({"token": "ghp_wrong_9f9f"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "releases: GET /repos/octo/app/releases failed: HTTP 401: Bad credentials; check the token"
    );
    assert!(!log.join("\n").contains("ghp_wrong_9f9f"));
}

/// The server's GitHub access, counting how often it is asked.
struct ServerTokens(AtomicUsize);

#[async_trait]
impl GitHubTokens for ServerTokens {
    async fn token(&self, repo: &str) -> Result<Option<Secret<String>>, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            repo, "octo/app",
            "only the built repository's token is asked for"
        );
        Ok(Some(Secret::new(SERVER_TOKEN.into())))
    }
}

#[test]
fn the_servers_github_access_releases_the_built_repository_and_no_other() {
    let gh = github(vec![]);
    let dir = built();
    let tokens = Arc::new(ServerTokens(AtomicUsize::new(0)));
    let mut ctx = gh.ctx(dir.path());
    ctx.server_github = Some(tokens.clone());
    let (out, log) = gh.run(&ctx, json!({"file": "NOTES.md"}));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert!(
        log.join("\n")
            .contains("credentials from the server's GitHub access for octo/app"),
        "{log:#?}"
    );
    let state = gh.fake.releases_state();
    assert_eq!(state.releases[0].assets[0].name, "NOTES.md");
    let seen = gh.fake.requests.lock().unwrap().len();

    // The attacker's move: a pipeline of octo/app naming another repository to get the
    // server's token sent there. Nothing is asked of the server, nothing is sent.
    let (out, _) = gh.run(&ctx, json!({"repo": "octo/other", "file": "NOTES.md"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert!(
        e.one_line().starts_with(
            "releases: no GitHub credentials are configured for the repository octo/other"
        ),
        "{e}"
    );
    assert_eq!(tokens.0.load(Ordering::SeqCst), 1);
    assert_eq!(gh.fake.requests.lock().unwrap().len(), seen);
}

#[test]
fn a_build_without_a_tag_or_files_outside_the_build_dir_send_nothing() {
    let gh = github(vec![]);
    let dir = built();
    let mut ctx = gh.ctx(dir.path());
    ctx.tag = None;
    let (out, _) = gh.run(&ctx, json!({"token": TOKEN, "file": "NOTES.md"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "releases: option `tag_name`: this build is not for a tag: deploy on tags (on: tags: true) or give tag_name"
    );
    let ctx = gh.ctx(dir.path());
    for options in [
        json!({"token": TOKEN, "file": "/etc/passwd"}),
        json!({"token": TOKEN, "file": "/etc/*", "file_glob": true}),
        json!({"token": TOKEN, "release_notes_file": "../../etc/hostname"}),
    ] {
        let (out, _) = gh.run(&ctx, options.clone());
        let Outcome::Failed(e) = out else {
            panic!("{options}: {out:?}")
        };
        assert!(e.to_string().contains("outside the build dir"), "{e}");
    }
    assert!(gh.calls().is_empty(), "{:#?}", gh.calls());
}

/// The attacker's move against a server: a pipeline trying to make the server's GitHub token go to
/// an address of its choosing (a listener on the server's loopback standing in for an internal
/// service or the attacker's host). No option of `releases` names an address; the job's
/// environment does not move the API; `pages`, whose `url` does name the host, and the registries,
/// whose `server`/`registry` do, never get anything of the server's. The listener hears nothing,
/// the server's access is asked only for the one release that goes to the configured API.
#[test]
fn no_option_or_variable_of_a_pipeline_sends_the_servers_github_token_elsewhere() {
    let gh = github(vec![]);
    let dir = built();
    let elsewhere = StandIn::start(|_| Reply::json(200, json!({})));
    let tokens = Arc::new(ServerTokens(AtomicUsize::new(0)));
    let mut ctx = gh.ctx(dir.path());
    ctx.server_github = Some(tokens.clone());
    for var in [
        "SLIPWAY_GITHUB_API_ENDPOINT",
        "GITHUB_API_URL",
        "GITHUB_URL",
    ] {
        ctx.env
            .insert(var.into(), EnvValue::Plain(elsewhere.url.clone()));
    }
    for option in [
        "api_url",
        "endpoint",
        "url",
        "host",
        "github_url",
        "upload_url",
    ] {
        let (out, _) = gh.run(&ctx, json!({"file": "NOTES.md", option: elsewhere.url}));
        let Outcome::Failed(e) = out else {
            panic!("{option}: {out:?}")
        };
        assert!(
            e.one_line()
                .starts_with(&format!("releases: option `{option}`: unknown option")),
            "{e}"
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (provider, options, error) in [
        (
            "pages",
            json!({"url": elsewhere.url, "local_dir": "."}),
            "pages: no GitHub credentials are configured for the repository octo/app",
        ),
        ("pypi", json!({"server": elsewhere.url}), "pypi: "),
        ("npm", json!({"registry": elsewhere.url}), "npm: "),
    ] {
        let log = MemorySink::default();
        let out = rt.block_on(run_deploy(&deploy(provider, options), &ctx, &log));
        let Outcome::Failed(e) = out else {
            panic!("{provider}: {out:?}")
        };
        assert!(e.one_line().starts_with(error), "{provider}: {e}");
    }
    assert_eq!(tokens.0.load(Ordering::SeqCst), 0);

    let (out, log) = gh.run(&ctx, json!({"file": "NOTES.md"}));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(tokens.0.load(Ordering::SeqCst), 1);
    assert!(
        elsewhere.requests().is_empty(),
        "{:#?}",
        elsewhere.requests()
    );
}
