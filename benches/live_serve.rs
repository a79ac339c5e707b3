//! Live log across servers, of record: two real `slipway serve` processes on one PostgreSQL
//! database, a job run in Docker by one, its log followed by a viewer of each.
//!
//! `runs` has one worker, `views` none. A push is delivered to `views`; `runs` claims the job,
//! which prints `LINES` lines in its container, one every 50 ms, each with the container's clock
//! in nanoseconds (`date +%s%N`: the container shares the host's clock). A viewer on `views`
//! (the path measured: the job's worker stores a batch, NOTIFY, the other server reads it back)
//! and one on `runs` (the baseline in the same run: the in-memory path) read the job's event
//! stream; a line's latency runs from its printing to its event read off the connection. Lines
//! printed before both viewers were connected are left out. Bounded: one job of `LINES` lines,
//! two minutes at most; loopback only.
//!
//! Goal: p99 ≤ 1 s on the other server. Needs `SLIPWAY_TEST_POSTGRES` (`scripts/services.sh`),
//! Docker and the `slipway-test/debian` image (`scripts/test-images.sh`). `SLIPWAY_LIVE_BIN=PATH`
//! measures another `slipway` binary.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_webhook::testing::bench::{load_average, report_latencies};
use slipway_webhook::testing::{LogViewer, Origin, build_of, deliver, git, push_payload};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LINES: usize = 200;
const SECRET: &str = "bench-webhook-secret-live-serve";
const IMAGE: &str = "slipway-test/debian:latest";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `slipway serve` process, killed when dropped.
struct Serve {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(bin: &Path, root: &Path, name: &str, store: &str, workers: usize) -> Serve {
    let port = free_port();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("slipway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"{SECRET}\"\nworkers = {workers}\n"
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let child = Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .env("SLIPWAY_STORE", store)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("slipway serve");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "slipway serve did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Serve { child, url, log }
}

/// Runs SQL on the database at `url`.
fn psql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("the database at SLIPWAY_TEST_POSTGRES");
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    });
}

fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = slipway_webhook::testing::http("GET", url, &[], b"");
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Each line's latency in ms: from the nanosecond stamp it carries to its arrival, for lines
/// printed after `from`.
fn latencies(viewer: &LogViewer, opened: Instant, opened_wall: SystemTime, from: u128) -> Vec<f64> {
    let mut out = Vec::new();
    let mut last = 0;
    for c in &viewer.chunks {
        assert_eq!(c.seq, last + 1, "a gap or a repeat");
        last = c.seq;
        for line in c.data.lines() {
            let Some(stamp) = line
                .strip_prefix("tick ")
                .and_then(|r| r.split(' ').nth(1))
                .and_then(|n| n.parse::<u128>().ok())
            else {
                continue;
            };
            if stamp < from {
                continue;
            }
            let arrived = opened_wall + c.at.saturating_duration_since(opened);
            let arrived = arrived.duration_since(UNIX_EPOCH).unwrap().as_nanos();
            out.push(arrived.saturating_sub(stamp) as f64 / 1e6);
        }
    }
    out
}

fn main() {
    let Ok(base) = std::env::var("SLIPWAY_TEST_POSTGRES") else {
        eprintln!("SLIPWAY_TEST_POSTGRES is not set: run scripts/services.sh start");
        std::process::exit(2);
    };
    let image_there = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !image_there {
        eprintln!("Docker or the image {IMAGE} is missing: run scripts/test-images.sh");
        std::process::exit(2);
    }
    let bin: PathBuf = std::env::var_os("SLIPWAY_LIVE_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_slipway").into())
        .into();
    let schema = format!("bench_live_serve_{}", std::process::id());
    psql(
        &base,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    let tmp = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "language: minimal\nimage: {IMAGE}\nscript:\n  - sleep 3\n  - 'for i in $(seq 1 {LINES}); do echo \"tick $i $(date +%s%N)\"; sleep 0.05; done'\n"
    );
    let origin = Origin::new(tmp.path(), &pipeline);
    let runs = serve(&bin, tmp.path(), "runs", &store, 1);
    let views = serve(&bin, tmp.path(), "views", &store, 0);

    let sha = git(&origin.work, &["rev-parse", "master"]);
    let body = push_payload("acme/app", &origin.url(), "refs/heads/master", &sha);
    let build = build_of(deliver(&views.url, SECRET, "push", "live-serve", &body));
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let v = get_json(&format!("{}/api/builds/{build}", views.url));
        if let Some(j) = v["jobs"]
            .as_array()
            .and_then(|js| js.iter().find(|j| j["state"] == "running"))
        {
            break j["id"].as_i64().unwrap();
        }
        assert!(
            Instant::now() < deadline && v["build"]["state"] != "errored",
            "the job never ran: {v}\n{}",
            std::fs::read_to_string(&runs.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let other = LogViewer::open(&views.url, job, None).unwrap();
    let same = LogViewer::open(&runs.url, job, None).unwrap();
    let (opened, opened_wall) = (Instant::now(), SystemTime::now());
    let from = opened_wall.duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let reading: Vec<_> = [("other", other), ("same", same)]
        .into_iter()
        .map(|(side, mut v)| {
            std::thread::spawn(move || {
                assert!(v.read_to_end(Duration::from_secs(120)), "{side}: no end");
                (side, v)
            })
        })
        .collect();
    let mut figures = Vec::new();
    for r in reading {
        let (side, v) = r.join().unwrap();
        figures.push((side, latencies(&v, opened, opened_wall, from)));
    }
    println!(
        "live log across two slipway serve processes on PostgreSQL ({}): one Docker job, {LINES} lines, \
         one every 50 ms; load {}",
        bin.display(),
        load_average()
    );
    let mut p99s = Vec::new();
    for (side, ms) in figures {
        let name = match side {
            "same" => "  baseline, viewer on the server running the job",
            _ => "  viewer on the other server",
        };
        p99s.push((side, report_latencies(name, ms)));
    }
    let p99 = |s: &str| {
        p99s.iter()
            .find(|(side, _)| *side == s)
            .map_or(0.0, |p| p.1)
    };
    println!(
        "  ratio of the p99s: {:.1}x; goal p99 <= 1000 ms on the other server: {}",
        p99("other") / p99("same").max(0.001),
        if p99("other") <= 1000.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    drop(views);
    drop(runs);
    psql(&base, &format!("DROP SCHEMA {schema} CASCADE"));
}
