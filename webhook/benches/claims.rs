//! Claims on a shared store: 8 workers take the jobs of a queue of builds, each claim followed by
//! the job's end (`finish_job`, which advances the build), as workers do when jobs are short.
//!
//! PostgreSQL: a database created for the run (`SLIPWAY_TEST_POSTGRES`), each worker with a store
//! of its own (its own connection pool), as 8 `slipway worker` processes would have. SQLite, in
//! the same run for comparison: the 8 workers of one process on one embedded store.
//!
//! Every claim is counted by job id: the bench exits non-zero when a job is claimed twice, when
//! one is never claimed, or when the store does not hold every job passed afterwards. Bounded:
//! `BUILDS` × `JOBS_PER_BUILD` jobs, at most `LIMIT` per store.
//!
//! Goal (PostgreSQL): ≥ 500 claims/s, zero double claims. Prints claims per second, the claim
//! latency (the `claim` call alone), the CPU of this process and of the database's backends per
//! claim, and the machine's load.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_pipelines::plan::{Context, EventType};
use slipway_webhook::event::NewBuild;
use slipway_webhook::store::{
    Delivery, DeliveryAction, JobState, NewJob, PgStore, PgUrl, Prepared, Recorded, SqliteStore,
    Store, Task,
};
use slipway_webhook::testing::bench::{
    FreshDatabase, cpu_delta, cpu_of, machine_load, quantile_ms, test_postgres,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKERS: usize = 8;
const BUILDS: usize = 40;
const JOBS_PER_BUILD: usize = 100;
const LIMIT: Duration = Duration::from_secs(120);
const LEASE_MS: i64 = 300_000;

/// A job's stored plan as the server stores it: a real plan of a small pipeline.
fn plan_json() -> String {
    let ctx = Context {
        branch: "master".into(),
        repo: "bench/claims".into(),
        ..Context::default()
    };
    let pipeline =
        "language: shell\nbefore_install: make deps\nscript:\n  - make test\n  - make lint\n";
    let plan = slipway_pipelines::plan(".travis.yml", pipeline.as_bytes(), &ctx).unwrap();
    serde_json::to_string(&plan).unwrap()
}

fn build(n: usize) -> NewBuild {
    let branch = format!("b{n}");
    NewBuild {
        repo: "bench/claims".into(),
        clone_url: "https://git.invalid/bench/claims.git".into(),
        head_sha: format!("{n:040x}"),
        head_ref: format!("refs/heads/{branch}"),
        base_ref: None,
        supersede_key: Some(format!("branch:{branch}")),
        context: Context {
            event: EventType::Push,
            branch,
            repo: "bench/claims".into(),
            ..Context::default()
        },
        author: None,
    }
}

/// Queues `BUILDS` prepared builds of `JOBS_PER_BUILD` jobs each.
async fn seed(store: &Arc<dyn Store>) {
    let plan = plan_json();
    for n in 0..BUILDS {
        let mut sha = [0u8; 32];
        sha[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let recorded = store
            .record_delivery(Delivery {
                id: format!("seed-{n}"),
                event: "push".into(),
                body_sha256: sha,
                visibility: None,
                action: DeliveryAction::Build {
                    build: Box::new(build(n)),
                    auto_cancel: true,
                },
            })
            .await
            .unwrap();
        assert!(matches!(
            recorded,
            Recorded::Accepted { build: Some(_), .. }
        ));
        let Some(Task::Prepare(b)) = store.claim("seeder", LEASE_MS).await.unwrap() else {
            panic!("build {n} was not there to prepare");
        };
        let jobs = (0..JOBS_PER_BUILD)
            .map(|j| NewJob {
                number: j as i64 + 1,
                stage_index: 0,
                stage: "test".into(),
                name: None,
                allow_failure: false,
                matrix: serde_json::json!({ "env": format!("N={j}") }),
                plan_json: plan.clone(),
            })
            .collect();
        let prepared = Prepared::Jobs {
            merge_sha: format!("{n:040x}"),
            log: String::new(),
            jobs,
            skipped_reason: None,
            notify: None,
        };
        store
            .finish_prepare(b.id, "seeder", prepared)
            .await
            .unwrap();
    }
}

/// What one worker claimed: (job id, attempt) and how long each claim took.
type Claims = Vec<(i64, i64, Duration)>;

/// Claims and ends jobs until the queue is empty or time is up.
async fn work(store: Arc<dyn Store>, owner: String, deadline: Instant) -> Claims {
    let mut claims = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        match store.claim(&owner, LEASE_MS).await.unwrap() {
            Some(Task::Run { job, .. }) => {
                claims.push((job.id, job.attempts, t.elapsed()));
                store
                    .finish_job(job.lease(), JobState::Passed, None)
                    .await
                    .unwrap();
            }
            Some(Task::Prepare(b)) => panic!("build {} is still to prepare", b.id),
            None => break,
        }
    }
    claims
}

/// What a run measured.
struct Run {
    claims: usize,
    elapsed: Duration,
    latency: Vec<Duration>,
    own_cpu: Duration,
    db_cpu: Option<Duration>,
    /// Jobs claimed more than once.
    doubles: usize,
    problems: Vec<String>,
}

/// Runs the workers, one store each (`stores.len() == WORKERS`), and checks every claim.
async fn run(stores: Vec<Arc<dyn Store>>, db: Option<&FreshDatabase>) -> Run {
    let db_before = match db {
        Some(db) => db.backends_cpu().await,
        None => Vec::new(),
    };
    let own_before = cpu_of("self").unwrap();
    let started = Instant::now();
    let deadline = started + LIMIT;
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(work(s.clone(), format!("worker-{i}"), deadline)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let own_cpu = cpu_of("self").unwrap().saturating_sub(own_before);
    let db_cpu = match db {
        Some(db) => Some(cpu_delta(&db_before, &db.backends_cpu().await)),
        None => None,
    };
    let mut problems = Vec::new();
    let mut times: HashMap<i64, Vec<i64>> = HashMap::new();
    for (job, attempt, _) in &all {
        times.entry(*job).or_default().push(*attempt);
    }
    let mut doubles = 0;
    for (job, attempts) in &times {
        if attempts.len() > 1 {
            doubles += 1;
            problems.push(format!(
                "job {job} was claimed {} times: attempts {attempts:?}",
                attempts.len()
            ));
        }
    }
    let total = BUILDS * JOBS_PER_BUILD;
    if times.len() != total {
        problems.push(format!("{} of {total} jobs were claimed", times.len()));
    }
    let counts = stores[0].counts().await.unwrap();
    let passed = counts
        .jobs
        .iter()
        .find(|(s, _)| s == "passed")
        .map_or(0, |c| c.1);
    if passed != total as i64 {
        problems.push(format!(
            "the store holds {passed} of {total} jobs passed: {:?}",
            counts.jobs
        ));
    }
    let mut latency: Vec<Duration> = all.iter().map(|c| c.2).collect();
    latency.sort();
    Run {
        claims: all.len(),
        elapsed,
        latency,
        own_cpu,
        db_cpu,
        doubles,
        problems,
    }
}

fn report(name: &str, r: &Run, goal: &str) {
    let rate = r.claims as f64 / r.elapsed.as_secs_f64();
    let per = |t: Duration| t.as_secs_f64() * 1e6 / r.claims.max(1) as f64;
    println!(
        "{name}: {} claims by {WORKERS} workers in {:.2} s: {rate:.0} claims/s{goal}; claim latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.claims,
        r.elapsed.as_secs_f64(),
        quantile_ms(&r.latency, 0.5),
        quantile_ms(&r.latency, 0.9),
        quantile_ms(&r.latency, 0.99),
        quantile_ms(&r.latency, 1.0),
    );
    let db = r.db_cpu.map_or(String::new(), |t| {
        format!(", the database's backends {:.0} µs", per(t))
    });
    println!(
        "{name}: CPU per claim (with its finish_job): this process {:.0} µs{db}",
        per(r.own_cpu)
    );
    println!("{name}: jobs claimed twice or more: {} (goal 0)", r.doubles);
}

fn main() {
    let rt = slipway_webhook::testing::server_runtime();
    let Some(base) = test_postgres() else {
        eprintln!("claims skipped: SLIPWAY_TEST_POSTGRES is not set (scripts/services.sh start)");
        return;
    };
    println!("machine before: {}", machine_load());
    let mut failed = Vec::new();
    rt.block_on(async {
        let db = FreshDatabase::create(&base, "slipway_bench_claims").await;
        let url = PgUrl::parse(&db.url).unwrap();
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        for _ in 0..WORKERS {
            stores.push(Arc::new(PgStore::connect(&url).await.unwrap()));
        }
        seed(&stores[0]).await;
        let pg = run(stores, Some(&db)).await;
        report("PostgreSQL", &pg, " (goal >= 500 claims/s)");
        failed.extend(pg.problems.iter().map(|p| format!("PostgreSQL: {p}")));
        db.drop_now().await;

        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("slipway.db")).unwrap());
        seed(&sqlite).await;
        let lite = run(vec![sqlite; WORKERS], None).await;
        report("SQLite", &lite, "");
        failed.extend(lite.problems.iter().map(|p| format!("SQLite: {p}")));
        println!(
            "PostgreSQL / SQLite claims/s: {:.2}x",
            (pg.claims as f64 / pg.elapsed.as_secs_f64())
                / (lite.claims as f64 / lite.elapsed.as_secs_f64())
        );
    });
    println!("machine after: {}", machine_load());
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
