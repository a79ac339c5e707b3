//! P8: what scheduling costs. 50 jobs run at once across 4 workers on one PostgreSQL database:
//! the workers are `slipway worker`'s (`worker_process::start_worker`, in this process, each with
//! its own data directory and store pool, 13 + 13 + 12 + 12 job slots), the jobs are run by the
//! real runner (`ServeRunner` around `slipway_runner::Runner`) on the fake executor, each printing
//! a line every `P8_LINE_MS` (200) ms for `P8_JOB_SECONDS` (30) s. The build (one push, a matrix of
//! 50 jobs) comes from a local bare repository.
//!
//! Measured: this process's CPU time (`/proc/self/stat`, all threads) from the delivery being
//! recorded until every job ended, and over the steady part (from the moment all 50 run until
//! the first ends). Subtracted: what the runner and the fake executor cost by themselves,
//! measured in the same run by running the same 50 jobs through `ServeRunner` directly, with no
//! queue, store or git. What is left is scheduling: claims, preparing the build (fetch, plan),
//! checkouts, lease renewals, storing logs, ending jobs and the build. The database's backends'
//! CPU (same machine here) is printed beside it. Goal: scheduling ≤ 5% of the machine's 2 cores.
//! `SLIPWAY_TEST_POSTGRES` is needed (`scripts/services.sh start`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use bytes::Bytes;
use slipway_pipelines::plan::{Context, EventType, Plan, Stage};
use slipway_runner::fake::{FakeExecutor, FakeRun, marker};
use slipway_runner::{JobEvent, RunnerOptions};
use slipway_webhook::event::NewBuild;
use slipway_webhook::job_runner::{JobRun, JobRunner};
use slipway_webhook::runner_exec::ServeRunner;
use slipway_webhook::store::{Delivery, DeliveryAction, PgStore, PgUrl, Store, StoreSetting};
use slipway_webhook::testing::bench::{
    FreshDatabase, cpu_delta, cpu_of, machine_load, test_postgres,
};
use slipway_webhook::testing::{Origin, git};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const JOBS: usize = 50;
const WORKERS: usize = 4;
const CORES: f64 = 2.0;
const REPO: &str = "bench/p8";
const LIMIT: Duration = Duration::from_secs(300);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pipeline() -> String {
    let envs: String = (1..=JOBS).map(|n| format!("  - N={n}\n")).collect();
    format!("language: shell\nenv:\n{envs}script: make test\n")
}

/// A fake executor whose every job runs one script command printing `lines` lines, one every
/// `every`, and passes.
fn executor(lines: usize, every: Duration) -> Arc<FakeExecutor> {
    FakeExecutor::new(move |spec| {
        let mut output = vec![
            marker(spec, "phase-start script"),
            marker(spec, "cmd-start script 0"),
        ];
        output.extend((0..lines).map(|i| {
            Bytes::from(format!(
                "test {i} of {lines}: ok, a line as long as a test runner's usually is\n"
            ))
        }));
        output.push(marker(spec, "cmd-end script 0 0"));
        output.push(marker(spec, "phase-end script"));
        output.push(marker(spec, "result passed"));
        FakeRun {
            output,
            every,
            ..FakeRun::default()
        }
    })
}

fn job_runner(fake: &Arc<FakeExecutor>, dir: &std::path::Path) -> Arc<dyn JobRunner> {
    Arc::new(ServeRunner::new(fake.clone(), RunnerOptions::default(), None).for_data_dir(dir))
}

fn push(origin: &Origin, sha: &str) -> Delivery {
    let build = NewBuild {
        repo: REPO.into(),
        clone_url: origin.url(),
        head_sha: sha.into(),
        head_ref: "refs/heads/master".into(),
        base_ref: None,
        supersede_key: Some("branch:master".into()),
        context: Context {
            event: EventType::Push,
            branch: "master".into(),
            repo: REPO.into(),
            ..Context::default()
        },
        author: None,
    };
    Delivery {
        id: "p8-push".into(),
        event: "push".into(),
        body_sha256: [8; 32],
        visibility: None,
        action: DeliveryAction::Build {
            build: Box::new(build),
            auto_cancel: true,
        },
    }
}

/// Jobs of the build in each state.
async fn job_states(store: &PgStore) -> (i64, i64) {
    let counts = store.counts().await.unwrap();
    let of = |s: &str| {
        counts
            .jobs
            .iter()
            .filter(|(k, _)| k == s)
            .map(|c| c.1)
            .sum::<i64>()
    };
    let ended = of("passed") + of("failed") + of("errored") + of("canceled") + of("not_run");
    (of("running"), ended)
}

/// CPU use over a window, as a share of the machine.
fn share(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / (wall.as_secs_f64() * CORES)
}

struct QueueRun {
    wall: Duration,
    cpu: Duration,
    db_cpu: Duration,
    /// (wall, CPU) from all jobs running to the first one ending.
    steady: Option<(Duration, Duration)>,
    passed: i64,
}

/// Starts the 4 workers on a fresh database, records the push and waits for every job to end.
async fn queue_run(base: &str, fake: &Arc<FakeExecutor>, root: &std::path::Path) -> QueueRun {
    let db = FreshDatabase::create(base, "slipway_bench_p8").await;
    let origin = Origin::new(&root.join("origin"), &pipeline());
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let mut config = slipway_webhook::Config::parse("").unwrap();
        config.store = StoreSetting::new(db.url.clone());
        config.workers = JOBS / WORKERS + usize::from(w < JOBS % WORKERS);
        let dir = root.join(format!("worker-{w}"));
        let jobs = job_runner(fake, &dir);
        workers.push(
            slipway_webhook::worker_process::start_worker(config, dir, jobs)
                .await
                .unwrap(),
        );
    }
    let store = PgStore::connect(&PgUrl::parse(&db.url).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let db_before = db.backends_cpu().await;
    let cpu_before = cpu_of("self").unwrap();
    let started = Instant::now();
    store.record_delivery(push(&origin, &sha)).await.unwrap();
    let mut all_running: Option<(Instant, Duration)> = None;
    let mut steady = None;
    let passed = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (running, ended) = job_states(&store).await;
        if all_running.is_none() && running == JOBS as i64 {
            all_running = Some((Instant::now(), cpu_of("self").unwrap()));
        }
        if let (Some((at, cpu)), None, true) = (all_running, steady, ended > 0) {
            steady = Some((at.elapsed(), cpu_of("self").unwrap().saturating_sub(cpu)));
        }
        if ended == JOBS as i64 || started.elapsed() > LIMIT {
            break store.counts().await.unwrap();
        }
    };
    let wall = started.elapsed();
    let cpu = cpu_of("self").unwrap().saturating_sub(cpu_before);
    let db_cpu = cpu_delta(&db_before, &db.backends_cpu().await);
    for w in workers {
        w.shutdown().await;
    }
    drop(store);
    db.drop_now().await;
    QueueRun {
        wall,
        cpu,
        db_cpu,
        steady,
        passed: passed
            .jobs
            .iter()
            .find(|(s, _)| s == "passed")
            .map_or(0, |c| c.1),
    }
}

/// The same 50 jobs through `ServeRunner` directly: what the runner and the fake executor cost.
async fn direct_run(fake: &Arc<FakeExecutor>, root: &std::path::Path) -> (Duration, Duration) {
    let ctx = Context {
        event: EventType::Push,
        branch: "master".into(),
        repo: REPO.into(),
        ..Context::default()
    };
    let plan = slipway_pipelines::plan(".travis.yml", pipeline().as_bytes(), &ctx).unwrap();
    let runner = job_runner(fake, &root.join("direct"));
    let cpu_before = cpu_of("self").unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, job) in plan.stages[0].jobs.iter().enumerate() {
        let workspace = root.join(format!("direct/ws-{i}"));
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(workspace.join(".travis.yml"), pipeline()).unwrap();
        std::fs::write(workspace.join("README"), "one\ntwo\nthree\n").unwrap();
        let run = JobRun {
            build_id: 1,
            job_id: i as i64 + 1,
            plan: Plan {
                stages: vec![Stage {
                    name: plan.stages[0].name.clone(),
                    jobs: vec![job.clone()],
                }],
                skipped: vec![],
                ..plan.clone()
            },
            job: job.clone(),
            workspace,
        };
        let runner = runner.clone();
        tasks.push(tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(256);
            let drain = tokio::spawn(async move {
                let mut lines = 0usize;
                while let Some(ev) = rx.recv().await {
                    if let JobEvent::Log(b) = ev {
                        lines += b.iter().filter(|c| **c == b'\n').count();
                    }
                }
                lines
            });
            let outcome = runner.run(run, tx, CancellationToken::new()).await;
            (outcome.result, drain.await.unwrap())
        }));
    }
    for t in tasks {
        let (result, _) = t.await.unwrap();
        assert_eq!(result, slipway_runner::JobResult::Passed);
    }
    (
        started.elapsed(),
        cpu_of("self").unwrap().saturating_sub(cpu_before),
    )
}

fn main() {
    let Some(base) = test_postgres() else {
        eprintln!("P8 skipped: SLIPWAY_TEST_POSTGRES is not set (scripts/services.sh start)");
        return;
    };
    let every = Duration::from_millis(env_u64("P8_LINE_MS", 200));
    let lines = (env_u64("P8_JOB_SECONDS", 30) * 1000 / every.as_millis().max(1) as u64) as usize;
    let rt = slipway_webhook::testing::server_runtime();
    let root = tempfile::tempdir().unwrap();
    let fake = executor(lines, every);
    println!("machine before: {}", machine_load());
    let (queue, direct) = rt.block_on(async {
        let queue = queue_run(&base, &fake, root.path()).await;
        let direct = direct_run(&fake, root.path()).await;
        (queue, direct)
    });
    println!("machine after: {}", machine_load());
    let (d_wall, d_cpu) = direct;
    println!(
        "P8 {JOBS} jobs ({lines} lines each, one every {} ms) across {WORKERS} workers on PostgreSQL: \
         {} passed in {:.1} s; this process used {:.2} s CPU ({:.2}% of {CORES} cores); \
         the database's backends {:.2} s ({:.2}%)",
        every.as_millis(),
        queue.passed,
        queue.wall.as_secs_f64(),
        queue.cpu.as_secs_f64(),
        share(queue.cpu, queue.wall),
        queue.db_cpu.as_secs_f64(),
        share(queue.db_cpu, queue.wall),
    );
    println!(
        "P8 the same jobs through the runner and fake executor alone: {:.1} s, {:.2} s CPU",
        d_wall.as_secs_f64(),
        d_cpu.as_secs_f64()
    );
    let scheduling = queue.cpu.saturating_sub(d_cpu);
    println!(
        "P8 scheduling CPU: {:.2} s over {:.1} s = {:.2}% of {CORES} cores (goal <= 5%)",
        scheduling.as_secs_f64(),
        queue.wall.as_secs_f64(),
        share(scheduling, queue.wall)
    );
    if let Some((wall, cpu)) = queue.steady {
        // The runner's own share over the same stretch, pro rata of its whole run.
        let runner_part = d_cpu.mul_f64(wall.as_secs_f64() / d_wall.as_secs_f64());
        println!(
            "P8 steady ({JOBS} running, {:.1} s): this process {:.2}% of {CORES} cores, scheduling {:.2}%",
            wall.as_secs_f64(),
            share(cpu, wall),
            share(cpu.saturating_sub(runner_part), wall)
        );
    }
    if queue.passed != JOBS as i64 {
        eprintln!("FAILED: {} of {JOBS} jobs passed", queue.passed);
        std::process::exit(1);
    }
}
