//! `slipway serve` end to end, playing a pull request's author who names what the server fetches:
//! a fork's submodule on the same host as the repository gets no token, submodules at loopback
//! and link-local addresses are refused by name, a server that trickles bytes ends the
//! preparation at the time limit, and a cancel stops a long fetch within 5 s.

use crate::serve::*;
use slipway_webhook::testing::git_hosts::{GitHttp, Trickle};
use std::path::Path;
use std::time::{Duration, Instant};

const PIPELINE: &str =
    "language: minimal\nimage: slipway-test/debian:latest\nscript:\n  - cat lib/README\n";

/// A bare repository `dir` with one commit holding `README`; returns the commit.
fn library(dir: &Path, text: &str) -> String {
    let work = dir.with_extension("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "master"]);
    std::fs::write(work.join("README"), text).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "library"]);
    git(
        dir.parent().unwrap(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "master",
            dir.to_str().unwrap(),
        ],
    );
    git(&work, &["push", "-q", dir.to_str().unwrap(), "master"]);
    git(&work, &["rev-parse", "HEAD"])
}

/// Commits a submodule `name` at `commit` with URL `url` (as `.gitmodules` writes it) on the
/// checked-out branch of `work`.
fn add_submodule(work: &Path, name: &str, url: &str, commit: &str) {
    let mut modules = std::fs::read_to_string(work.join(".gitmodules")).unwrap_or_default();
    modules.push_str(&format!(
        "[submodule \"{name}\"]\n\tpath = {name}\n\turl = {url}\n"
    ));
    std::fs::write(work.join(".gitmodules"), modules).unwrap();
    git(work, &["add", ".gitmodules"]);
    git(
        work,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{commit},{name}"),
        ],
    );
    git(work, &["commit", "-q", "-m", &format!("submodule {name}")]);
}

fn fork_pr(origin: &Origin, clone_url: &str, n: u64) -> Vec<u8> {
    let head = git(&origin.work, &["rev-parse", "HEAD"]);
    git(
        &origin.work,
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("HEAD:refs/pull/{n}/head"),
        ],
    );
    let base = git(&origin.work, &["rev-parse", "master"]);
    fork_pr_payload(clone_url, n, &head, &base)
}

#[test]
fn a_forks_submodule_on_the_same_host_gets_no_token_and_a_served_one_gets_its_own() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let srv = tmp.path().join("srv");
    let origin = Origin::new(&srv.join("acme"), PIPELINE);
    let private = library(&srv.join("acme/private.git"), "private library\n");
    let host = GitHttp::start(&srv);
    // GitHub's token (the server's `github.token`) can read both; so can the sibling's own.
    host.private("/acme/origin.git", "gh-token");
    host.private("/acme/private.git", "private-token");
    let clone_url = format!("{}/acme/origin.git", host.url);
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let extra = format!(
        "workers = 1\n[git]\nallow = [\"127.0.0.1\"]\n\
         [[repos]]\nname = \"acme/private\"\nclone_url = \"{}/acme/private.git\"\ntoken = \"private-token\"\n",
        host.url
    );
    let server = Served::new(tmp.path(), &api, &clone_url, &extra);

    // The fork's pull request names the sibling relative to the repository: same host.
    git(&origin.work, &["checkout", "-q", "-B", "pr5", "master"]);
    add_submodule(&origin.work, "lib", "../private.git", &private);
    let fork =
        build_of(server.deliver("pull_request", "fork-sub", &fork_pr(&origin, &clone_url, 5)));
    let v = server.wait_final(fork, 180);
    let job = v["jobs"][0]["id"].as_i64().unwrap();
    let log = server.job_log(job);
    assert_eq!(v["build"]["state"], "errored", "{v}\n{log}");
    let reason = v["jobs"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for text in [&reason, &log] {
        assert!(
            text.contains(&format!("submodule lib: {}/acme/private.git", host.url))
                && text.contains("no credentials are sent to this URL"),
            "{v}\n{text}"
        );
    }
    let requests = host.requests();
    let sibling: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/acme/private.git"))
        .collect();
    assert!(
        !sibling.is_empty(),
        "the submodule was not even tried: {requests:?}"
    );
    assert!(
        sibling.iter().all(|r| r.authorization.is_none()),
        "a credential went to the sibling repository: {sibling:?}"
    );
    // The repository's own URL did get its token (the mirror's fetch).
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/acme/origin.git")
                && r.authorization.is_some()
                && r.status == 200),
        "{requests:?}"
    );

    // The same submodule in a push: trusted, so the sibling, served with a token of its own,
    // is fetched with that token, not the repository's.
    git(&origin.work, &["checkout", "-q", "master"]);
    add_submodule(&origin.work, "lib", "../private.git", &private);
    git(&origin.work, &["push", "-q", "origin", "master"]);
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let push = build_of(server.deliver(
        "push",
        "push-sub",
        &push_payload(REPO, &clone_url, "refs/heads/master", &sha),
    ));
    let v = server.wait_final(push, 180);
    let log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
    assert_eq!(v["build"]["state"], "passed", "{v}\n{log}");
    assert!(log.contains("private library"), "{log}");
    let own = format!("Basic {}", base64_of("x-access-token:private-token"));
    let after: Vec<_> = host.requests().into_iter().skip(requests.len()).collect();
    assert!(
        after
            .iter()
            .filter(|r| r.path.starts_with("/acme/private.git"))
            .all(|r| r.authorization.as_deref() == Some(own.as_str())),
        "{after:?}"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn submodules_at_loopback_and_link_local_addresses_are_refused_by_name() {
    let Some((tmp, origin)) = docker_and_origin(PIPELINE) else {
        return;
    };
    // A live server on loopback: refused before connecting, so it sees nothing.
    let host = GitHttp::start(&tmp.path().join("srv"));
    let github = FakeGitHub::default();
    let server = Served::one_worker(tmp.path(), &github, &origin, &[]);
    let initial = git(&origin.work, &["rev-parse", "master"]);

    for (name, url, kind) in [
        (
            "lib",
            format!("{}/acme/lib.git", host.url),
            "a loopback address",
        ),
        (
            "meta",
            "http://169.254.169.254/latest/meta-data.git".to_string(),
            "a link-local address",
        ),
    ] {
        git(&origin.work, &["checkout", "-q", "-B", name, &initial]);
        add_submodule(&origin.work, name, &url, &initial);
        git(&origin.work, &["push", "-q", "-f", "origin", "HEAD:master"]);
        let sha = git(&origin.work, &["rev-parse", "HEAD"]);
        let id = build_of(server.deliver(
            "push",
            &format!("addr-{name}"),
            &push_payload(REPO, &origin.url(), "refs/heads/master", &sha),
        ));
        let v = server.wait_final(id, 180);
        let log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap());
        assert_eq!(v["build"]["state"], "errored", "{v}\n{log}");
        assert!(
            log.contains(&format!("submodule {name}: {url}: refused to connect to"))
                && log.contains(&format!("it is {kind}; list it in [git] allow")),
            "{name}: {log}"
        );
    }
    assert!(host.requests().is_empty(), "{:?}", host.requests());
}

/// A server whose repository is cloned from a [`Trickle`] (one byte every 100 ms, forever) that
/// `[git] allow` lets it reach, with fetches limited to `fetch_timeout` seconds.
struct Trickling {
    trickle: Trickle,
    server: Served,
    clone_url: String,
    origin: Origin,
    _tmp: tempfile::TempDir,
}

impl Trickling {
    fn start(fetch_timeout: u64) -> Trickling {
        let tmp = tempfile::tempdir().unwrap();
        let origin = Origin::new(tmp.path(), PIPELINE);
        let trickle = Trickle::start(Duration::from_millis(100));
        let clone_url = format!("http://{}/acme/app.git", trickle.addr);
        let api = github_api(&FakeGitHub::default());
        // lease_seconds is 3 in the harness; the config's default lease is what production uses.
        let server = Served::new(
            tmp.path(),
            &api,
            &clone_url,
            &format!(
                "workers = 1\n[git]\nallow = [\"127.0.0.1\"]\nfetch_timeout_seconds = {fetch_timeout}"
            ),
        );
        Trickling {
            trickle,
            server,
            clone_url,
            origin,
            _tmp: tmp,
        }
    }

    /// Delivers a push of master (delivery `id`); the build's id.
    fn push(&self, id: &str) -> i64 {
        let sha = git(&self.origin.work, &["rev-parse", "master"]);
        let body = push_payload(REPO, &self.clone_url, "refs/heads/master", &sha);
        build_of(self.server.deliver("push", id, &body))
    }
}

#[test]
fn a_trickling_server_ends_the_preparation_at_the_time_limit() {
    if !docker_ready() {
        return;
    }
    let t = Trickling::start(3);
    let started = Instant::now();
    let id = t.push("trickle");
    let v = t.server.wait_final(id, 60);
    let took = started.elapsed();
    assert_eq!(v["build"]["state"], "errored", "{v}");
    let reason = v["build"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the fetch took longer than 3 s ([git] fetch_timeout_seconds)"),
        "{v}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let connections = t.trickle.connections();
    assert_eq!(connections.len(), 1, "{connections:?}");
}

#[test]
fn a_cancel_stops_a_long_fetch_within_5_seconds() {
    if !docker_ready() {
        return;
    }
    let t = Trickling::start(600);
    let id = t.push("cancel-me");
    let (trickle, server) = (&t.trickle, &t.server);
    let deadline = Instant::now() + Duration::from_secs(30);
    while trickle.connections().is_empty() {
        assert!(Instant::now() < deadline, "the fetch never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Well into the fetch.
    std::thread::sleep(Duration::from_secs(2));
    let canceled_at = Instant::now();
    let (status, body) = http(
        "POST",
        &format!("{}/api/builds/{id}/cancel", server.url()),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let deadline = canceled_at + Duration::from_secs(10);
    let closed = loop {
        if let Some((_, Some(closed))) = trickle.connections().first() {
            break *closed;
        }
        assert!(Instant::now() < deadline, "the fetch is still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = closed.saturating_duration_since(canceled_at);
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after the cancel"
    );
    let v = server.wait_final(id, 30);
    assert_eq!(v["build"]["state"], "canceled", "{v}");
}

#[test]
fn a_private_repository_is_fetched_over_https_verified_against_the_systems_roots() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A CA (the "system's" roots through SSL_CERT_FILE) and a certificate for 127.0.0.1.
    test_certificates(d);
    let srv = d.join("srv");
    let origin = Origin::new(
        &srv.join("acme"),
        "language: minimal\nimage: slipway-test/debian:latest\nscript:\n  - cat README\n",
    );
    let host = GitHttp::start(&srv);
    host.private("/acme/origin.git", "gh-token");
    let https = host.tls_front(
        &std::fs::read(d.join("server.pem")).unwrap(),
        &std::fs::read(d.join("server.key")).unwrap(),
    );
    let clone_url = format!("{https}/acme/origin.git");
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let ca_file = d.join("ca.pem");
    let server = Served::with_env(
        d,
        &api,
        &clone_url,
        "workers = 1\n[git]\nallow = [\"127.0.0.1\"]",
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let id = build_of(server.deliver(
        "push",
        "https",
        &push_payload(REPO, &clone_url, "refs/heads/master", &sha),
    ));
    let v = server.wait_final(id, 180);
    let log = server.job_log(v["jobs"][0]["id"].as_i64().unwrap_or(0));
    assert_eq!(v["build"]["state"], "passed", "{v}\n{log}");
    assert!(log.contains("one\ntwo\nthree"), "{log}");
    assert!(
        host.requests().iter().all(|r| r.authorization.is_some()),
        "{:?}",
        host.requests()
    );
}
