//! Live log across servers: how long a line printed under one server takes to reach a viewer
//! connected to another, both on one PostgreSQL database.
//!
//! Two servers run in-process, each on its own two-thread runtime (as two `slipway serve`
//! processes would): `runs` with workers, `views` with none. A build of `JOBS` jobs is delivered
//! to `views` and run by `runs`'s workers through a job runner that, once every viewer is
//! connected, prints `LINES` lines per job, one every `EVERY`, noting when each was printed.
//! Each job has a viewer on `views` (the path measured: store, NOTIFY, read back) and one on
//! `runs` (the baseline in the same run: the in-memory path of the server running the job). A
//! line's latency runs from its printing to its event read off the viewer's connection.
//! Bounded: `JOBS` × `LINES` lines, each run within a minute; loopback only.
//!
//! Goal: p99 ≤ 1 s on the other server. Needs `SLIPWAY_TEST_POSTGRES` (`scripts/services.sh`);
//! `SLIPWAY_LIVE_JOBS`, `SLIPWAY_LIVE_LINES`, `SLIPWAY_LIVE_EVERY_MS` change the load.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use async_trait::async_trait;
use slipway_runner::{JobEvent, JobOutcome, JobResult};
use slipway_webhook::job_runner::{JobRun, JobRunner};
use slipway_webhook::store::{JobState, StoreSetting};
use slipway_webhook::testing::bench::{cpu_of, load_average, report_latencies};
use slipway_webhook::testing::{
    LogViewer, Origin, build_of, deliver, git, push_payload, server_runtime,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-webhook-secret-live";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints numbered lines once `go` is set, noting when each was printed.
struct Ticker {
    go: Arc<AtomicBool>,
    lines: u64,
    every: Duration,
    printed: Arc<Mutex<HashMap<(i64, u64), Instant>>>,
}

#[async_trait]
impl JobRunner for Ticker {
    async fn run(
        &self,
        run: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        while !self.go.load(Ordering::SeqCst) && !cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut tick = tokio::time::interval(self.every);
        for i in 0..self.lines {
            tick.tick().await;
            let line = format!("tick {i} of job {}\n", run.job_id);
            self.printed
                .lock()
                .unwrap()
                .insert((run.job_id, i), Instant::now());
            let _ = events.send(JobEvent::Log(line.into_bytes().into())).await;
        }
        JobOutcome::ended(&run.job, JobResult::Passed, None)
    }
}

/// A fresh schema in the database at `base`, and a URL whose connections use it.
fn fresh_schema(rt: &tokio::runtime::Runtime, base: &str) -> (String, String) {
    let schema = format!("bench_live_{}", std::process::id());
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .expect("the database at SLIPWAY_TEST_POSTGRES");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    (schema, url)
}

fn main() {
    let Ok(base) = std::env::var("SLIPWAY_TEST_POSTGRES") else {
        eprintln!("SLIPWAY_TEST_POSTGRES is not set: run scripts/services.sh start");
        std::process::exit(2);
    };
    let jobs = setting("SLIPWAY_LIVE_JOBS", 4);
    let lines = setting("SLIPWAY_LIVE_LINES", 200);
    let every = Duration::from_millis(setting("SLIPWAY_LIVE_EVERY_MS", 20));
    let (runs_rt, views_rt) = (server_runtime(), server_runtime());
    let (schema, url) = fresh_schema(&views_rt, &base);
    let tmp = tempfile::tempdir().unwrap();
    let matrix: String = (0..jobs).map(|n| format!("  - N={n}\n")).collect();
    let origin = Origin::new(tmp.path(), &format!("env:\n{matrix}script:\n  - tick\n"));

    let go = Arc::new(AtomicBool::new(false));
    let printed = Arc::new(Mutex::new(HashMap::new()));
    let ticker = Arc::new(Ticker {
        go: go.clone(),
        lines,
        every,
        printed: printed.clone(),
    });
    let server = |rt: &tokio::runtime::Runtime, name: &str, workers: usize| {
        let mut c = slipway_webhook::Config::parse(&format!(
            "listen = \"127.0.0.1:0\"\nwebhook_secret = \"{SECRET}\"\n"
        ))
        .unwrap();
        c.store = StoreSetting::new(url.clone());
        c.workers = workers;
        rt.block_on(slipway_webhook::start(
            c,
            tmp.path().join(name),
            ticker.clone(),
        ))
        .unwrap()
    };
    let runs = server(&runs_rt, "runs", jobs as usize);
    let views = server(&views_rt, "views", 0);
    let (runs_url, views_url) = (
        format!("http://{}", runs.addr),
        format!("http://{}", views.addr),
    );

    let sha = git(&origin.work, &["rev-parse", "master"]);
    let body = push_payload("acme/app", &origin.url(), "refs/heads/master", &sha);
    let build: i64 = build_of(deliver(&views_url, SECRET, "push", "live-bench", &body));
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_ids = loop {
        let (_, js) = views_rt
            .block_on(views.store.build(build))
            .unwrap()
            .unwrap();
        let running: Vec<i64> = js
            .iter()
            .filter(|j| j.state == JobState::Running)
            .map(|j| j.id)
            .collect();
        if running.len() == jobs as usize {
            break running;
        }
        assert!(Instant::now() < deadline, "the jobs never all ran: {js:?}");
        std::thread::sleep(Duration::from_millis(50));
    };

    // One viewer per job on each server, each on a thread of its own.
    let mut viewers = Vec::new();
    for &job in &job_ids {
        for (side, url) in [("other", &views_url), ("same", &runs_url)] {
            let viewer = LogViewer::open(url, job, None).unwrap();
            viewers.push((side, job, viewer));
        }
    }
    let cpu_before = cpu_of("self").unwrap_or_default();
    let started = Instant::now();
    go.store(true, Ordering::SeqCst);
    let reading: Vec<_> = viewers
        .into_iter()
        .map(|(side, job, mut v)| {
            std::thread::spawn(move || {
                assert!(
                    v.read_to_end(Duration::from_secs(60)),
                    "{side} {job}: no end"
                );
                (side, job, v)
            })
        })
        .collect();
    let mut latencies: HashMap<&str, Vec<f64>> = HashMap::new();
    // Each line's arrival on each side, to take the other server's extra time line by line.
    let mut arrivals: HashMap<(&str, i64, u64), Instant> = HashMap::new();
    for r in reading {
        let (side, job, v) = r.join().unwrap();
        let printed = printed.lock().unwrap();
        let mut seen = 0;
        let mut last = 0;
        for c in &v.chunks {
            assert_eq!(
                c.seq,
                last + 1,
                "{side} viewer of job {job}: a gap or a repeat"
            );
            last = c.seq;
            let Some(i) = c
                .data
                .strip_prefix("tick ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let at = printed[&(job, i)];
            arrivals.insert((side, job, i), c.at);
            latencies
                .entry(side)
                .or_default()
                .push(c.at.saturating_duration_since(at).as_secs_f64() * 1e3);
            seen += 1;
        }
        assert_eq!(seen, lines, "{side} viewer of job {job}: lines missing");
    }
    let wall = started.elapsed();
    let cpu = cpu_of("self")
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    println!(
        "live log across servers on PostgreSQL: {jobs} jobs x {lines} lines, one every {} ms per job \
         ({:.0} lines/s in all); wall {:.1} s, this process's CPU (both servers, the viewers) {:.0} ms \
         user+sys; load {}",
        every.as_millis(),
        jobs as f64 / every.as_secs_f64(),
        wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e3,
        load_average()
    );
    let same = report_latencies(
        "  baseline, viewer on the server running the job",
        latencies.remove("same").unwrap_or_default(),
    );
    let other = report_latencies(
        "  viewer on the other server",
        latencies.remove("other").unwrap_or_default(),
    );
    let extra: Vec<f64> = arrivals
        .iter()
        .filter(|((side, ..), _)| *side == "other")
        .filter_map(|((_, job, i), at)| {
            let same = arrivals.get(&("same", *job, *i))?;
            Some((at.saturating_duration_since(*same)).as_secs_f64() * 1e3)
        })
        .collect();
    report_latencies("  the other server's extra time, line by line", extra);
    println!(
        "  ratio of the p99s: {:.1}x; goal p99 <= 1000 ms on the other server: {}",
        other / same.max(0.001),
        if other <= 1000.0 { "met" } else { "MISSED" }
    );
    views_rt.block_on(views.shutdown());
    runs_rt.block_on(runs.shutdown());
    views_rt.block_on(async {
        if let Ok((client, conn)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await;
        }
    });
}
