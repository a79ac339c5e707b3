//! Notifications through `slipway run`: printed, never sent, never showing a secret; `change`
//! compared with the previous local run of the branch.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{engine_ready, repo_with_pipeline, text};

const PIPELINE: &str = "\
language: minimal
image: {busybox}
script: test -f pass
notifications:
  email: false
  webhooks:
    urls: https://hooks.example.org/ci
    on_success: change
    on_failure: change
  slack:
    rooms: acme:s3cr3tt0ken#ci
";

fn run(dir: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir)
        .args(args)
        .env("SLIPWAY_DATA_DIR", data)
        .output()
        .unwrap()
}

fn would_send(out: &str, what: &str) -> usize {
    out.lines()
        .filter(|l| l.trim_start().starts_with(&format!("would send {what}")))
        .count()
}

#[test]
fn a_failing_then_passing_branch_notifies_on_change_exactly_twice() {
    if !engine_ready() {
        return;
    }
    let repo = repo_with_pipeline(".slipway.yml", PIPELINE);
    let data = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    // Fails (no `pass` file), then passes twice: the packed working tree has the new file.
    let first = run(repo.path(), data.path(), &[]);
    assert!(!first.status.success(), "{}", text(&first));
    outs.push(text(&first));
    std::fs::write(repo.path().join("pass"), "yes\n").unwrap();
    for _ in 0..2 {
        let out = run(repo.path(), data.path(), &[]);
        assert!(out.status.success(), "{}", text(&out));
        outs.push(text(&out));
    }
    let hooks: Vec<usize> = outs.iter().map(|o| would_send(o, "webhook")).collect();
    assert_eq!(hooks, [1, 1, 0], "{outs:#?}");
    assert!(outs[0].contains("previous on main: none"), "{}", outs[0]);
    assert!(
        outs[1].contains("for this passed build (previous on main: failed"),
        "{}",
        outs[1]
    );
    assert!(
        outs[2].contains("webhooks: not sent: on_success: change"),
        "{}",
        outs[2]
    );
    // Slack's default is `always`; its room's token is never shown.
    let slack: Vec<usize> = outs.iter().map(|o| would_send(o, "slack")).collect();
    assert_eq!(slack, [1, 1, 1]);
    for out in &outs {
        assert!(!out.contains("s3cr3tt0ken"), "{out}");
        assert!(out.contains("slack to acme:[secure]#ci"), "{out}");
        assert!(
            out.contains("email: not sent: email is switched off"),
            "{out}"
        );
    }
}

#[test]
fn a_fork_pull_request_leaves_out_every_target_that_needs_a_secret() {
    let repo = repo_with_pipeline(
        ".slipway.yml",
        "language: minimal\nscript: 'true'\nnotifications:\n  slack:\n    rooms:\n      secure: c2VjcmV0\n  webhooks:\n    urls:\n      - https://hooks.example.org/public\n      - secure: aG9vaw==\n",
    );
    let data = tempfile::tempdir().unwrap();
    let fork = run(
        repo.path(),
        data.path(),
        &["--dry-run", "--event", "pull_request", "--fork"],
    );
    let out = text(&fork);
    assert!(fork.status.success(), "{out}");
    assert!(
        out.contains("slack [secure]: not sent: a pull request from a fork gets no secrets, and every slack target is secure"),
        "{out}"
    );
    assert!(
        out.contains(
            "webhooks https://hooks.example.org/public: sent: 1 secure target(s) left out"
        ),
        "{out}"
    );
    // The same pull request from the repository itself keeps both.
    let own = text(&run(
        repo.path(),
        data.path(),
        &["--dry-run", "--event", "pull_request"],
    ));
    assert!(
        own.contains("webhooks https://hooks.example.org/public, [secure]: sent"),
        "{own}"
    );
    assert!(own.contains("slack [secure]: sent"), "{own}");
}
