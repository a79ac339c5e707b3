//! Plans the whole shared corpus: total time per pass and the per-file p99, plus a criterion
//! measurement of one pass. Skips (with a message) when the shared corpus is absent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use slipway_pipelines::plan::{Context, EventType};

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("corpus");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".travis.yml") {
                if let Ok(bytes) = std::fs::read(&p) {
                    files.push((p.display().to_string(), bytes));
                }
            }
        }
    }
    files.sort();
    files
}

fn contexts() -> Vec<Context> {
    let base = Context {
        repo: "owner/repo".to_owned(),
        branch: "master".to_owned(),
        ..Context::default()
    };
    vec![
        base.clone(),
        Context {
            event: EventType::PullRequest,
            pull_request: Some(1),
            ..base.clone()
        },
        Context {
            branch: "v1.0.0".to_owned(),
            tag: Some("v1.0.0".to_owned()),
            ..base
        },
    ]
}

fn plan_all(files: &[(String, Vec<u8>)], ctxs: &[Context]) -> usize {
    let mut jobs = 0;
    for (name, bytes) in files {
        for ctx in ctxs {
            if let Ok(plan) = slipway_pipelines::plan(name, bytes, ctx) {
                jobs += plan.stages.iter().map(|s| s.jobs.len()).sum::<usize>();
            }
        }
    }
    jobs
}

fn bench(c: &mut Criterion) {
    let files = corpus_files();
    if files.is_empty() {
        eprintln!("skipped: shared corpus not found (set SLIPWAY_SHARED)");
        return;
    }
    let ctxs = contexts();
    // Per-file figures, measured directly so the p99 is over files, not over passes.
    let rounds = 20;
    let mut per_file: Vec<Duration> = Vec::with_capacity(files.len());
    let start = Instant::now();
    for (name, bytes) in &files {
        let t = Instant::now();
        for _ in 0..rounds {
            for ctx in &ctxs {
                let _ = std::hint::black_box(slipway_pipelines::plan(name, bytes, ctx));
            }
        }
        per_file.push(t.elapsed() / (rounds * ctxs.len() as u32));
    }
    let total = start.elapsed() / rounds;
    per_file.sort();
    let p = |q: f64| per_file[((per_file.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "corpus: {} files x {} contexts: {:?} per pass; per file p50 {:?}, p99 {:?}, max {:?}",
        files.len(),
        ctxs.len(),
        total,
        p(0.5),
        p(0.99),
        per_file[per_file.len() - 1]
    );
    c.bench_function("plan whole corpus (3 contexts)", |b| {
        b.iter(|| plan_all(std::hint::black_box(&files), &ctxs))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
