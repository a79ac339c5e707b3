//! `/api/builds` and the repository page filtered by branch and by what asked for the build
//! (push, pull request, tag, API, cron): a push to two branches, a pull request and a tag give
//! each filter exactly its builds; an unknown event is a 400 naming the ones there are; a
//! private repository's builds never come out of a filtered list for a stranger.

use crate::util::*;
use serde_json::Value;
use slipway_webhook::testing::ScriptedJobRunner;
use std::sync::Arc;

const PIPELINE: &str = "script: echo hi\n";

/// The ids a builds list holds, newest first.
fn ids(v: &Value) -> Vec<i64> {
    v["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn builds_are_listed_by_branch_and_by_event() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), PIPELINE);
    let h = Harness::start(
        &tmp.path().join("data"),
        config(None),
        Arc::new(ScriptedJobRunner),
    );
    let url = origin.url();
    let sha = git(&origin.work, &["rev-parse", "master"]);
    git(
        &origin.work,
        &["push", "-q", "origin", "master:refs/heads/feature"],
    );
    git(
        &origin.work,
        &["push", "-q", "origin", "master:refs/tags/v1.0"],
    );
    let deliveries = [
        (
            "push",
            push_payload("acme/app", &url, "refs/heads/master", &sha),
        ),
        (
            "push",
            push_payload("acme/app", &url, "refs/heads/feature", &sha),
        ),
        (
            "push",
            push_payload("acme/app", &url, "refs/tags/v1.0", &sha),
        ),
    ];
    for (i, (event, body)) in deliveries.iter().enumerate() {
        let (status, answer) = h.deliver(event, &format!("f-{i}"), body);
        assert_eq!(status, 202, "{answer}");
        h.wait_final(i as i64 + 1, 60);
    }
    let head = origin.pull_request(3, "master", "b.txt", "b\n");
    let pr = pr_payload("acme/app", &url, "opened", 3, &head, &sha);
    assert_eq!(h.deliver("pull_request", "f-3", &pr).0, 202);
    h.wait_final(4, 60);
    let private = push_payload_with("acme/secret", &url, "refs/heads/master", &sha, true, "x");
    // Stored once accepted (its pages are 404 to this anonymous caller, so it is not awaited).
    assert_eq!(h.deliver("push", "f-4", &private).0, 202);

    let listed = |query: &str| ids(&h.json(&format!("/api/builds?{query}")));
    assert_eq!(listed("repo=acme/app"), [4, 3, 2, 1]);
    assert_eq!(listed("repo=acme/app&branch=feature"), [2]);
    assert_eq!(listed("repo=acme/app&event=push"), [2, 1]);
    assert_eq!(listed("repo=acme/app&event=tag"), [3]);
    assert_eq!(listed("repo=acme/app&event=pull_request"), [4]);
    assert_eq!(listed("repo=acme/app&event=api"), Vec::<i64>::new());
    assert_eq!(listed("repo=acme/app&event=push&branch=master"), [1]);
    // A pull request is listed under the branch it goes into.
    assert_eq!(
        listed("repo=acme/app&event=pull_request&branch=master"),
        [4]
    );
    // Empty means any.
    assert_eq!(listed("repo=acme/app&branch=&event="), [4, 3, 2, 1]);
    // Without a repository: every readable one, filtered the same; the private one never.
    assert_eq!(listed("event=push"), [2, 1]);
    assert_eq!(listed("branch=master"), [4, 1]);

    let (status, body) = h.get("/api/builds?repo=acme/app&event=release");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\"release\" is not one of push, pull_request, tag, api, cron"),
        "{body}"
    );
    for query in [
        "repo=acme/secret&event=push",
        "repo=acme/secret&branch=master",
    ] {
        let (status, body) = h.get(&format!("/api/builds?{query}"));
        assert_eq!(status, 404, "{query}: {body}");
    }

    // The repository page: the same filters, and a link per event that keeps the branch.
    let (status, html) = h.get("/repos/acme/app?event=tag");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("href=\"/builds/3\""), "{html}");
    assert!(!html.contains("href=\"/builds/1\""), "{html}");
    let (_, html) = h.get("/repos/acme/app?branch=a%26b%22%3Cc%3E");
    assert!(
        html.contains(
            "<a href=\"/repos/acme/app?branch=a%26b%22%3Cc%3E&amp;event=pull_request\">pull requests</a>"
        ),
        "{html}"
    );
    assert!(
        !html.contains("a&b\"<c>"),
        "the branch came out unescaped: {html}"
    );
    h.stop();
}
