//! The web UI in headless Chromium, driven over the DevTools protocol while a job runs: its log
//! appears line by line without a reload, keeps its colours across chunks, folds finished phases
//! with their durations, follows the end of the log unless the reader scrolled up, shows markup as
//! text; and a finished build shows its jobs matrix.

use crate::util::browser::*;
use crate::util::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn wait_job_running(h: &Harness, build: i64) -> i64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let v = h.json(&format!("/api/builds/{build}"));
        if let Some(j) = v["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["state"] == "running"))
        {
            return j["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no job ever ran: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job_state(h: &Harness, job: i64) -> Value {
    h.json(&format!("/api/jobs/{job}"))["job"]["state"].clone()
}

const PIPELINE: &str = r#"env:
  - LANE=one
  - LANE=two
before_script:
  - echo preparing
script:
  - 'echo <script>document.title="pwned"</script>'
  - 'part \e[1'
  - 'part ;32mgreen-start '
  - echo first-line
  - lines 80
  - gate one
  - echo second-line
  - 'part \e[0m'
  - echo plain-line
  - gate two
  - echo last-line
"#;

/// JavaScript: true when some coloured span in the log holds `text` with class `class`.
fn in_span(text: &str, class: &str) -> String {
    format!(
        "[...document.querySelectorAll('#log span.{class}')].some(s => s.textContent.includes({text:?}))"
    )
}

/// JavaScript: each phase of the log as `[summary, open]`.
const PHASES: &str = "[...document.querySelectorAll('#log details.phase')].map(d => [d.querySelector('summary').textContent, d.open])";

const AT_BOTTOM: &str =
    "window.scrollY > 0 && window.innerHeight + window.scrollY >= document.body.scrollHeight - 2";

#[test]
fn a_running_jobs_log_appears_live_and_stays_text() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), PIPELINE);
    let gates = Arc::new(Gates::default());
    let h = Harness::start(
        &tmp.path().join("data"),
        config(None),
        Arc::new(GatedJobRunner {
            gates: gates.clone(),
        }),
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let delivered = h.deliver(
        "push",
        "ui-1",
        &push_payload("acme/app", &origin.url(), "refs/heads/master", &sha),
    );
    assert_eq!(delivered.0, 202, "{delivered:?}");
    let job = wait_job_running(&h, 1);
    // The page is served with an empty log: whatever the DOM holds came over the live stream.
    let (_, served) = h.get(&format!("/jobs/{job}"));
    assert!(!served.contains("first-line"), "{served}");

    let mut b = Browser::launch(&bin);
    b.navigate(&format!("{}/jobs/{job}", h.url()));
    let title = b.eval("document.title");
    assert!(
        title.as_str().unwrap().starts_with("Job 1."),
        "title {title}"
    );
    b.eval("window.slipwayTestMark = 'same page'");
    let log = "document.getElementById('log').textContent";

    // The first lines are shown while the job waits at its first gate.
    b.wait_for(&format!("{log}.includes('first-line')"), "the first line");
    assert_eq!(
        job_state(&h, job),
        "running",
        "the first line came while the job ran"
    );
    assert_eq!(
        b.eval(&format!("{log}.includes('second-line')")),
        json!(false)
    );

    // A log line with markup is text: nothing ran, the title is the page's own.
    assert_eq!(
        b.eval(&format!(
            "{log}.includes('<script>document.title=\"pwned\"</script>')"
        )),
        json!(true)
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#log script').length"),
        json!(0)
    );
    assert_eq!(b.eval("document.title"), title);

    // A colour whose escape sequence was cut between two chunks, and that later chunks continue.
    b.wait_for(
        &in_span("green-start", "f2"),
        "the split escape sequence to colour",
    );
    assert_eq!(b.eval(&in_span("first-line", "f2")), json!(true));
    assert_eq!(b.eval(&in_span("first-line", "b")), json!(true));
    assert_eq!(
        b.eval(
            "[...document.querySelectorAll('#log span.f2')].map(s => getComputedStyle(s).color).find(Boolean)"
        ),
        json!("rgb(102, 187, 106)")
    );

    // Finished phases are folded, with their durations; the running one is open.
    let phases = b.eval(PHASES);
    let phases = phases.as_array().unwrap();
    let (running, done) = phases.split_last().unwrap();
    assert_eq!(running, &json!(["script", true]), "{phases:?}");
    assert!(
        done.iter()
            .any(|p| p[0].as_str().unwrap().starts_with("before_script (")),
        "{phases:?}"
    );
    for p in done {
        let summary = p[0].as_str().unwrap();
        assert!(
            summary.ends_with(" s)") && summary.contains(" ("),
            "{phases:?}"
        );
        assert_eq!(p[1], json!(false), "{phases:?}");
    }

    // More lines than the window holds: the page follows the end of the log.
    b.wait_for(
        &format!("{log}.includes('filler line 79')"),
        "the filler lines",
    );
    b.wait_for(AT_BOTTOM, "the page to follow the log");

    // A line written later appears on the same page, still in the colour it was opened in.
    gates.open("one");
    b.wait_for(&format!("{log}.includes('plain-line')"), "the second line");
    assert_eq!(
        job_state(&h, job),
        "running",
        "the second line came while the job ran"
    );
    assert_eq!(
        b.eval("window.slipwayTestMark"),
        json!("same page"),
        "the page was reloaded"
    );
    assert_eq!(b.eval(&in_span("second-line", "f2")), json!(true));
    assert_eq!(b.eval(&in_span("plain-line", "f2")), json!(false));
    b.wait_for(AT_BOTTOM, "the page to follow the log");

    // A reader who scrolled up is left where they are.
    b.eval("window.scrollTo(0, 0)");
    gates.open("two");
    b.wait_for(
        "document.getElementById('live').textContent === 'finished'",
        "the end of the log",
    );
    assert_eq!(b.eval(&format!("{log}.includes('last-line')")), json!(true));
    assert_eq!(b.eval("window.scrollY"), json!(0));
    let phases = b.eval(PHASES);
    let script = phases.as_array().unwrap().last().unwrap();
    assert!(
        script[0].as_str().unwrap().starts_with("script ("),
        "{phases}"
    );
    assert_eq!(script[1], json!(false), "{phases}");

    // The finished build's page shows its jobs matrix.
    let build = h.wait_final(1, DEADLINE.as_secs());
    assert_eq!(build["build"]["state"], "passed", "{build}");
    let jobs: Vec<i64> = build["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(jobs.len(), 2, "{build}");
    b.navigate(&format!("{}/builds/1", h.url()));
    let rows = b.eval(
        "[...document.querySelectorAll('table.matrix tr')].slice(1).map(r => [r.querySelector('a').getAttribute('href'), r.innerText])",
    );
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, (id, lane)) in rows
        .iter()
        .zip(jobs.iter().zip(["env: LANE=one", "env: LANE=two"]))
    {
        assert_eq!(row[0], json!(format!("/jobs/{id}")), "{rows:?}");
        let text = row[1].as_str().unwrap();
        assert!(text.contains(lane) && text.contains("passed"), "{rows:?}");
    }
    drop(b);
    h.stop();
}

/// Reads a job's event stream to its end (the job is over, so the stream ends by itself).
fn read_events(h: &Harness, job: i64, last_event_id: Option<i64>) -> Vec<Value> {
    let mut stream = TcpStream::connect(h.url().trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains("event: end") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| d.starts_with('{'))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn a_resumed_log_stream_keeps_the_colour_in_force() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(
        tmp.path(),
        "script:\n  - 'part \\e[3'\n  - 'part 1mred '\n  - echo still-red\n  - 'part \\e[m'\n  - echo plain\n",
    );
    let h = Harness::start(
        &tmp.path().join("data"),
        config(None),
        Arc::new(GatedJobRunner {
            gates: Arc::default(),
        }),
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let delivered = h.deliver(
        "push",
        "ui-2",
        &push_payload("acme/app", &origin.url(), "refs/heads/master", &sha),
    );
    assert_eq!(delivered.0, 202, "{delivered:?}");
    let build = h.wait_final(1, DEADLINE.as_secs());
    assert_eq!(build["build"]["state"], "passed", "{build}");
    let job = build["jobs"][0]["id"].as_i64().unwrap();

    let html = |events: &[Value], data: &str| -> String {
        events
            .iter()
            .find(|e| e["data"].as_str().is_some_and(|d| d.contains(data)))
            .unwrap_or_else(|| panic!("no chunk with {data}: {events:?}"))["html"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let whole = read_events(&h, job, None);
    assert_eq!(html(&whole, "\u{1b}[3"), "");
    assert_eq!(html(&whole, "red "), "<span class=\"f1\">red </span>");
    assert_eq!(
        html(&whole, "still-red"),
        "<span class=\"f1\">still-red\n</span>"
    );
    assert_eq!(html(&whole, "plain"), "plain\n");

    // A browser that reconnects after the chunk that set the colour gets the rest in that colour.
    let seq = whole.iter().find(|e| e["data"] == "1mred ").unwrap()["seq"]
        .as_i64()
        .unwrap();
    let resumed = read_events(&h, job, Some(seq));
    assert_eq!(resumed[0]["seq"], json!(seq + 1), "{resumed:?}");
    assert_eq!(
        html(&resumed, "still-red"),
        "<span class=\"f1\">still-red\n</span>"
    );
    assert_eq!(html(&resumed, "plain"), "plain\n");
    h.stop();
}
