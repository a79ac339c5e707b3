//! P3 and P6: webhook ingestion with durable writes, and idle memory.
//!
//! P3 sends signed push deliveries from 64 keep-alive connections on loopback (bounded: 20,000
//! deliveries or 30 s) and prints deliveries/s and latency percentiles, next to the same load
//! against `/healthz` (no write) measured in the same run as the baseline. P6 prints the process's
//! resident memory before and after the server started and idled (workers idle, nothing queued).

use slipway_webhook::executor::ScriptedExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const CONNECTIONS: usize = 64;
const TOTAL: usize = 20_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn one(stream: &mut BufReader<tokio::net::TcpStream>, request: &[u8]) -> u16 {
    stream.get_mut().write_all(request).await.unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.unwrap();
    status
}

async fn load(
    addr: std::net::SocketAddr,
    make: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>,
) -> (f64, Vec<Duration>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (next, make) = (next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= TOTAL || Instant::now() > deadline {
                    return lat;
                }
                let req = make(i);
                let t = Instant::now();
                let status = one(&mut s, &req).await;
                assert!(status == 202 || status == 200, "status {status}");
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

fn pct(v: &[Duration], p: f64) -> f64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let before = rss_kib();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config =
        slipway_webhook::Config::parse("listen = \"127.0.0.1:0\"\nwebhook_secret = \"bench\"\n")
            .unwrap();
    config.workers = 0;
    let server = rt
        .block_on(slipway_webhook::start(
            config,
            tmp.path().to_path_buf(),
            Arc::new(ScriptedExecutor),
        ))
        .unwrap();
    let addr = server.addr;
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib();
    println!(
        "P6 idle: process RSS {:.1} MiB before start, {:.1} MiB with the server idle (+{:.1} MiB; goal total <= 20 MiB)",
        before as f64 / 1024.0,
        idle as f64 / 1024.0,
        (idle - before) as f64 / 1024.0
    );

    let health: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> =
        Arc::new(|_| b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n".to_vec());
    let (base_rate, base_lat) = rt.block_on(load(addr, health));
    let webhook: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> = Arc::new(|i| {
        let body = format!(
            r#"{{"ref":"refs/heads/b{}","after":"{:040x}","deleted":false,"head_commit":{{"message":"m"}},"repository":{{"full_name":"bench/repo","clone_url":"file:///nowhere"}}}}"#,
            i % 50,
            i + 1
        );
        let sig = slipway_webhook::signature::sign(b"bench", body.as_bytes());
        format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: b\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: bench-{i}\r\nX-Hub-Signature-256: {sig}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let (rate, lat) = rt.block_on(load(addr, webhook));
    println!(
        "P3 baseline GET /healthz (store read, no write): {base_rate:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        pct(&base_lat, 0.5),
        pct(&base_lat, 0.99)
    );
    println!(
        "P3 durable webhook ingestion: {} deliveries, {rate:.0}/s ({:.2} of baseline), p50 {:.2} ms, p99 {:.2} ms (goal >= 2000/s, p99 <= 25 ms)",
        lat.len(),
        rate / base_rate,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    rt.block_on(server.shutdown());
}
