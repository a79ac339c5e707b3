//! A private repository in headless Chromium: a stranger's browser gets 404 for its job; a user
//! signs in with GitHub (the stand-in) and watches the job's log live; only a user with push
//! permission is shown the cancel button, and it cancels.

use crate::util::browser::*;
use crate::util::*;
use serde_json::json;
use slipway_webhook::testing::FakeOAuth;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PIPELINE: &str = "script:\n  - echo first-private-line\n  - gate one\n  - echo second-private-line\n  - gate two\n";

fn wait_running_job(h: &Harness, build: i64) -> i64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, text) = http(
            "GET",
            &format!("{}/api/builds/{build}", h.url()),
            &[("Authorization", "Bearer ui-token")],
            b"",
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(j) = v["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["state"] == "running"))
        {
            return j["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no job ran: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn build_state(h: &Harness, build: i64) -> serde_json::Value {
    let (_, text) = http(
        "GET",
        &format!("{}/api/builds/{build}", h.url()),
        &[("Authorization", "Bearer ui-token")],
        b"",
    );
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["build"]["state"].clone()
}

#[test]
fn a_private_log_is_live_for_readers_only_and_cancel_needs_push() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), PIPELINE);
    let github = FakeGitHub::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = github.start(&rt);
    let mut c = config(Some(&api));
    c.github.web_url = api;
    c.github.client_id = Some("browser-client".into());
    c.github.client_secret = Some("browser-client-secret".into());
    let gates = Arc::new(Gates::default());
    let h = Harness::start(
        &tmp.path().join("data"),
        c,
        Arc::new(GatedJobRunner {
            gates: gates.clone(),
        }),
    );
    github.oauth(FakeOAuth {
        client_id: "browser-client".into(),
        client_secret: "browser-client-secret".into(),
        redirect_uri: format!("{}/login/github/callback", h.url()),
        grants: vec![
            ("reader".into(), "acme/secret".into(), "pull".into()),
            ("writer".into(), "acme/secret".into(), "push".into()),
        ],
        private: vec!["acme/secret".into()],
        ..FakeOAuth::default()
    });
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let body = push_payload_with(
        "acme/secret",
        &origin.url(),
        "refs/heads/master",
        &sha,
        true,
        "private work",
    );
    let (status, text) = h.deliver("push", "private-1", &body);
    assert_eq!(status, 202, "{text}");
    let job = wait_running_job(&h, 1);
    let text_of = "document.body ? document.body.innerText : ''";

    // A stranger's browser: the job does not exist.
    let mut stranger = Browser::launch(&bin);
    stranger.navigate(&format!("{}/jobs/{job}", h.url()));
    let shown = stranger.eval(text_of);
    assert!(shown.as_str().unwrap().contains("no such job"), "{shown}");
    assert!(!shown.as_str().unwrap().contains("first-private-line"));
    drop(stranger);

    // A reader signs in with GitHub and follows the log live.
    github.with_oauth(|o| o.next_login = "reader".into());
    let mut reader = Browser::launch(&bin);
    reader.navigate(&format!("{}/login/github", h.url()));
    reader.wait_for(
        "document.body.innerText.includes('acme/secret')",
        "the repository list after sign-in",
    );
    reader.navigate(&format!("{}/jobs/{job}", h.url()));
    let log = "document.getElementById('log').textContent";
    reader.wait_for(
        &format!("{log}.includes('first-private-line')"),
        "the first line",
    );
    assert_eq!(
        reader.eval(&format!("{log}.includes('second-private-line')")),
        json!(false)
    );
    gates.open("one");
    reader.wait_for(
        &format!("{log}.includes('second-private-line')"),
        "the second line, live",
    );
    reader.navigate(&format!("{}/builds/1", h.url()));
    assert_eq!(
        reader.eval("document.getElementById('cancel') === null"),
        json!(true),
        "pull permission shows no cancel button"
    );
    drop(reader);

    // A writer sees the button, and it cancels the build.
    github.with_oauth(|o| o.next_login = "writer".into());
    let mut writer = Browser::launch(&bin);
    writer.navigate(&format!("{}/login/github", h.url()));
    writer.wait_for(
        "document.body.innerText.includes('acme/secret')",
        "the repository list after sign-in",
    );
    writer.navigate(&format!("{}/builds/1", h.url()));
    assert_eq!(
        writer.eval("document.getElementById('cancel') !== null"),
        json!(true)
    );
    writer.eval("document.getElementById('cancel').click()");
    let deadline = Instant::now() + DEADLINE;
    while build_state(&h, 1) != "canceled" {
        assert!(
            Instant::now() < deadline,
            "the cancel button did not cancel"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(writer);
    let problems = github.with_oauth(|o| o.problems.clone());
    assert!(problems.is_empty(), "{problems:?}");
    h.stop();
}
