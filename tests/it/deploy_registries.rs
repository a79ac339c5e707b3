//! npm, Heroku, packagecloud and rubygems deploys end to end, through `slipway run` and through
//! `slipway serve`, each scenario run both ways by one driver. One job (Debian with node) makes
//! what three deploys publish — a package `npm pack` packs, a Procfile, a `.deb` —, another
//! (Debian with ruby) builds a gem from the repository's gemspec; the deploys send them, with
//! credentials from `secure:` values, to the request-checking stand-ins of
//! `slipway_providers::testing`. The pipelines name no
//! address: the stand-ins are the machine's configured endpoints (`SLIPWAY_<KEY>_ENDPOINT` for
//! `slipway run`, `[endpoints]` for the server). No credential is ever in a log, and a pull
//! request from a fork sends the stand-ins nothing. Under CI=true a missing engine or image fails.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use slipway_providers::testing::{StandIn, heroku, npm, packagecloud, rubygems};

use crate::serve::{FakeGitHub, Origin, Served, git, github_api};
use crate::support::{encrypt, image_ready, succeeded};

const REPO: &str = "acme/app";

/// One deploy scenario: a pipeline with the files it builds from, and the stand-ins it publishes to.
trait Scenario: Sized {
    /// The job's image.
    const IMAGE: &'static str;
    /// The pipeline, its credentials encrypted for `REPO` with the keys in `data`.
    fn pipeline(data: &Path) -> String;
    /// Files committed beside the pipeline.
    fn files() -> Vec<(&'static str, &'static str)>;
    /// Stand-ins for a build of `commit`.
    fn start(commit: &str) -> Self;
    /// Each stand-in's `[endpoints]` key and URL.
    fn endpoints(&self) -> Vec<(&'static str, String)>;
    /// Requests the stand-ins received.
    fn requests(&self) -> usize;
    /// The stand-ins hold what the job built, nothing was refused, and `log` says so without a
    /// credential in it.
    fn assert_published(&self, log: &str);
}

/// The scenario's files, written into the work tree `dir`.
fn write_files<S: Scenario>(dir: &Path) {
    for (path, text) in S::files() {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// `slipway run` of the scenario on a branch, its endpoints in the environment.
fn through_run<S: Scenario>() {
    if !image_ready(S::IMAGE) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".slipway.yml"), S::pipeline(data.path())).unwrap();
    write_files::<S>(dir.path());
    crate::support::commit_all(dir.path(), "a package");
    let stand_ins = S::start(&git(dir.path(), &["rev-parse", "HEAD"]));

    let mut run = Command::new(env!("CARGO_BIN_EXE_slipway"));
    run.arg("run")
        .arg(dir.path())
        .args(["--repo", REPO, "--branch", "master"])
        .env("SLIPWAY_DATA_DIR", data.path());
    for (key, url) in stand_ins.endpoints() {
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
        "RUBYGEMS_API_KEY",
    ] {
        run.env_remove(var);
    }
    stand_ins.assert_published(&succeeded(&run.output().unwrap(), &[]));
}

/// `slipway serve` with the scenario's endpoints in `[endpoints]`: a fork's pull request, which
/// must send nothing, then a push to master.
fn through_serve<S: Scenario>() {
    if !image_ready(S::IMAGE) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), &S::pipeline(&tmp.path().join("data")));
    write_files::<S>(&origin.work);
    git(&origin.work, &["add", "."]);
    git(
        &origin.work,
        &["commit", "-q", "--allow-empty", "-m", "a package"],
    );
    git(&origin.work, &["push", "-q", "origin", "master"]);
    let stand_ins = S::start(&git(&origin.work, &["rev-parse", "master"]));
    let endpoints: String = stand_ins
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
    let fork = server.fork_pull_request(&origin, 5, "fork-pr");
    fork.expect("passed", &[]);
    assert_eq!(stand_ins.requests(), 0, "{}", fork.log);

    let push = server.push_master(&origin, "push");
    stand_ins.assert_published(push.expect("passed", &[]));
}

#[test]
fn npm_heroku_and_packagecloud_through_slipway_run() {
    through_run::<Registries>();
}

#[test]
fn npm_heroku_and_packagecloud_through_serve_and_a_fork_sends_nothing() {
    through_serve::<Registries>();
}

#[test]
fn rubygems_through_slipway_run() {
    through_run::<Gems>();
}

#[test]
fn rubygems_through_serve_and_a_fork_sends_nothing() {
    through_serve::<Gems>();
}

/// The three stand-ins of one run.
struct Registries {
    npm: (StandIn, Arc<Mutex<npm::Registry>>),
    heroku: (StandIn, Arc<Mutex<heroku::Heroku>>),
    packagecloud: (StandIn, Arc<Mutex<packagecloud::Cloud>>),
}

impl Scenario for Registries {
    const IMAGE: &'static str = "slipway-test/debian-node:latest";

    fn pipeline(data: &Path) -> String {
        registries_pipeline(data)
    }

    fn files() -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// The Heroku build must name `commit`.
    fn start(commit: &str) -> Registries {
        Registries {
            npm: npm::start(),
            heroku: heroku::start(commit),
            packagecloud: packagecloud::start(),
        }
    }

    fn endpoints(&self) -> Vec<(&'static str, String)> {
        vec![
            ("npm", self.npm.0.url.clone()),
            ("heroku", self.heroku.0.url.clone()),
            ("packagecloud", self.packagecloud.0.url.clone()),
        ]
    }

    fn requests(&self) -> usize {
        self.npm.0.requests().len()
            + self.heroku.0.requests().len()
            + self.packagecloud.0.requests().len()
    }

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

/// The job makes the three artifacts; each deploy's credential is a `secure:` value.
fn registries_pipeline(data: &Path) -> String {
    let npm = encrypt(data, REPO, &format!("NPM_TOKEN={}", npm::TOKEN));
    let heroku = encrypt(data, REPO, &format!("HEROKU_API_KEY={}", heroku::KEY));
    let cloud = encrypt(
        data,
        REPO,
        &format!("PACKAGECLOUD_TOKEN={}", packagecloud::TOKEN),
    );
    format!(
        r#"image: "{image}"
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
"#,
        image = Registries::IMAGE
    )
}

/// The gem host's stand-in, for a repository whose gemspec the job builds.
struct Gems((StandIn, rubygems::Pushed));

const GEMSPEC: &str = "Gem::Specification.new do |s|
  s.name = \"e2e-gem\"
  s.version = \"1.2.0\"
  s.summary = \"Built by Slipway\"
  s.authors = [\"Slipway\"]
  s.files = [\"lib/e2e.rb\"]
end
";

impl Scenario for Gems {
    const IMAGE: &'static str = "slipway-test/debian-ruby:latest";

    fn pipeline(data: &Path) -> String {
        let key = encrypt(data, REPO, &format!("RUBYGEMS_API_KEY={}", rubygems::KEY));
        format!(
            r#"image: "{image}"
language: shell
script: ruby -Ilib -e 'require "e2e"; puts E2e::VALUE'
deploy:
  provider: rubygems
  gem: e2e-gem
  api_key:
    secure: "{key}"
  skip_cleanup: true
"#,
            image = Gems::IMAGE
        )
    }

    fn files() -> Vec<(&'static str, &'static str)> {
        vec![
            ("e2e-gem.gemspec", GEMSPEC),
            ("lib/e2e.rb", "module E2e\n  VALUE = 42\nend\n"),
        ]
    }

    fn start(_commit: &str) -> Gems {
        Gems(rubygems::start())
    }

    fn endpoints(&self) -> Vec<(&'static str, String)> {
        vec![("rubygems", self.0.0.url.clone())]
    }

    fn requests(&self) -> usize {
        self.0.0.requests().len()
    }

    fn assert_published(&self, log: &str) {
        for line in [
            "rubygems: gem build e2e-gem.gemspec".to_owned(),
            format!("Deploy finished: pushed 1 gem(s) to {}", self.0.0.url),
        ] {
            assert!(log.contains(&line), "no `{line}` in:\n{log}");
        }
        assert!(!log.contains(rubygems::KEY), "{log}");
        let pushed = self.0.1.lock().unwrap();
        assert!(pushed.1.is_empty(), "{:#?}", pushed.1);
        assert_eq!(pushed.0, [("e2e-gem".to_owned(), "1.2.0".to_owned())]);
    }
}
