//! The attacker's side, end to end against the `slipway` binary and the Docker engine: a pull
//! request from a fork tries to poison the caches a trusted build restores, and a pipeline file
//! asks for a build too big to plan. Under CI=true a missing engine or image fails.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Every cached directory: a fork writes POISON into each, a trusted build writes `trusted`.
const CACHING: &str = r#"image: "{busybox}"
env:
  global:
    - DIRS="vendor/bundle target $HOME/.cargo/registry node_modules"
cache:
  directories: [vendor/bundle, target, $HOME/.cargo/registry, node_modules]
script:
  - for d in $DIRS; do echo "$d holds $(cat $d/marker 2>/dev/null || echo nothing)"; done
  - if [ "$TRAVIS_PULL_REQUEST" = false ]; then W=trusted; else W=POISON; fi; for d in $DIRS; do mkdir -p $d && echo $W > $d/marker; done
  - for d in /slipway/cache-fallback/*; do [ -d "$d" ] && (echo POISON > "$d/marker") 2>&1 | head -1; done; true
"#;

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}{}x{nanos}", std::process::id())
}

fn remove_caches(repo: &str) {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=dev.slipway.cache.repo={repo}"))
        .output()
        .unwrap();
    for v in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", v])
            .output();
    }
}

/// Removes a repository's cache volumes when the test ends, passed or not.
struct Caches(String);

impl Drop for Caches {
    fn drop(&mut self) {
        remove_caches(&self.0);
    }
}

fn slipway_run(dir: &Path, args: &[&str]) -> (bool, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn holds(log: &str, what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(" holds ") && l.trim_end().ends_with(what))
        .count()
}

#[test]
fn a_fork_writing_every_cached_directory_reaches_no_later_push_build_run() {
    if !crate::support::engine_ready() {
        return;
    }
    let repo = format!("acme/{}", unique("rt"));
    let _caches = Caches(repo.clone());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".slipway.yml"),
        CACHING.replace("{busybox}", &crate::support::busybox()),
    )
    .unwrap();
    crate::support::commit_all(dir.path(), "pipeline");
    let push = [
        "--repo",
        &repo,
        "--branch",
        "main",
        "--default-branch",
        "main",
    ];
    let mut fork = push.to_vec();
    fork.extend(["--fork", "--pull-request", "9"]);

    let (ok, log) = slipway_run(dir.path(), &push);
    assert!(ok, "{log}");
    assert_eq!(holds(&log, "nothing"), 4, "a fresh cache: {log}");

    let (ok, log) = slipway_run(dir.path(), &fork);
    assert!(ok, "{log}");
    assert!(
        log.contains("Cache: restoring the cache of branch main (read-only for this build); saving into the cache of pull request #9 from fork/"),
        "{log}"
    );
    assert_eq!(
        holds(&log, "trusted"),
        4,
        "the fork starts from main's: {log}"
    );
    assert!(
        log.contains("Read-only file system"),
        "writing the base's cache directly fails: {log}"
    );

    let (ok, log) = slipway_run(dir.path(), &push);
    assert!(ok, "{log}");
    assert!(
        log.contains("Cache: restoring and saving the cache of branch main"),
        "{log}"
    );
    assert_eq!(holds(&log, "trusted"), 4, "{log}");
    assert!(
        holds(&log, "POISON") == 0,
        "the fork's files reached a push: {log}"
    );

    // The fork keeps its own cache: the next build of the pull request restores it.
    let (ok, log) = slipway_run(dir.path(), &fork);
    assert!(ok, "{log}");
    assert!(
        log.contains("Cache: restoring and saving the cache of pull request #9 from fork/"),
        "{log}"
    );
    assert_eq!(holds(&log, "POISON"), 4, "{log}");
}

#[test]
fn a_fork_pull_request_served_cannot_poison_the_cache_of_the_next_push_build() {
    use crate::serve::*;
    if !docker_ready() || !crate::support::engine_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(
        tmp.path(),
        &CACHING.replace("{busybox}", &crate::support::busybox()),
    );
    let github = FakeGitHub::default();
    let server = Served::one_worker(tmp.path(), &github, &origin, &[]);
    remove_caches(REPO);
    let _caches = Caches(REPO.to_string());
    let build_of = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["build"]
            .as_i64()
            .unwrap()
    };
    let log_of = |build: i64| {
        let v = server.wait_final(build, 180);
        assert_eq!(
            v["build"]["state"],
            "passed",
            "{v}\n{}",
            server.server_log()
        );
        server.job_log(v["jobs"][0]["id"].as_i64().unwrap())
    };

    let master = git(&origin.work, &["rev-parse", "master"]);
    let push = push_payload(REPO, &origin.url(), "refs/heads/master", &master);
    let (status, text) = server.deliver("push", &unique("push"), &push);
    assert_eq!(status, 202, "{text}");
    assert_eq!(holds(&log_of(build_of(&text)), "nothing"), 4);

    // The same pull request payload, but from eve's fork.
    let head = origin.pull_request(9, "master", "fork.txt", "mine\n");
    let mut pr: serde_json::Value = serde_json::from_slice(&pr_payload(
        REPO,
        &origin.url(),
        "opened",
        9,
        &head,
        &master,
    ))
    .unwrap();
    pr["pull_request"]["head"]["repo"]["full_name"] = "eve/app".into();
    let (status, text) = server.deliver("pull_request", &unique("pr"), pr.to_string().as_bytes());
    assert_eq!(status, 202, "{text}");
    let log = log_of(build_of(&text));
    assert!(
        log.contains("saving into the cache of pull request #9 from eve/app"),
        "{log}"
    );
    assert_eq!(holds(&log, "trusted"), 4, "{log}");

    // A new delivery of the same commit (its body differs, as GitHub's do; the same body would be a
    // replay).
    let again = push_payload_with(
        REPO,
        &origin.url(),
        "refs/heads/master",
        &master,
        false,
        "the same commit again",
    );
    let (status, text) = server.deliver("push", &unique("push"), &again);
    assert_eq!(status, 202, "{text}");
    let log = log_of(build_of(&text));
    assert_eq!(holds(&log, "trusted"), 4, "{log}");
    assert!(
        holds(&log, "POISON") == 0,
        "the fork's files reached a push: {log}"
    );
}

fn huge_matrix() -> String {
    let rvm: Vec<String> = (0..100).map(|i| format!("\"3.{i}\"")).collect();
    let mut yaml = format!("language: ruby\nrvm: [{}]\nenv:\n  jobs:\n", rvm.join(", "));
    for i in 0..100 {
        yaml.push_str(&format!("    - SHARD={i}\n"));
    }
    yaml.push_str("script: rake\n");
    yaml
}

#[test]
fn lint_names_the_cap_at_the_line_of_the_largest_axis() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".travis.yml");
    std::fs::write(&file, huge_matrix()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("lint")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(".travis.yml:2:"), "the rvm line: {text}");
    assert!(
        text.contains("10000 jobs") && text.contains("over the limit of 200"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("lint")
        .arg(&file)
        .args(["--max-jobs", "10000"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("too_many_jobs"),
        "the cap is configurable"
    );
}

#[test]
fn serve_stays_responsive_while_it_refuses_a_matrix_over_the_cap() {
    use crate::serve::*;
    let Some((tmp, origin)) = docker_and_origin(&huge_matrix()) else {
        return;
    };
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let server = Served::new(tmp.path(), &api, &origin.url(), "");
    let master = git(&origin.work, &["rev-parse", "master"]);
    let build = build_of(server.deliver(
        "push",
        &unique("push"),
        &push_payload(REPO, &origin.url(), "refs/heads/master", &master),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let asked = Instant::now();
        let (code, _) = server.get("/healthz");
        assert_eq!(code, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "healthz took {:?}",
            asked.elapsed()
        );
        let v = server.json(&format!("/api/builds/{build}"));
        if !["queued", "preparing", "running"].contains(&v["build"]["state"].as_str().unwrap()) {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(v["build"]["state"], "errored", "{v}");
    let log = v["build"]["log"].as_str().unwrap_or_default();
    assert!(
        log.contains("over the limit of 200") && log.contains("too_many_jobs"),
        "{v}"
    );
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(0), "{v}");
}

#[test]
fn serve_says_at_start_up_what_it_cannot_enforce() {
    use crate::serve::*;
    let Some((tmp, origin)) = docker_and_origin("script: true\n") else {
        return;
    };
    let github = FakeGitHub::default();
    let api = github_api(&github);
    // Without the packet-filter tools the rules cannot be put in place: it must say so.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let server = Served::with_env(tmp.path(), &api, &origin.url(), "", &[("PATH", path)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.server_log().contains("not enforced") {
        assert!(Instant::now() < deadline, "{}", server.server_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.server_log();
    assert!(
        log.contains("not enforced: IPv4: jobs may reach link-local addresses")
            && log.contains("iptables cannot be run"),
        "{log}"
    );
    assert!(log.contains("job disk limit: 20 GiB"), "{log}");
}
