//! P3 and P6: webhook ingestion with durable writes, and idle memory.
//!
//! The server runs in-process on its own two-thread runtime (as `slipway serve` does), with its
//! workers off (builds stay queued) and its status reporter sending to a stand-in for GitHub's API
//! on loopback. The load generator runs on a separate thread with pre-signed push deliveries
//! (50 branches, so every delivery also supersedes the branch's previous build). Everything is
//! bounded in count and time and stays on loopback.
//!
//! - P3 throughput: closed loop, 64 keep-alive connections, at most 20,000 deliveries or 30 s.
//! - P3 latency: open loop at a fixed offered rate (2,000 deliveries/s for 10 s): request `i` is
//!   due at `start + i / rate`; its latency runs from that due time to the end of the response, so
//!   a request that waited for a free connection or a late timer counts its wait (no coordinated
//!   omission).
//! - Baseline, in the same run: the same two loads against `GET /healthz` (one store read, no
//!   write).
//! - P6: this process's resident memory with the server idle, and the real `slipway serve`
//!   binary's (`SLIPWAY_BIN`, else `release/slipway` of the bench's target directory) after it answered
//!   `/healthz` and idled, read from `/proc/<pid>/status`.
//!
//! - Access: after P3, `GET /api/builds` of a private repository by a user signed in through the
//!   GitHub stand-in (permission cached after the first read) against an anonymous read of a
//!   public repository, closed loop, two rounds each.
//!
//! Goals: ≥ 2,000 deliveries/s, p99 ≤ 25 ms at 2,000/s (with the body-hash dedupe); idle RSS
//! ≤ 20 MiB; the signed-in read ≥ 0.8× the anonymous one.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_webhook::testing::bench::{self, quantile_ms};
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::sync::{Mutex, mpsc};

const CONNECTIONS: usize = 64;
const CLOSED_TOTAL: usize = 20_000;
const CLOSED_LIMIT: Duration = Duration::from_secs(30);
const OPEN_RATE: f64 = 2_000.0;
const OPEN_SECONDS: f64 = 10.0;
const SECRET: &[u8] = b"bench-webhook-secret";

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn connect(addr: SocketAddr) -> BufReader<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    BufReader::new(s)
}

fn check(status: u16) {
    assert!(status == 202 || status == 200, "status {status}");
}

/// Closed loop: every connection sends its next request as soon as the last one is answered.
/// Returns requests per second and the sorted latencies; every answer must be a success.
async fn closed_loop(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>) -> (f64, Vec<Duration>) {
    let load = bench::closed_loop(addr, requests, CONNECTIONS, CLOSED_LIMIT).await;
    assert!(
        load.failures.is_empty(),
        "answers that were not 2xx: {:?}",
        load.failures
    );
    (load.rate(), load.latency)
}

/// What an open-loop run measured.
struct Open {
    /// Latencies from each request's due time to the end of its response, sorted.
    latency: Vec<Duration>,
    /// How late requests were put on the wire after their due time (client and queueing lag), sorted.
    send_lag: Vec<Duration>,
    /// Requests answered per second over the whole run.
    achieved: f64,
}

/// Open loop: request `i` is due at `start + i / rate`, whatever happened to earlier ones.
async fn open_loop(addr: SocketAddr, requests: Arc<Vec<Vec<u8>>>, rate: f64) -> Open {
    let (tx, rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (rx, requests) = (rx.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = connect(addr).await;
            let mut out = Vec::new();
            loop {
                let Some((i, due)) = rx.lock().await.recv().await else {
                    return out;
                };
                let lag = due.elapsed();
                check(bench::send_one(&mut s, &requests[i]).await.unwrap());
                out.push((due.elapsed(), lag));
            }
        }));
    }
    // Let every connection be established before the clock starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now() + Duration::from_millis(10);
    for i in 0..requests.len() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        tx.send((i, due)).unwrap();
    }
    drop(tx);
    let mut latency = Vec::new();
    let mut send_lag = Vec::new();
    for t in tasks {
        for (l, g) in t.await.unwrap() {
            latency.push(l);
            send_lag.push(g);
        }
    }
    let achieved = latency.len() as f64 / start.elapsed().as_secs_f64();
    latency.sort();
    send_lag.sort();
    Open {
        latency,
        send_lag,
        achieved,
    }
}

fn summary(v: &[Duration]) -> String {
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        quantile_ms(v, 0.5),
        quantile_ms(v, 0.9),
        quantile_ms(v, 0.99),
        quantile_ms(v, 0.999),
        quantile_ms(v, 1.0)
    )
}

/// Pre-signed push deliveries with ids `prefix-0..n`.
fn deliveries(prefix: &str, n: usize) -> Arc<Vec<Vec<u8>>> {
    Arc::new(slipway_webhook::testing::bench::signed_pushes(
        SECRET, prefix, n,
    ))
}

/// `n` copies of `GET path`, with a cookie when given.
fn reads(path: &str, cookie: Option<&str>, n: usize) -> Arc<Vec<Vec<u8>>> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    Arc::new(vec![
        format!(
            "GET {path} HTTP/1.1\r\nHost: b\r\n{cookie}\r\n"
        )
        .into_bytes();
        n
    ])
}

/// Reads of `/api/builds`: a private repository's by a signed-in user whose pull permission is
/// cached, against an anonymous caller's of a public repository, same server, same run.
fn access_reads(
    addr: SocketAddr,
    github: &slipway_webhook::testing::FakeGitHub,
    client: &tokio::runtime::Runtime,
) {
    use slipway_webhook::testing::{FakeOAuth, deliver, sign_in};
    let base = format!("http://{addr}");
    github.oauth(FakeOAuth {
        client_id: "bench-client".into(),
        client_secret: "bench-client-secret".into(),
        redirect_uri: format!("{base}/login/github/callback"),
        next_login: "reader".into(),
        grants: vec![("reader".into(), "bench/private".into(), "pull".into())],
        private: vec!["bench/private".into()],
        ..FakeOAuth::default()
    });
    let secret = std::str::from_utf8(SECRET).unwrap();
    for (i, (repo, private)) in [("bench/public", false), ("bench/private", true)]
        .into_iter()
        .enumerate()
    {
        for n in 0..20 {
            let body = slipway_webhook::testing::push_payload_with(
                repo,
                "file:///nowhere",
                &format!("refs/heads/b{n}"),
                &format!("{:040x}", 1_000_000 + i * 100 + n),
                private,
                "bench read",
            );
            let (status, text) = deliver(&base, secret, "push", &format!("read-{repo}-{n}"), &body);
            assert_eq!(status, 202, "{text}");
        }
    }
    let cookie = sign_in(&base);
    let private = reads(
        "/api/builds?repo=bench%2Fprivate",
        Some(&cookie),
        CLOSED_TOTAL,
    );
    let public = reads("/api/builds?repo=bench%2Fpublic", None, CLOSED_TOTAL);
    // The first read asks GitHub; every read after it uses the cached permission.
    client.block_on(closed_loop(
        addr,
        reads("/api/builds?repo=bench%2Fprivate", Some(&cookie), 10),
    ));
    for round in 1..=2 {
        let (anon, anon_lat) = client.block_on(closed_loop(addr, public.clone()));
        let (authed, authed_lat) = client.block_on(closed_loop(addr, private.clone()));
        println!(
            "access round {round}: anonymous GET /api/builds of a public repository: {anon:.0} req/s ({}); \
             signed-in GET of a private repository, permission cached: {authed:.0} req/s ({}); ratio {:.2}x (goal >= 0.8x)",
            summary(&anon_lat),
            summary(&authed_lat),
            authed / anon
        );
    }
    let asked = github
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/repos/bench/private")
        .count();
    println!("access: GitHub was asked for the permission {asked} time(s)");
}

fn healthz(n: usize) -> Arc<Vec<Vec<u8>>> {
    Arc::new(vec![
        b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n".to_vec();
        n
    ])
}

/// The `slipway` binary to measure, if one was built: `SLIPWAY_BIN`, else the release binary of
/// the target directory this bench was built in.
fn slipway_binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SLIPWAY_BIN") {
        return Some(p.into());
    }
    // This bench runs as `<target>/release/deps/p3_ingest-<hash>`.
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("slipway");
    p.is_file().then_some(p)
}

/// P6 for the real binary: start `slipway serve` on a fresh data directory, wait for `/healthz`,
/// idle, read its RSS, stop it with SIGTERM.
fn binary_idle_rss(github_api: &str) {
    let Some(bin) = slipway_binary() else {
        println!(
            "P6 binary: skipped, no release binary (cargo build --release -p slipway, or set SLIPWAY_BIN)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nwebhook_secret = \"bench-webhook-secret\"\n[github]\napi_url = \"{github_api}\"\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(&bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("SLIPWAY_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    // The server prints its address once it listens.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.split("listening on http://").nth(1) {
                let _ = tx.send(Ok(a.trim().to_string()));
            } else {
                let _ = tx.send(Err(line));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = Vec::new();
    let addr = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(a)) => break Some(a),
            Ok(Err(line)) => said.push(line),
            Err(_) => break None,
        }
    };
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "P6 binary: {} did not start listening within 30 s: {}",
            bin.display(),
            said.join(" | ")
        );
        return;
    };
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let up = rss_kib(&pid);
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(&pid);
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = child.wait();
    println!(
        "P6 binary ({}): RSS {:.1} MiB after /healthz, {:.1} MiB after 5 s idle (peak {hwm}; goal <= 20 MiB)",
        bin.display(),
        mib(up),
        mib(idle)
    );
}

fn main() {
    let before = rss_kib("self");
    let server_rt = slipway_webhook::testing::server_runtime();
    let github_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let github = slipway_webhook::testing::FakeGitHub::default();
    let api = github.start(&github_rt);
    let tmp = tempfile::tempdir().unwrap();
    let mut config = slipway_webhook::Config::parse(
        "listen = \"127.0.0.1:0\"\nwebhook_secret = \"bench-webhook-secret\"\n",
    )
    .unwrap();
    config.workers = 0;
    config.github.api_url = api.clone();
    config.github.token = Some("bench-token".into());
    config.github.web_url = api.clone();
    config.github.client_id = Some("bench-client".into());
    config.github.client_secret = Some("bench-client-secret".into());
    let server = server_rt
        .block_on(slipway_webhook::start(
            config,
            tmp.path().to_path_buf(),
            Arc::new(slipway_webhook::testing::ScriptedJobRunner),
        ))
        .unwrap();
    let addr = server.addr;
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib("self");
    println!(
        "P6 in-process: RSS {:.1} MiB before start, {:.1} MiB with the server idle (+{:.1} MiB)",
        mib(before),
        mib(idle),
        mib(idle - before)
    );

    // The load generator has its own thread, like a separate process would.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let open_n = (OPEN_RATE * OPEN_SECONDS) as usize;
    let (base_rate, base_lat) = client.block_on(closed_loop(addr, healthz(CLOSED_TOTAL)));
    let base_open = client.block_on(open_loop(addr, healthz(open_n), OPEN_RATE));
    let (rate, lat) = client.block_on(closed_loop(addr, deliveries("closed", CLOSED_TOTAL)));
    let open = client.block_on(open_loop(addr, deliveries("open", open_n), OPEN_RATE));

    println!(
        "P3 baseline GET /healthz, closed loop ({CONNECTIONS} connections): {base_rate:.0} req/s; {}",
        summary(&base_lat)
    );
    println!(
        "P3 baseline GET /healthz, open loop at {OPEN_RATE:.0}/s: {}",
        summary(&base_open.latency)
    );
    println!(
        "P3 durable ingestion, closed loop ({CONNECTIONS} connections): {} deliveries, {rate:.0}/s ({:.2}x baseline; goal >= 2000/s); {}",
        lat.len(),
        rate / base_rate,
        summary(&lat)
    );
    println!(
        "P3 durable ingestion, open loop at {OPEN_RATE:.0}/s for {OPEN_SECONDS:.0} s: {} deliveries, {:.0}/s answered; {} (goal p99 <= 25 ms); send lag p99 {:.2} ms",
        open.latency.len(),
        open.achieved,
        summary(&open.latency),
        quantile_ms(&open.send_lag, 0.99)
    );
    println!(
        "P3 machine load average during the run: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let sent = github.requests.lock().unwrap().len();
    println!("P3 statuses the reporter sent to the GitHub stand-in meanwhile: {sent}");
    if std::env::args().all(|a| a != "--no-access") {
        access_reads(addr, &github, &client);
    }
    server_rt.block_on(server.shutdown());
    binary_idle_rss(&api);
}
