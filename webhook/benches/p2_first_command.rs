//! P2: webhook received → the job's first command running, with a warm mirror and the image
//! present.
//!
//! The real server runs in-process with the real Docker executor (`ServeRunner` around
//! `slipway_runner::Runner`); a local bare repository stands in for GitHub. One build warms the
//! mirror first. Then, for each of `ROUNDS` pushes, the clock starts when the signed delivery is
//! sent and stops when the live log (the job's server-sent event stream, subscribed as soon as
//! the job exists; it replays from the start) shows the first script command's output. The command prints a computed marker
//! (`echo P2-$((6*7))-RAN` prints `P2-42-RAN`), so its echo line cannot be mistaken for its output.
//!
//! Baseline, alternating with the rounds in the same run: `docker run --rm IMAGE sh -c '<the same
//! command>'` from spawn to the marker on its stdout. Prints p50/p90/max of both, their ratio, and
//! where the server's time went (from the store's timestamps). Goal: p50 ≤ 0.5 s.
//! Needs the Docker engine and the busybox test image (`scripts/test-images.sh`); loopback only.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_webhook::runner_exec::ServeRunner;
use slipway_webhook::testing::{Origin, build_of, deliver, http, push_payload};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 15;
const SECRET: &str = "bench-webhook-secret";
const REPO: &str = "bench/p2";

fn skip_or_fail(why: &str) -> ! {
    eprintln!("P2 skipped: {why}");
    std::process::exit(i32::from(std::env::var("CI").as_deref() == Ok("true")))
}

fn json(base: &str, path: &str) -> serde_json::Value {
    let (status, body) = http("GET", &format!("{base}{path}"), &[], b"");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Opens the job's live log before the job exists; returns a reader positioned after the headers.
fn subscribe(addr: std::net::SocketAddr, job: i64) -> BufReader<std::net::TcpStream> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET /jobs/{job}/events HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return r;
        }
    }
}

/// Reads the chunked event stream until `marker` appears; returns when it was seen.
fn wait_marker(r: &mut BufReader<std::net::TcpStream>, marker: &str) -> Instant {
    let mut seen = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        assert!(
            n > 0,
            "the stream ended before {marker}: {}",
            String::from_utf8_lossy(&seen)
        );
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).unwrap();
        seen.extend_from_slice(&chunk[..n]);
        if seen.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            return Instant::now();
        }
    }
}

/// `docker run --rm IMAGE sh -c CMD`, from spawn to `marker` on its stdout.
fn docker_baseline(image: &str, command: &str, marker: &str) -> Duration {
    let t = Instant::now();
    let mut child = std::process::Command::new("docker")
        .args(["run", "--rm", image, "sh", "-c", command])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut took = None;
    while out.read_line(&mut line).unwrap() > 0 {
        if took.is_none() && line.contains(marker) {
            took = Some(t.elapsed());
        }
        line.clear();
    }
    assert!(child.wait().unwrap().success());
    took.expect("docker run printed the marker")
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0
}

fn median_ms(v: &mut [i64]) -> i64 {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let image = std::env::var("SLIPWAY_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "slipway-test/busybox:latest".into());
    let rt = slipway_webhook::testing::server_runtime();
    let docker = match rt.block_on(slipway_runner::docker::DockerExecutor::connect()) {
        Ok(d) => d,
        Err(e) => skip_or_fail(&format!("no Docker engine: {e}")),
    };
    let present = std::process::Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !present {
        skip_or_fail(&format!("{image} is missing (scripts/test-images.sh)"));
    }

    let tmp = tempfile::tempdir().unwrap();
    let pipeline =
        format!("language: shell\nimage: \"{image}\"\nscript:\n  - echo P2-$((6*7))-RAN\n");
    let origin = Origin::new(tmp.path(), &pipeline);
    let mut config = slipway_webhook::Config::parse(&format!(
        "listen = \"127.0.0.1:0\"\nwebhook_secret = \"{SECRET}\"\n"
    ))
    .unwrap();
    // Statuses go to a port on loopback where nothing listens (they are retried, off the path).
    config.github.api_url = "http://127.0.0.1:9".into();
    let jobs = ServeRunner::new(
        Arc::new(docker),
        slipway_runner::RunnerOptions {
            parallel: 1,
            trusted: false,
            secrets: None,
            ..slipway_runner::RunnerOptions::default()
        },
        None,
    );
    let server = rt
        .block_on(slipway_webhook::start(
            config,
            tmp.path().join("data"),
            Arc::new(jobs),
        ))
        .unwrap();
    let addr = server.addr;
    let base = format!("http://{addr}");

    let mut next_job = 1;
    let mut run = |n: usize| -> (Duration, serde_json::Value) {
        let sha = origin.push_master("round.txt", &format!("{n}\n"));
        let marker = "P2-42-RAN";
        let body = push_payload(REPO, &origin.url(), "refs/heads/master", &sha);
        let t = Instant::now();
        let build = build_of(deliver(&base, SECRET, "push", &format!("p2-{n}"), &body));
        // A job's live log answers 404 until the job exists; its stream replays from the start.
        while http("GET", &format!("{base}/api/jobs/{next_job}"), &[], b"").0 != 200 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut live = subscribe(addr, next_job);
        let seen = wait_marker(&mut live, marker);
        let took = seen - t;
        // Wait for the end, so rounds do not overlap.
        let deadline = Instant::now() + Duration::from_secs(120);
        let v = loop {
            let v = json(&base, &format!("/api/builds/{build}"));
            if !["queued", "preparing", "running"].contains(&v["build"]["state"].as_str().unwrap())
            {
                break v;
            }
            assert!(Instant::now() < deadline, "build {build} did not end: {v}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(v["build"]["state"], "passed", "{v}");
        assert_eq!(
            v["jobs"][0]["id"].as_i64(),
            Some(next_job),
            "job ids are not sequential: {v}"
        );
        next_job += 1;
        (took, v)
    };

    // Warm-up: fetches the mirror and starts the image's first container.
    let (warm, _) = run(0);
    println!(
        "P2 warm-up build (cold mirror): {:.0} ms to the first command's output",
        warm.as_secs_f64() * 1000.0
    );
    let command = "echo P2-$((6*7))-base";
    let _ = docker_baseline(&image, command, "P2-42-base");

    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    let (mut queued, mut prepared, mut claimed) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=ROUNDS {
        baseline.push(docker_baseline(&image, command, "P2-42-base"));
        let (took, v) = run(n);
        ours.push(took);
        let created = v["build"]["created_at"].as_i64().unwrap();
        let prep = v["build"]["started_at"].as_i64().unwrap();
        let job = v["jobs"][0]["started_at"].as_i64().unwrap();
        queued.push(prep - created);
        prepared.push(job - prep);
        claimed.push(took.as_millis() as i64 - (job - created));
    }
    let (p50, p90, max) = (pct(&ours, 0.5), pct(&ours, 0.9), pct(&ours, 1.0));
    let (b50, b90, bmax) = (
        pct(&baseline, 0.5),
        pct(&baseline, 0.9),
        pct(&baseline, 1.0),
    );
    println!(
        "P2 baseline `docker run --rm {image} sh -c '{command}'` to its output, {ROUNDS} runs: p50 {b50:.0} ms, p90 {b90:.0} ms, max {bmax:.0} ms"
    );
    println!(
        "P2 push delivery sent -> first command's output on the live log, {ROUNDS} pushes: p50 {p50:.0} ms, p90 {p90:.0} ms, max {max:.0} ms; p50 ratio {:.2}x baseline, {:+.0} ms (goal p50 <= 500 ms)",
        p50 / b50,
        p50 - b50
    );
    println!(
        "P2 where the time went (medians, from the store's timestamps): accepted -> build claimed {} ms, claimed -> job claimed (fetch, merge, plan) {} ms, job claimed -> output seen (checkout, container, first command, log) {} ms",
        median_ms(&mut queued),
        median_ms(&mut prepared),
        median_ms(&mut claimed)
    );
    println!(
        "P2 machine load average during the run: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    rt.block_on(server.shutdown());
}
