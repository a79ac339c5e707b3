//! Retention: finished builds past `[retention] builds_per_repo` go, with their jobs, logs, merge
//! refs and status reports, when the server starts (and then periodically); a build that has not
//! finished is never touched, and neither is another repository's newest.

use crate::util::*;
use slipway_webhook::testing::ScriptedJobRunner;
use std::sync::Arc;

fn push(h: &Harness, origin: &Origin, repo: &str, n: usize) -> i64 {
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let body = push_payload_with(
        repo,
        &origin.url(),
        "refs/heads/master",
        &sha,
        false,
        &format!("push {n}"),
    );
    build_of(h.deliver("push", &format!("{repo}-{n}"), &body))
}

fn refs(data: &std::path::Path, repo: &str) -> Vec<String> {
    let mirror =
        git2::Repository::open_bare(data.join("mirrors").join(format!("{repo}.git"))).unwrap();
    let mut names: Vec<String> = mirror
        .references_glob("refs/slipway/builds/*")
        .unwrap()
        .map(|r| r.unwrap().name().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn old_finished_builds_are_pruned_with_their_logs_and_refs_but_open_ones_never() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script:\n  - echo kept-or-pruned\n");
    let gh_rt = tokio::runtime::Runtime::new().unwrap();
    let github = FakeGitHub::default();
    let api = github.start(&gh_rt);
    let data = tmp.path().join("data");
    let mut c = config(Some(&api));
    c.auto_cancel = false;
    c.retention.builds_per_repo = 2;
    let h = Harness::start(&data, c.clone(), Arc::new(ScriptedJobRunner));
    let mut built = Vec::new();
    for n in 0..4 {
        let id = push(&h, &origin, "acme/app", n);
        assert_eq!(h.wait_final(id, 60)["build"]["state"], "passed");
        built.push(id);
    }
    let other = push(&h, &origin, "acme/other", 0);
    h.wait_final(other, 60);
    // Every status report is out before pruning may take a build.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&data, "SELECT count(*) FROM outbox WHERE done = 0") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "statuses still unsent"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(refs(&data, "acme/app").len(), 4);
    h.stop();

    // A restart prunes: the two oldest builds of acme/app go, with everything of theirs.
    let mut c2 = c.clone();
    c2.workers = 0;
    let h = Harness::start(&data, c2, Arc::new(ScriptedJobRunner));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&data, "SELECT count(*) FROM builds") > 3 {
        assert!(std::time::Instant::now() < deadline, "nothing was pruned");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kept: Vec<i64> = h.json("/api/builds?repo=acme%2Fapp")["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, vec![built[3], built[2]]);
    assert_eq!(h.get(&format!("/api/builds/{}", built[0])).0, 404);
    assert_eq!(
        h.json("/api/builds?repo=acme%2Fother")["builds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let pruned = format!("({}, {})", built[0], built[1]);
    for table in ["jobs", "outbox"] {
        assert_eq!(
            count(
                &data,
                &format!("SELECT count(*) FROM {table} WHERE build_id IN {pruned}")
            ),
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &data,
            "SELECT count(*) FROM log_chunks WHERE job_id NOT IN (SELECT id FROM jobs)"
        ),
        0
    );
    assert_eq!(
        refs(&data, "acme/app"),
        vec![
            format!("refs/slipway/builds/{}", built[2]),
            format!("refs/slipway/builds/{}", built[3]),
        ]
    );
    // Deliveries are kept (they are pruned by age): a replay of a pruned build's body is still
    // a duplicate.
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let replay = push_payload_with(
        "acme/app",
        &origin.url(),
        "refs/heads/master",
        &sha,
        false,
        "push 0",
    );
    assert_eq!(h.deliver("push", "replayed", &replay).0, 200);

    // Builds that have not finished are never pruned, and do not count against the finished
    // ones kept.
    let queued: Vec<i64> = (10..14).map(|n| push(&h, &origin, "acme/app", n)).collect();
    h.stop();
    let mut c3 = c;
    c3.workers = 0;
    let h = Harness::start(&data, c3, Arc::new(ScriptedJobRunner));
    std::thread::sleep(std::time::Duration::from_millis(500));
    for id in &queued {
        assert_eq!(
            h.json(&format!("/api/builds/{id}"))["build"]["state"],
            "queued"
        );
    }
    assert_eq!(count(&data, "SELECT count(*) FROM builds"), 3 + 4);
    h.stop();
}
