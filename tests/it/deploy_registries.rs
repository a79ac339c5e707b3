//! npm, Heroku and packagecloud deploys end to end, through `slipway run` and through `slipway
//! serve`. One job (Debian with node) makes what each deploy publishes — a package `npm pack`
//! packs, a Procfile, a `.deb` — and its deploys send it, with credentials from `secure:` values,
//! to the request-checking stand-ins of `slipway_providers::testing`. The pipeline names no
//! address: the stand-ins are the machine's configured endpoints (`SLIPWAY_<KEY>_ENDPOINT` for
//! `slipway run`, `[endpoints]` for the server). No credential is ever in a log, and a pull
//! request from a fork sends the stand-ins nothing. Under CI=true a missing engine or image fails.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use slipway_providers::testing::{StandIn, heroku, npm, packagecloud};

use crate::serve::{FakeGitHub, Origin, Served, git, github_api};
use crate::support::{encrypt, image_ready, succeeded};

const IMAGE: &str = "slipway-test/debian-node:latest";
const REPO: &str = "acme/app";

/// The three stand-ins of one run.
struct Registries {
    npm: (StandIn, Arc<Mutex<npm::Registry>>),
    heroku: (StandIn, Arc<Mutex<heroku::Heroku>>),
    packagecloud: (StandIn, Arc<Mutex<packagecloud::Cloud>>),
}

impl Registries {
    /// Stand-ins for a build of `commit` (the Heroku build must name it).
    fn start(commit: &str) -> Registries {
        Registries {
            npm: npm::start(),
            heroku: heroku::start(commit),
            packagecloud: packagecloud::start(),
        }
    }

    /// Each stand-in's `[endpoints]` key and URL.
    fn endpoints(&self) -> [(&'static str, String); 3] {
        [
            ("npm", self.npm.0.url.clone()),
            ("heroku", self.heroku.0.url.clone()),
            ("packagecloud", self.packagecloud.0.url.clone()),
        ]
    }

    /// Requests the three received.
    fn requests(&self) -> usize {
        self.npm.0.requests().len()
            + self.heroku.0.requests().len()
            + self.packagecloud.0.requests().len()
    }

    /// Each stand-in holds what the job built, nothing was refused, and `log` says so without
    /// a credential in it.
    fn assert_published(&self, log: &str) {
        for line in [
            format!(
                "Deploy finished: published e2e-widget@1.0.0 to {}/ (latest)",
                self.npm.0.url
            ),
            "Deploy finished: build b1 of travis-chat succeeded".to_owned(),
            "Deploy finished: uploaded 1 package(s) to golang-migrate/migrate".to_owned(),
        ] {
            assert!(log.contains(&line), "no `{line}` in:\n{log}");
        }
        for secret in [npm::TOKEN, heroku::KEY, packagecloud::TOKEN] {
            assert!(!log.contains(secret), "{secret} shown:\n{log}");
        }
        let npm = self.npm.1.lock().unwrap();
        assert!(npm.problems.is_empty(), "{:#?}", npm.problems);
        assert_eq!(
            npm.published["e2e-widget"],
            [("1.0.0".to_owned(), "latest".to_owned(), None)]
        );
        let h = self.heroku.1.lock().unwrap();
        assert!(h.problems.is_empty(), "{:#?}", h.problems);
        assert!(
            h.uploaded
                .iter()
                .any(|e| e == "Procfile: web: node index.js"),
            "{:#?}",
            h.uploaded
        );
        assert!(h.uploaded.iter().all(|e| !e.starts_with(".git/")));
        let c = self.packagecloud.1.lock().unwrap();
        assert!(c.problems.is_empty(), "{:#?}", c.problems);
        let uploaded: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.1.as_deref(), p.2.as_str(), p.3.as_slice()))
            .collect();
        assert_eq!(
            uploaded,
            [(Some("165"), "migrate_4.0.0_amd64.deb", &b"a deb\n"[..])]
        );
    }
}

/// The pipeline: the job makes the three artifacts; each deploy's credential is a `secure:` value
/// of `REPO` encrypted with the keys in `data`.
fn pipeline(data: &Path) -> String {
    let npm = encrypt(data, REPO, &format!("NPM_TOKEN={}", npm::TOKEN));
    let heroku = encrypt(data, REPO, &format!("HEROKU_API_KEY={}", heroku::KEY));
    let cloud = encrypt(
        data,
        REPO,
        &format!("PACKAGECLOUD_TOKEN={}", packagecloud::TOKEN),
    );
    format!(
        r#"image: "{IMAGE}"
language: shell
script:
  - "echo '{{\"name\":\"e2e-widget\",\"version\":\"1.0.0\",\"main\":\"index.js\"}}' > package.json"
  - "echo 'module.exports = 42;' > index.js"
  - "echo 'web: node index.js' > Procfile"
  - "mkdir -p out && echo 'a deb' > out/migrate_4.0.0_amd64.deb"
deploy:
  - provider: npm
    api_token:
      secure: "{npm}"
    skip_cleanup: true
  - provider: heroku
    app: travis-chat
    api_key:
      secure: "{heroku}"
    skip_cleanup: true
  - provider: packagecloud
    username: golang-migrate
    repository: migrate
    token:
      secure: "{cloud}"
    dist: ubuntu/xenial
    local_dir: out
    package_glob: "*.deb"
    skip_cleanup: true
"#
    )
}

#[test]
fn slipway_run_publishes_to_the_endpoints_of_its_environment() {
    if !image_ready(IMAGE) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".slipway.yml"), pipeline(data.path())).unwrap();
    crate::support::commit_all(dir.path(), "a package");
    let commit = git(dir.path(), &["rev-parse", "HEAD"]);
    let registries = Registries::start(&commit);

    let mut run = Command::new(env!("CARGO_BIN_EXE_slipway"));
    run.arg("run")
        .arg(dir.path())
        .args(["--repo", REPO, "--branch", "master"])
        .env("SLIPWAY_DATA_DIR", data.path());
    for (key, url) in registries.endpoints() {
        run.env(
            format!("SLIPWAY_{}_ENDPOINT", key.to_ascii_uppercase()),
            url,
        );
    }
    for var in [
        "NPM_TOKEN",
        "NPM_API_TOKEN",
        "HEROKU_API_KEY",
        "PACKAGECLOUD_TOKEN",
    ] {
        run.env_remove(var);
    }
    let log = succeeded(&run.output().unwrap(), &[]);
    registries.assert_published(&log);
}

#[test]
fn serve_publishes_to_its_configured_endpoints_and_a_fork_sends_nothing() {
    if !image_ready(IMAGE) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), &pipeline(&tmp.path().join("data")));
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let registries = Registries::start(&sha);
    let endpoints: String = registries
        .endpoints()
        .iter()
        .map(|(key, url)| format!("{key} = \"{url}\"\n"))
        .collect();
    let server = Served::new(
        tmp.path(),
        &github_api(&FakeGitHub::default()),
        &origin.url(),
        &format!("workers = 1\n[endpoints]\n{endpoints}"),
    );

    // A pull request from a fork: its deploys never run, so no stand-in hears of it.
    let fork = server.fork_pull_request(&origin, 5, "registries-fork-pr");
    fork.expect("passed", &[]);
    assert_eq!(registries.requests(), 0, "{}", fork.log);

    let push = server.push_master(&origin, "registries-push");
    registries.assert_published(push.expect("passed", &[]));
}
