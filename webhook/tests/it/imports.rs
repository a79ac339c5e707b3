//! `import:` under `slipway serve`: a file of another served repository at a tag and one of the
//! build's own repository are merged before planning; a pull request from a fork may import only
//! from its own repository.

use crate::util::*;
use serde_json::Value;
use slipway_webhook::config::Repo;
use slipway_webhook::testing::ScriptedJobRunner;
use std::sync::Arc;

struct Setup {
    _tmp: tempfile::TempDir,
    app: Origin,
    h: Harness,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("shared")).unwrap();
    let shared = Origin::new(&tmp.path().join("shared"), "script: echo unused\n");
    std::fs::create_dir_all(shared.work.join("ci")).unwrap();
    shared.push_master("ci/common.yml", "before_script: echo from-shared-v1\n");
    git(&shared.work, &["tag", "v1"]);
    git(&shared.work, &["push", "-q", "origin", "v1"]);
    // After the tag: the import must read the tag, not master.
    shared.push_master("ci/common.yml", "before_script: echo from-shared-master\n");

    std::fs::create_dir_all(tmp.path().join("app")).unwrap();
    let app = Origin::new(
        &tmp.path().join("app"),
        "import:\n  - source: acme/shared:ci/common.yml@v1\n  - ci/local.yml\nscript: echo from-app\n",
    );
    std::fs::create_dir_all(app.work.join("ci")).unwrap();
    app.push_master("ci/local.yml", "after_script: echo from-local-import\n");

    let mut config = config(None);
    config.repos = vec![
        Repo {
            name: "acme/app".into(),
            clone_url: Some(app.url()),
            token: None,
            deploy: None,
        },
        Repo {
            name: "acme/shared".into(),
            clone_url: Some(shared.url()),
            token: None,
            deploy: None,
        },
    ];
    let h = Harness::start(
        &tmp.path().join("data"),
        config,
        Arc::new(ScriptedJobRunner),
    );
    Setup { _tmp: tmp, app, h }
}

#[test]
fn a_push_imports_from_another_served_repository_at_a_tag_and_from_its_own() {
    let s = setup();
    let sha = git(&s.app.work, &["rev-parse", "master"]);
    let (status, text) = s.h.deliver(
        "push",
        "p1",
        &push_payload("acme/app", &s.app.url(), "refs/heads/master", &sha),
    );
    assert_eq!(status, 202, "{text}");
    let v = s.h.wait_final(1, 30);
    assert_eq!(v["build"]["state"], "passed", "{v}");
    let job = v["jobs"][0]["id"].as_i64().unwrap();
    let (_, log) = s.h.get(&format!("/jobs/{job}/log.txt"));
    for line in [
        "echo from-shared-v1",
        "echo from-app",
        "echo from-local-import",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    assert!(!log.contains("from-shared-master"), "{log}");
}

#[test]
fn a_pull_request_from_a_fork_may_not_import_another_repository() {
    let s = setup();
    let head = s.app.pull_request(5, "master", "f.txt", "x\n");
    let base = git(&s.app.work, &["rev-parse", "master"]);
    let mut v: Value = serde_json::from_slice(&pr_payload(
        "acme/app",
        &s.app.url(),
        "opened",
        5,
        &head,
        &base,
    ))
    .unwrap();
    v["pull_request"]["head"]["repo"] =
        serde_json::json!({"full_name": "someone/app", "clone_url": s.app.url()});
    let (status, text) =
        s.h.deliver("pull_request", "pr5", &serde_json::to_vec(&v).unwrap());
    assert_eq!(status, 202, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["build"]
        .as_i64()
        .unwrap();
    let v = s.h.wait_final(id, 30);
    assert_eq!(v["build"]["state"], "errored", "{v}");
    let log = v["build"]["log"].as_str().unwrap();
    assert!(
        log.contains("cannot import acme/shared:ci/common.yml@v1")
            && log.contains("a pull request from a fork may import only from its own repository"),
        "{log}"
    );
}
