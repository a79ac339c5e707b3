//! Ingestion of record, on both stores in one run: the real `slipway serve` (this package's
//! binary as built for benchmarks) receives signed push deliveries over loopback from a bounded
//! load generator in this process: `DELIVERIES` (5,000) pre-signed deliveries over `CONCURRENCY`
//! (32) keep-alive connections, each sending its next delivery once the last was answered
//! (closed loop), at most `LIMIT` per round. Each delivery's latency runs from writing it to the
//! end of its 2xx. The deliveries go to 50 branches, so each also supersedes its branch's last
//! build, and the server's reporter sends their statuses to a stand-in for GitHub's API
//! meanwhile; the server's workers are off (builds stay queued).
//!
//! Rounds alternate the stores (SQLite, PostgreSQL, then PostgreSQL, SQLite), each on a fresh data
//! directory and, for PostgreSQL, a database created for the round (`SLIPWAY_TEST_POSTGRES`).
//! After each round the server is stopped and the store is opened: every delivery answered 2xx
//! must be counted there (durable), and the bench exits non-zero when one is missing.
//!
//! Also printed: the server's CPU (`/proc/<pid>/stat`) and, for PostgreSQL, its backends' CPU per
//! delivery, and the machine's load. Goal (PostgreSQL): ≥ 1,000 deliveries/s durable, p99 ≤ 50 ms.
//! `SLIPWAY_INGEST_BIN=PATH` measures another `slipway` binary instead (an earlier one, for a
//! before-and-after in one sitting).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_webhook::store::{PgUrl, SqliteStore, Store, open_store};
use slipway_webhook::testing::FakeGitHub;
use slipway_webhook::testing::bench::{
    FreshDatabase, Load, closed_loop, cpu_delta, cpu_of, machine_load, signed_pushes, test_postgres,
};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DELIVERIES: usize = 5_000;
const WARM_UP: usize = 200;
const CONCURRENCY: usize = 32;
const LIMIT: Duration = Duration::from_secs(60);
const SECRET: &str = "bench-webhook-secret";

/// A `slipway serve` running on `data`, with the store `store` (none: the embedded SQLite).
struct Server {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Server {
    fn start(dir: &Path, github_api: &str, store: Option<&str>) -> Server {
        let config = dir.join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nwebhook_secret = \"{SECRET}\"\nworkers = 0\n\
                 [github]\napi_url = \"{github_api}\"\ntoken = \"bench-token\"\n"
            ),
        )
        .unwrap();
        let bin = std::env::var_os("SLIPWAY_INGEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_slipway").into());
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("SLIPWAY_LOG", "warn")
            .env_remove("SLIPWAY_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = store {
            cmd.arg("--store").arg(url);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let said = match line.split("listening on http://").nth(1) {
                    Some(a) => Ok(a.trim().to_string()),
                    None => Err(line),
                };
                let _ = tx.send(said);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(a)) => {
                    return Server {
                        child,
                        addr: a.parse().unwrap(),
                    };
                }
                Ok(Err(line)) => said.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "slipway serve did not listen within 30 s: {}",
                        said.join(" | ")
                    );
                }
            }
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Stops it as an operator would (SIGTERM) and waits.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid()]).status();
        let _ = self.child.wait();
    }
}

/// One round's figures.
struct Round {
    store: &'static str,
    load: Load,
    server_cpu: Duration,
    db_cpu: Option<Duration>,
    durable: i64,
}

fn round(
    rt: &tokio::runtime::Runtime,
    postgres: Option<&str>,
    github_api: &str,
    n: usize,
) -> Round {
    let tmp = tempfile::tempdir().unwrap();
    let db = postgres.map(|base| rt.block_on(FreshDatabase::create(base, "slipway_bench_ingest")));
    let server = Server::start(tmp.path(), github_api, db.as_ref().map(|d| d.url.as_str()));
    let prefix = format!("r{n}");
    let warm = Arc::new(signed_pushes(
        SECRET.as_bytes(),
        &format!("{prefix}-warm"),
        WARM_UP,
    ));
    let requests = Arc::new(signed_pushes(SECRET.as_bytes(), &prefix, DELIVERIES));
    let warmed = rt.block_on(closed_loop(server.addr, warm, CONCURRENCY, LIMIT));
    assert!(warmed.failures.is_empty(), "warm-up: {:?}", warmed.failures);
    let db_before = match &db {
        Some(d) => rt.block_on(d.backends_cpu()),
        None => Vec::new(),
    };
    let cpu_before = cpu_of(&server.pid()).unwrap();
    let load = rt.block_on(closed_loop(server.addr, requests, CONCURRENCY, LIMIT));
    let server_cpu = cpu_of(&server.pid()).unwrap().saturating_sub(cpu_before);
    let db_cpu = db
        .as_ref()
        .map(|d| cpu_delta(&db_before, &rt.block_on(d.backends_cpu())));
    server.stop();
    let store: Arc<dyn Store> = match &db {
        Some(d) => rt
            .block_on(open_store(Some(&PgUrl::parse(&d.url).unwrap()), tmp.path()))
            .unwrap(),
        None => Arc::new(SqliteStore::open(&tmp.path().join("data/slipway.db")).unwrap()),
    };
    let durable = rt.block_on(store.counts()).unwrap().deliveries;
    drop(store);
    if let Some(d) = db {
        rt.block_on(d.drop_now());
    }
    Round {
        store: if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        load,
        server_cpu,
        db_cpu,
        durable,
    }
}

fn main() {
    let Some(base) = test_postgres() else {
        eprintln!("ingest skipped: SLIPWAY_TEST_POSTGRES is not set (scripts/services.sh start)");
        return;
    };
    let github_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let github = FakeGitHub::default();
    let api = github.start(&github_rt);
    // The load generator: one thread, as a separate client process would have.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(bin) = std::env::var_os("SLIPWAY_INGEST_BIN") {
        println!("binary: {}", bin.to_string_lossy());
    }
    println!("machine before: {}", machine_load());
    let order = [None, Some(base.as_str()), Some(base.as_str()), None];
    let mut rounds = Vec::new();
    for (n, store) in order.into_iter().enumerate() {
        let r = round(&client, store, &api, n);
        let per = |t: Duration| t.as_secs_f64() * 1e6 / r.load.latency.len().max(1) as f64;
        let db = r.db_cpu.map_or(String::new(), |t| {
            format!(", its database's backends {:.0} µs", per(t))
        });
        let goal = if r.store == "PostgreSQL" {
            " (goal >= 1000/s, p99 <= 50 ms)"
        } else {
            ""
        };
        println!(
            "round {}: {}: {} deliveries answered 2xx in {:.2} s, {:.0}/s{goal}; {}; {} not 2xx; \
             {} of {} durable in the store; CPU per delivery: the server {:.0} µs{db}",
            n + 1,
            r.store,
            r.load.latency.len(),
            r.load.elapsed.as_secs_f64(),
            r.load.rate(),
            r.load.summary(),
            r.load.failures.len(),
            r.durable,
            r.load.latency.len() + WARM_UP,
            per(r.server_cpu),
        );
        println!("  machine: {}", machine_load());
        rounds.push(r);
    }
    let best = |name: &str| {
        rounds
            .iter()
            .filter(|r| r.store == name)
            .map(|r| r.load.rate())
            .fold(0.0, f64::max)
    };
    println!(
        "best rates: PostgreSQL {:.0}/s, SQLite {:.0}/s: PostgreSQL / SQLite {:.2}x",
        best("PostgreSQL"),
        best("SQLite"),
        best("PostgreSQL") / best("SQLite")
    );
    println!(
        "statuses the servers sent to the GitHub stand-in: {}",
        github.requests.lock().unwrap().len()
    );
    let lost: Vec<String> = rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            !r.load.failures.is_empty() || r.durable != (r.load.latency.len() + WARM_UP) as i64
        })
        .map(|(i, r)| {
            format!(
                "round {}: {}: {} not 2xx, {} answered 2xx but {} in the store",
                i + 1,
                r.store,
                r.load.failures.len(),
                r.load.latency.len() + WARM_UP,
                r.durable
            )
        })
        .collect();
    if !lost.is_empty() {
        for l in &lost {
            eprintln!("FAILED: {l}");
        }
        std::process::exit(1);
    }
}
