//! The build-size cap: how long `slipway lint` and planning take to refuse a 100 × 100 matrix.
//!
//! Measured in one run, each the median of the passes:
//! - `lint` of the file (the `too_many_jobs` error included) and `plan` of it (refused);
//! - baselines: `yaml::load` of the same bytes, and planning the same matrix with the cap lifted
//!   (what the server did before the cap: build all ten thousand jobs).
//!
//! Goal (reported, never asserted): the lint error in under 100 ms.
//! `SLIPWAY_BENCH_PASSES` sets the number of measured passes (default 15).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use slipway_pipelines::plan::Context;
use slipway_pipelines::{PlanOptions, lint, yaml};

#[path = "../tests/it/util/matrix.rs"]
mod matrix;
use matrix::matrix;

fn median(f: impl Fn(), passes: usize) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..passes)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let passes: usize = std::env::var("SLIPWAY_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let bytes = matrix(100, 100).into_bytes();
    let ctx = Context {
        branch: "master".into(),
        repo: "acme/app".into(),
        ..Default::default()
    };
    let load = median(
        || {
            black_box(yaml::load(black_box(&bytes), yaml::Limits::default()).ok());
        },
        passes,
    );
    let linted = median(
        || {
            let d = lint::lint(".travis.yml", black_box(&bytes));
            assert!(d.iter().any(|d| d.code == "too_many_jobs"));
        },
        passes,
    );
    let refused = median(
        || {
            assert!(slipway_pipelines::plan(".travis.yml", black_box(&bytes), &ctx).is_err());
        },
        passes,
    );
    let uncapped = PlanOptions {
        max_jobs: u64::MAX,
        ..PlanOptions::default()
    };
    let planned = median(
        || {
            let p = slipway_pipelines::plan_with(".travis.yml", black_box(&bytes), &ctx, uncapped);
            black_box(p.ok());
        },
        passes.min(5),
    );
    println!("100 × 100 matrix ({} bytes), medians:", bytes.len());
    println!("  yaml::load (baseline)            {:9.2} ms", ms(load));
    println!(
        "  lint, too_many_jobs reported     {:9.2} ms  = {:.2}× YAML load  (goal < 100 ms: {})",
        ms(linted),
        ms(linted) / ms(load),
        if linted < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  plan, refused                    {:9.2} ms  = {:.2}× YAML load",
        ms(refused),
        ms(refused) / ms(load)
    );
    println!(
        "  plan, cap lifted (before)        {:9.2} ms  = {:.0}× the refusal",
        ms(planned),
        ms(planned) / ms(refused)
    );
}
