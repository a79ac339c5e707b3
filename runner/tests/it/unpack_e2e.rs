//! The job's files (script and workspace) reach the container the same way whatever the image:
//! unpacked from standard input by the image's own `tar` when it can, uploaded through the engine
//! when it cannot (no `tar`, or a user who may not write `/`). The engine's own events say which
//! way each took; the job sees the same workspace either way, and the handshake never shows in
//! its log.

use crate::util::*;
use slipway_runner::BuildResult;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Builds `tag` from a Dockerfile on standard input (local base images only, no pulls).
fn build_image(tag: &str, dockerfile: &str) {
    use std::io::Write as _;
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many archive uploads the engine reports for containers of `image` since `since` (seconds).
fn uploads(image: &str, since: f64) -> usize {
    let until = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let out = Command::new("docker")
        .args([
            "events",
            "--filter",
            "type=container",
            "--filter",
            &format!("image={image}"),
            "--filter",
            "event=extract-to-dir",
            "--since",
            &format!("{since:.3}"),
            "--until",
            &format!("{:.3}", until.as_secs_f64() + 0.5),
        ])
        .output()
        .expect("docker events");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn the_workspace_arrives_the_same_over_standard_input_and_through_the_engine() {
    let Some(exec) = engine(&[&busybox(), &debian()]).await else {
        return;
    };
    let cases = [
        (
            "slipway-test/unpack-stdin:latest",
            format!("FROM {}\nLABEL dev.slipway.test=unpack-stdin\n", busybox()),
            0,
        ),
        (
            "slipway-test/unpack-nonroot:latest",
            format!("FROM {}\nUSER 65534:65534\n", busybox()),
            1,
        ),
        (
            "slipway-test/unpack-notar:latest",
            format!("FROM {}\nRUN rm -f /usr/bin/tar /bin/tar\n", debian()),
            1,
        ),
    ];
    let ctx = context("acme/app", "main");
    let ws = git_workspace(&ctx);
    for (image, dockerfile, expected_uploads) in cases {
        build_image(image, &dockerfile);
        let plan = plan(
            &format!(
                r#"
image: "{image}"
script:
  - cat hello.txt uncommitted.txt
  - test ! -e ignored.txt && echo ignored-left-out
  - echo "owner=$(stat -c %u hello.txt)"
  - test -d .git && echo has-git
"#
            ),
            &ctx,
        );
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let ran = run(exec.clone(), options(), &plan, Some(&ws.workspace), None).await;
        let log = ran.log(1);
        assert_eq!(ran.outcome.result, BuildResult::Passed, "{image}: {log}");
        for line in [
            "hello from the workspace",
            "local edit",
            "ignored-left-out",
            "owner=0",
            "has-git",
        ] {
            assert!(log.contains(line), "{image}: no {line:?} in {log}");
        }
        assert!(!log.contains("slipway-unpack"), "{image}: {log}");
        assert_eq!(
            uploads(image, since),
            expected_uploads,
            "{image}: archive uploads through the engine"
        );
    }
}
