//! P1: the runner's overhead on a short job.
//!
//! A job of 20 trivial commands run by the runner (one container, one script, markers parsed,
//! per-command exit codes recorded, teardown) against `docker run --rm IMAGE sh -c '<the same 20
//! commands>'` in the same process and run. Prints medians, the ratio and the difference.
//! Goal: ≤ 1.10× wall and ≤ +150 ms. Needs the Docker engine and the busybox test image.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_pipelines::plan::{Context, Plan};
use slipway_runner::docker::DockerExecutor;
use slipway_runner::{BuildInfo, CancellationToken, JobResult, Runner, RunnerOptions};

const ROUNDS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let image = std::env::var("SLIPWAY_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "slipway-test/busybox:latest".into());
    let commands: Vec<String> = (1..=20).map(|i| format!("echo step {i}")).collect();
    let yaml = format!(
        "image: \"{image}\"\nlanguage: shell\nscript:\n{}",
        commands
            .iter()
            .map(|c| format!("  - {c}\n"))
            .collect::<String>()
    );
    let ctx = Context {
        branch: "master".into(),
        repo: "bench/p1".into(),
        ..Default::default()
    };
    let plan: Plan = slipway_pipelines::plan(".slipway.yml", yaml.as_bytes(), &ctx).expect("plan");
    let job = plan.stages[0].jobs[0].clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exec = match rt.block_on(DockerExecutor::connect()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("P1 skipped: {e}");
            std::process::exit(i32::from(std::env::var("CI").as_deref() == Ok("true")));
        }
    };
    let runner = Runner::new(exec, RunnerOptions::default());
    let joined = commands.join("; ");
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..ROUNDS + 1 {
        let t = Instant::now();
        let out = std::process::Command::new("docker")
            .args(["run", "--rm", &image, "sh", "-c", &joined])
            .output()
            .expect("docker run");
        let b = t.elapsed();
        assert!(out.status.success());
        let t = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let outcome = rt.block_on(async {
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let build = BuildInfo {
                id: format!("p1r{round}x{}", std::process::id()),
                number: 1,
            };
            let o = runner
                .run_job(&plan, &job, &build, None, tx, CancellationToken::new())
                .await;
            drain.await.unwrap();
            o
        });
        let r = t.elapsed();
        assert_eq!(outcome.result, JobResult::Passed, "{outcome:?}");
        assert_eq!(
            outcome
                .phases
                .iter()
                .map(|p| p.commands.len())
                .sum::<usize>(),
            20
        );
        if round > 0 {
            // Round 0 warms caches on both sides.
            ours.push(r);
            baseline.push(b);
        }
    }
    let (o, b) = (median(ours), median(baseline));
    println!("P1 job of 20 commands, median of {ROUNDS} rounds");
    println!(
        "  docker run --rm (baseline): {:>7.1} ms",
        b.as_secs_f64() * 1e3
    );
    println!(
        "  slipway runner:             {:>7.1} ms",
        o.as_secs_f64() * 1e3
    );
    println!(
        "  ratio {:.3}x (goal <= 1.10x), difference {:+.1} ms (goal <= +150 ms)",
        o.as_secs_f64() / b.as_secs_f64(),
        (o.as_secs_f64() - b.as_secs_f64()) * 1e3
    );
}
