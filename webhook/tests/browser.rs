//! The web UI in headless Chromium: a running job's log arrives live over server-sent events,
//! markup in logs stays text, and a finished build shows its jobs matrix.

mod util;

use slipway_webhook::executor::ScriptedExecutor;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::*;

fn chromium() -> Option<String> {
    let bin = std::env::var("SLIPWAY_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    if Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(bin);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "headless Chromium ({bin}) is missing: install Debian's chromium or set SLIPWAY_TEST_CHROMIUM"
        );
    }
    eprintln!("skipped: headless Chromium ({bin}) not found");
    None
}

/// The DOM after the page's scripts ran for `ms` milliseconds.
fn dump_dom(bin: &str, url: &str, ms: u64) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_running_jobs_log_appears_live_and_stays_text() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(
        tmp.path(),
        "script:\n  - echo first-line\n  - 'echo <script>document.title=\"pwned\"</script>'\n  - sleep 6000\n  - echo last-line\n",
    );
    let h = Harness::start(
        &tmp.path().join("data"),
        config(None),
        Arc::new(ScriptedExecutor),
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    assert_eq!(
        h.deliver(
            "push",
            "ui-1",
            &push_payload("acme/app", &origin.url(), "refs/heads/master", &sha)
        )
        .0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let v = h.json("/api/builds/1");
        if v["jobs"][0]["state"] == "running" {
            break v["jobs"][0]["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the job never ran: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The page is served with an empty log: whatever the DOM holds came over the live stream.
    let (_, served) = h.get(&format!("/jobs/{job}"));
    assert!(!served.contains("first-line"));
    // While the job sleeps, its event stream already carries the first lines.
    let mut stream = std::net::TcpStream::connect(h.url().trim_start_matches("http://")).unwrap();
    {
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("first-line") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the stream ended early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            h.json(&format!("/api/jobs/{job}"))["job"]["state"],
            "running",
            "the line arrived while the job ran"
        );
    }
    // The browser renders what the stream sends (the page itself is served with an empty log).
    // Chromium's virtual time waits for the stream to end, so this DOM is taken at the job's end.
    let dom = dump_dom(&bin, &format!("{}/jobs/{job}", h.url()), 15000);
    assert!(
        dom.contains("first-line") && dom.contains("last-line"),
        "the log did not arrive: {dom}"
    );
    assert!(dom.contains(">finished<"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title=\"pwned\"&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<title>pwned"), "log markup ran: {dom}");
    assert!(
        dom.contains("<summary>script ("),
        "the phase is folded with its duration: {dom}"
    );
    assert_eq!(h.wait_final(1, 30)["build"]["state"], "passed");
    let build = dump_dom(&bin, &format!("{}/builds/1", h.url()), 1000);
    assert!(build.contains("class=\"matrix\""), "{build}");
    assert!(
        build.contains(&format!("href=\"/jobs/{job}\"")) && build.contains("passed"),
        "{build}"
    );
    h.stop();
}
