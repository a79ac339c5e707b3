//! Notifications through `slipway serve`: a failing then passing branch notifies email (the
//! SMTP sink), Slack (a stand-in, through a secure room), a webhook receiver (signature checked)
//! and IRC (ngircd) on `change` exactly twice; a fork's pull request sends nothing that needs a
//! secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::serve::*;
use crate::support::sinks::*;

fn pipeline(hook: &str, room: &str, irc: &str, marker: &str) -> String {
    format!(
        "language: minimal\nimage: {IMAGE}\nscript: test -f pass\nnotifications:\n  \
         on_success: change\n  on_failure: change\n  \
         email:\n    recipients: [team-{marker}@example.org]\n  \
         webhooks: {hook}\n  \
         slack:\n    rooms:\n      - secure: \"{room}\"\n  \
         irc:\n    channels: [\"{irc}\"]\n    use_notice: true\n"
    )
}

#[test]
fn a_failing_then_passing_branch_notifies_every_channel_on_change_exactly_twice() {
    if !docker_ready() {
        return;
    }
    let (Some(irc), Some(smtp), Some(_)) = (
        service("SLIPWAY_TEST_IRC"),
        service("SLIPWAY_TEST_SMTP"),
        service("SLIPWAY_TEST_MAILDIR"),
    ) else {
        return;
    };
    let (smtp_host, smtp_port) = smtp.rsplit_once(':').unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "language: minimal\nscript: 'true'\n");
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let key = Arc::new(Mutex::new(None));
    let hooks = StandIn::start(Checks::Webhook {
        public_key: key.clone(),
    });
    let slack = StandIn::start(Checks::Slack {
        token: "t0ken_42".into(),
    });
    let extra = format!(
        "workers = 2\n[notifications]\nslack_url = \"{}/services/hooks/travis?account={{account}}&token={{token}}\"\n\
         allow = [\"127.0.0.1\"]\nmax_attempts = 3\n\
         [notifications.smtp]\nhost = \"{smtp_host}\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"ci@slipway.test\"\n",
        slack.url
    );
    let server = Served::new(tmp.path(), &api, &origin.url(), &extra);
    *key.lock().unwrap() = Some(ed25519_from_pem(
        &std::fs::read_to_string(server.data.join("notify-signing.pub.pem")).unwrap(),
    ));
    // The room is encrypted with the repository's key in the server's data dir.
    let encrypted = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["secrets", "--data-dir"])
        .arg(&server.data)
        .args(["encrypt", "ROOM=acme:t0ken_42#builds", "--repo", REPO])
        .output()
        .unwrap();
    let room = String::from_utf8_lossy(&encrypted.stdout)
        .trim()
        .trim_start_matches("secure: ")
        .trim_matches('"')
        .to_owned();
    assert!(!room.is_empty(), "{}", crate::support::text(&encrypted));
    let marker = format!("n{}", std::process::id());
    let channel = format!("#notify{marker}");
    let watcher = IrcWatcher::join(&irc, &format!("w{marker}"), &channel);
    let text = pipeline(
        &format!("{}/hook", hooks.url),
        &room,
        &format!("{irc}{channel}"),
        &marker,
    );

    // Fails, passes, passes: `change` notifies the first two only.
    let mut builds = Vec::new();
    let commits = [
        origin.push_master(".travis.yml", &text),
        origin.push_master("pass", "yes\n"),
        origin.push_master("README", "changed\n"),
    ];
    for (i, sha) in commits.iter().enumerate() {
        let id = build_of(server.deliver(
            "push",
            &format!("notify-push-{i}"),
            &push_payload(REPO, &origin.url(), "refs/heads/master", sha),
        ));
        let v = server.wait_final(id, 180);
        let want = if i == 0 { "failed" } else { "passed" };
        assert_eq!(v["build"]["state"], want, "{v}\n{}", server.server_log());
        builds.push(id);
    }
    let got = hooks.wait_for(2, 30);
    let got_slack = slack.wait_for(2, 30);
    wait_mails(&marker, 2, 30);
    watcher.wait_said(6, 30);
    // Nothing more arrives for the third build.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hooks.received().len(), 2, "{:?}", hooks.received());
    assert_eq!(slack.received().len(), 2);
    assert_eq!(mails_with(&marker).len(), 2);
    assert_eq!(watcher.said().len(), 6, "{:?}", watcher.said());
    // The API shows each build's outbox rows: the first build's four sent on the first try.
    assert_eq!(
        outbox(&server, builds[0]),
        vec!["\"failed\" 1 true null"; 4]
    );
    assert_eq!(outbox(&server, builds[2]), Vec::<String>::new());
    for r in got.iter().chain(&got_slack) {
        assert_eq!(r.rejected, None, "{r:?}");
    }
    let states: Vec<String> = got
        .iter()
        .map(|r| {
            let p: serde_json::Value =
                serde_json::from_str(&form_payload(&r.body).unwrap()).unwrap();
            format!("{} {}", p["state"], p["status_message"])
        })
        .collect();
    assert_eq!(states, ["\"failed\" \"Failed\"", "\"passed\" \"Fixed\""]);
    let said = watcher.said();
    assert!(said[0].starts_with("NOTICE acme/app#"), "{said:?}");
    assert!(said[3].ends_with("The build was fixed."), "{said:?}");
    let mails = mails_with(&marker);
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Subject: Failed: acme/app#")),
        "{mails:?}"
    );
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Subject: Fixed: acme/app#")),
        "{mails:?}"
    );

    fork_pull_request_sends_only_plain_targets(&server, &origin, &hooks, &slack, &watcher, &marker);
}

/// A build's notification rows as `GET /api/builds/ID` shows them: outcome, tries, done, last error.
fn outbox(server: &Served, build: i64) -> Vec<String> {
    server.json(&format!("/api/builds/{build}"))["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["outcome"], r["attempts"], r["done"], r["last_error"]
            )
        })
        .collect()
}

/// A fork's pull request: only the plain webhook; the secure room, email and IRC send nothing.
fn fork_pull_request_sends_only_plain_targets(
    server: &Served,
    origin: &Origin,
    hooks: &StandIn,
    slack: &StandIn,
    watcher: &IrcWatcher,
    marker: &str,
) {
    let head = origin.pull_request(9, "master", "pass", "from a fork\n");
    let base = git(&origin.work, &["rev-parse", "master"]);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&pr_payload(REPO, &origin.url(), "opened", 9, &head, &base))
            .unwrap();
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/app".into();
    let id = build_of(server.deliver(
        "pull_request",
        "notify-fork-9",
        payload.to_string().as_bytes(),
    ));
    let v = server.wait_final(id, 180);
    assert_eq!(v["build"]["state"], "passed", "{v}");
    let log = v["build"]["log"].as_str().unwrap_or_default();
    assert!(
        log.contains("notification slack: a pull request from a fork gets no secrets"),
        "{log}"
    );
    let got = hooks.wait_for(3, 30);
    let p: serde_json::Value = serde_json::from_str(&form_payload(&got[2].body).unwrap()).unwrap();
    assert_eq!(p["pull_request"], true);
    assert_eq!(p["pull_request_number"], 9);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(slack.received().len(), 2, "the fork reached Slack");
    assert_eq!(mails_with(marker).len(), 2);
    assert_eq!(watcher.said().len(), 6);
    assert!(!server.server_log().contains("t0ken_42"));
}
