//! The front door of `slipway serve`, attacked as a stranger on the network would: a slow client
//! (slowloris), thousands of live-log streams opened and dropped, streams of jobs that do not
//! exist, `/metrics`, a short webhook secret, and HTTPS for the CLI. Loopback only, every loop
//! bounded in count and time.

use crate::serve::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PIPELINE: &str = "language: minimal\nimage: slipway-test/debian:latest\nscript:\n  - echo started\n  - sleep 300\n";

fn slipway(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_short_or_empty_webhook_secret_stops_the_server_with_how_to_set_one() {
    let tmp = tempfile::tempdir().unwrap();
    for secret in ["", "short-secret"] {
        let config = tmp.path().join("slipway.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:0\"\nwebhook_secret = \"{secret}\"\n"),
        )
        .unwrap();
        let out = slipway(&[
            "serve",
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&format!("is {} bytes", secret.len()))
                && err.contains("at least 16")
                && err.contains("openssl rand -hex 32")
                && err.contains("SLIPWAY_WEBHOOK_SECRET"),
            "{err}"
        );
    }
}

/// RSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn metric(server: &Served, name: &str) -> f64 {
    let (status, text) = http(
        "GET",
        &format!("{}/metrics", server.url()),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Opens a job's event stream and reads until its first chunk arrived.
fn open_stream(port: u16, job: i64) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("started") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    s
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario of hostile clients, read top to bottom"
)]
fn slow_clients_and_dropped_streams_cannot_hold_the_server() {
    let Some((tmp, origin)) = docker_and_origin(PIPELINE) else {
        return;
    };
    let github = FakeGitHub::default();
    let api = github_api(&github);
    let metrics_port = free_port();
    let server = Served::new(
        tmp.path(),
        &api,
        &origin.url(),
        &format!(
            "metrics_listen = \"127.0.0.1:{metrics_port}\"\n[http]\nheader_timeout_seconds = 2\nbody_timeout_seconds = 2\nmax_streams_per_address = 64\n"
        ),
    );
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let build = build_of(server.deliver(
        "push",
        "fd-1",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &sha),
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let v = server.json(&format!("/api/builds/{build}"));
        if let Some(j) = v["jobs"].as_array().and_then(|j| j.first())
            && j["state"] == "running"
            && server
                .job_log(j["id"].as_i64().unwrap())
                .contains("started")
        {
            break j["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "{v}\n{}", server.server_log());
        std::thread::sleep(Duration::from_millis(200));
    };

    // /metrics: not for strangers on the public address; open on the metrics address.
    assert_eq!(server.get("/metrics").0, 404);
    let (status, text) = http(
        "GET",
        &format!("http://127.0.0.1:{metrics_port}/metrics"),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert!(text.contains("slipway_deliveries_accepted_total"), "{text}");

    // A stream of a job that does not exist is 404 at once, and holds nothing.
    let (status, _) = server.get("/jobs/987654/events");
    assert_eq!(status, 404);

    // Slowloris: 20 connections sending their request head one byte at a time are closed
    // within the header timeout (2 s), while other requests are served meanwhile.
    let slow: Vec<std::thread::JoinHandle<Duration>> = (0..20)
        .map(|_| {
            let port = server.port;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let started = Instant::now();
                for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
                    .iter()
                    .cycle()
                {
                    if s.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(20) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                started.elapsed()
            })
        })
        .collect();
    let served = Instant::now();
    while served.elapsed() < Duration::from_secs(2) {
        assert_eq!(server.get("/healthz").0, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in slow {
        let held = t.join().unwrap();
        assert!(
            held < Duration::from_secs(6),
            "a slow client held its connection {held:?}"
        );
    }

    // A body that stops arriving is answered 408 within the body timeout (2 s).
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    s.write_all(
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // 10,000 live-log streams of a running job, opened and dropped: each stream's task and
    // subscription end with its connection, and memory comes back.
    let pid = server.pid();
    for _ in 0..5 {
        drop(open_stream(server.port, job));
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut opened = 0;
    while opened < 10_000 {
        let batch: Vec<TcpStream> = (0..50).map(|_| open_stream(server.port, job)).collect();
        opened += batch.len();
        drop(batch);
        // Wait until the server saw them go, so the per-address cap is never what stops us.
        let deadline = Instant::now() + Duration::from_secs(20);
        while metric(&server, "slipway_live_streams") > 0.0 {
            assert!(Instant::now() < deadline, "streams were not freed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            started.elapsed() < Duration::from_secs(540),
            "{opened} streams"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    assert!(
        after < before + 10 * 1024,
        "RSS grew from {before} KiB to {after} KiB after {opened} streams"
    );
    // The job still streams to a new viewer, and cancelling it ends the stream.
    let s = open_stream(server.port, job);
    drop(s);
    let out = slipway(&[
        "cancel",
        &build.to_string(),
        "--server",
        &server.url(),
        "--token",
        TOKEN,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.wait_final(build, 60)["build"]["state"], "canceled");
}

#[test]
fn the_cli_speaks_https_to_a_server_with_its_own_certificate() {
    if !docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    test_certificates(d);
    let origin = Origin::new(d, PIPELINE);
    let port = free_port();
    let server = Served::with_config(
        d,
        port,
        |port| {
            format!(
                "listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"{SECRET}\"\napi_tokens = [\"{TOKEN}\"]\nworkers = 0\n\
                 tls_cert = \"{}\"\ntls_key = \"{}\"\n[github]\napi_url = \"http://127.0.0.1:9\"\n[[repos]]\nname = \"{REPO}\"\nclone_url = \"{}\"\n",
                d.join("server.pem").display(),
                d.join("server.key").display(),
                origin.url()
            )
        },
        &[],
    );
    let url = format!("https://127.0.0.1:{}", server.port);
    let ca = d.join("ca.pem");
    let out = slipway(&[
        "builds",
        "--server",
        &url,
        "--ca-cert",
        ca.to_str().unwrap(),
        "--token",
        TOKEN,
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = slipway(&["builds", "--server", &url]);
    assert!(
        !out.status.success(),
        "an unknown CA must be refused: {out:?}"
    );
    // Plain HTTP on the TLS port gets nothing.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("ok"),
        "plain HTTP was served"
    );
}
