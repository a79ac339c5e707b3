//! Which builds are trusted with secrets: the fork flag comes from the delivery's payload (head
//! repository against base repository; a deleted head repository counts as a fork), reaches the
//! job's plan, and is kept with the build, so a restarted server and a restarted build still
//! see it.

use crate::util::*;
use serde_json::Value;
use slipway_webhook::job_runner::{JobRun, JobRunner};
use slipway_webhook::testing::PassingJobRunner;
use std::sync::{Arc, Mutex};

const REPO: &str = "acme/app";

/// A job's build, and whether its plan said the build is of a fork, from which repository.
type Seen = (i64, bool, Option<String>);

/// What the jobs' plans said about forks, per build.
#[derive(Default, Clone)]
struct Recording {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recording {
    /// A job runner passing every job and remembering it here.
    fn runner(&self) -> Arc<dyn JobRunner> {
        let seen = self.seen.clone();
        Arc::new(PassingJobRunner(move |job: &JobRun| {
            let ctx = &job.plan.context;
            let fork = (job.build_id, ctx.fork, ctx.head_repo.clone());
            seen.lock().unwrap().push(fork);
        }))
    }

    fn fork_of(&self, build: i64) -> Option<bool> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.0 == build)
            .map(|s| s.1)
    }
}

/// A pull request delivery whose head repository is `head` (`Value::Null`: the fork was deleted).
fn pr_from(origin: &Origin, n: u64, head_sha: &str, head: Value) -> Vec<u8> {
    let base = git(&origin.work, &["rev-parse", "master"]);
    let mut v: Value = serde_json::from_slice(&pr_payload(
        REPO,
        &origin.url(),
        "opened",
        n,
        head_sha,
        &base,
    ))
    .unwrap();
    v["pull_request"]["head"]["repo"] = head;
    serde_json::to_vec(&v).unwrap()
}

fn build_id(answer: (u16, String)) -> i64 {
    assert_eq!(answer.0, 202, "{}", answer.1);
    serde_json::from_str::<Value>(&answer.1).unwrap()["build"]
        .as_i64()
        .unwrap()
}

#[test]
fn forks_come_from_the_payload_and_survive_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script:\n  - echo hello\n");
    let data = tmp.path().join("data");
    let first = Recording::default();
    let h = Harness::start(&data, config(None), first.runner());

    let master = git(&origin.work, &["rev-parse", "master"]);
    let push = build_id(h.deliver(
        "push",
        "t-push",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &master),
    ));
    // Pull requests from the same repository, from a fork, and from a deleted fork.
    let open = |n: u64, head_repo: Value| {
        let file = format!("{n}.txt");
        let head = origin.pull_request(n, "master", &file, "x\n");
        let body = pr_from(&origin, n, &head, head_repo);
        build_id(h.deliver("pull_request", &format!("t-pr{n}"), &body))
    };
    let same = open(
        1,
        serde_json::json!({"full_name": REPO, "clone_url": origin.url()}),
    );
    let fork = open(
        2,
        serde_json::json!({"full_name": "eve/app", "clone_url": "https://example.invalid/eve/app.git"}),
    );
    let deleted = open(3, Value::Null);
    for id in [push, same, fork, deleted] {
        assert_eq!(h.wait_final(id, 30)["build"]["state"], "passed");
    }
    assert_eq!(first.fork_of(push), Some(false));
    assert_eq!(first.fork_of(same), Some(false));
    assert_eq!(first.fork_of(fork), Some(true));
    assert_eq!(first.fork_of(deleted), Some(true));
    h.stop();

    // The flag is part of the stored build, not recomputed from anything at run time.
    let stored: Vec<(i64, bool)> = db(&data)
        .prepare("SELECT id, spec FROM builds ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            let spec: String = r.get(1)?;
            let v: Value = serde_json::from_str(&spec).unwrap();
            Ok((r.get(0)?, v["context"]["fork"].as_bool().unwrap()))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stored,
        vec![(push, false), (same, false), (fork, true), (deleted, true)]
    );

    // After a restart of the server, restarted builds run with the same trust.
    let second = Recording::default();
    let h = Harness::start(&data, config(None), second.runner());
    let mut again = Vec::new();
    for id in [same, fork, deleted] {
        let (status, text) = http(
            "POST",
            &format!("{}/api/builds/{id}/restart", h.url()),
            &[("Authorization", "Bearer ui-token")],
            b"",
        );
        assert_eq!(status, 201, "{text}");
        let new = serde_json::from_str::<Value>(&text).unwrap()["build"]
            .as_i64()
            .unwrap();
        assert_eq!(h.wait_final(new, 30)["build"]["state"], "passed");
        again.push(second.fork_of(new));
    }
    assert_eq!(again, vec![Some(false), Some(true), Some(true)]);
    h.stop();
}
