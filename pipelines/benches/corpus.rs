//! Lint + plan of the whole shared corpus, the figure the performance goal is stated in.
//!
//! The corpus is every `*.travis.yml` in `corpus/travis/` plus every `.travis.yml` under
//! `corpus/course/`, read from `$SLIPWAY_SHARED` (else `../shared` next to the workspace) when the
//! bench starts. The measured unit of work for one file is what `slipway lint` then `slipway plan`
//! do for a push to `master`: `lint::lint` once, then `plan` in the `push_master` context of
//! `corpus/expected` (each loads the bytes itself, as the two commands do).
//!
//! Printed, each the median over the measured passes (after warm-up passes):
//! - the total for the whole corpus per pass, and the per-file p50, p99 and max;
//! - the same figures for a baseline measured in the same run, `yaml::load` of the same bytes,
//!   and the ratio "lint+plan = X× YAML load" (ratios survive a slower or busier machine);
//! - a secondary line: lint once plus a plan in all four contexts of `corpus/expected`.
//!
//! `SLIPWAY_BENCH_PASSES` sets the number of measured passes (default 30). The goal
//! (whole corpus lint+plan within 100 ms) is reported, never asserted.
//! Skips with a message when the shared corpus is absent.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slipway_pipelines::plan::{Context, EventType};
use slipway_pipelines::{lint, yaml};

/// One corpus file: its display name, the bytes, and the repository slug its contexts use.
struct File {
    name: String,
    bytes: Vec<u8>,
    repo: String,
}

fn shared_dir() -> PathBuf {
    std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// `corpus/travis/*.travis.yml` (named `owner__name.travis.yml`) and `corpus/course/**/.travis.yml`.
fn corpus_files(shared: &Path) -> Vec<File> {
    let mut files = Vec::new();
    let travis = shared.join("corpus/travis");
    for entry in std::fs::read_dir(&travis).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(stem) = name.strip_suffix(".travis.yml") {
            let repo = stem.replacen("__", "/", 1);
            if let Ok(bytes) = std::fs::read(&path) {
                files.push(File {
                    name: format!("travis/{name}"),
                    bytes,
                    repo,
                });
            }
        }
    }
    let course = shared.join("corpus/course");
    let mut stack = vec![course.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == ".travis.yml")
                && let Ok(bytes) = std::fs::read(&path)
            {
                let rel = path.strip_prefix(&course).unwrap_or(&path).display();
                files.push(File {
                    name: format!("course/{rel}"),
                    bytes,
                    repo: "owner/repo".to_owned(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// The four contexts of `corpus/expected`, in its order: push_master, pr_master, push_other, tag.
fn contexts(repo: &str) -> [Context; 4] {
    let push = |branch: &str| Context {
        event: EventType::Push,
        branch: branch.to_owned(),
        repo: repo.to_owned(),
        sender: "oracle-user".to_owned(),
        commit_message: "Oracle test commit".to_owned(),
        ..Context::default()
    };
    let name = repo.rsplit('/').next().unwrap_or(repo);
    [
        push("master"),
        Context {
            event: EventType::PullRequest,
            pull_request: Some(1),
            head_repo: Some(format!("contributor/{name}")),
            head_branch: Some("feature-x".to_owned()),
            ..push("master")
        },
        push("feature-x"),
        Context {
            tag: Some("v1.0.0".to_owned()),
            ..push("v1.0.0")
        },
    ]
}

/// The measured unit for one file: lint once, then plan in each of `ctxs`.
fn lint_and_plan(file: &File, ctxs: &[Context]) {
    black_box(lint::lint(&file.name, black_box(&file.bytes)));
    for ctx in ctxs {
        black_box(slipway_pipelines::plan(&file.name, black_box(&file.bytes), ctx).ok());
    }
}

fn yaml_load(file: &File) {
    black_box(yaml::load(black_box(&file.bytes), yaml::Limits::default()).ok());
}

/// Per-file times of every measured pass of one workload.
struct Samples {
    /// `per_pass[pass][file]`.
    per_pass: Vec<Vec<Duration>>,
}

impl Samples {
    fn new() -> Self {
        Samples {
            per_pass: Vec::new(),
        }
    }

    /// Runs one pass over the corpus, timing each file; records it when `keep`.
    fn pass(&mut self, files: &[File], keep: bool, mut work: impl FnMut(usize, &File)) {
        let times = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let t = Instant::now();
                work(i, f);
                t.elapsed()
            })
            .collect();
        if keep {
            self.per_pass.push(times);
        }
    }

    /// Median over passes of the whole-corpus total.
    fn total(&self) -> Duration {
        median(self.per_pass.iter().map(|p| p.iter().sum()).collect())
    }

    /// Each file's median over passes, sorted ascending.
    fn per_file(&self) -> Vec<Duration> {
        let files = self.per_pass.first().map_or(0, Vec::len);
        let mut out: Vec<Duration> = (0..files)
            .map(|i| median(self.per_pass.iter().map(|p| p[i]).collect()))
            .collect();
        out.sort();
        out
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The value at quantile `q` of an ascending list (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn line(label: &str, s: &Samples) -> String {
    let per_file = s.per_file();
    format!(
        "{label}: {} per pass; per file p50 {}, p99 {}, max {}",
        ms(s.total()),
        ms(quantile(&per_file, 0.5)),
        ms(quantile(&per_file, 0.99)),
        ms(per_file[per_file.len() - 1]),
    )
}

fn main() {
    let shared = shared_dir();
    let files = corpus_files(&shared);
    if files.is_empty() {
        println!(
            "skipped: shared corpus not found at {} (set SLIPWAY_SHARED)",
            shared.display()
        );
        return;
    }
    let passes: usize = std::env::var("SLIPWAY_BENCH_PASSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
        .max(1);
    let warm_up = 3;
    let ctxs: Vec<[Context; 4]> = files.iter().map(|f| contexts(&f.repo)).collect();

    let mut load = Samples::new();
    let mut push_master = Samples::new();
    let mut all_four = Samples::new();
    // Interleaved passes, so a change in machine load touches all three workloads alike.
    for pass in 0..warm_up + passes {
        let keep = pass >= warm_up;
        load.pass(&files, keep, |_, f| yaml_load(f));
        push_master.pass(&files, keep, |i, f| lint_and_plan(f, &ctxs[i][..1]));
        all_four.pass(&files, keep, |i, f| lint_and_plan(f, &ctxs[i]));
    }

    let travis = files
        .iter()
        .filter(|f| f.name.starts_with("travis/"))
        .count();
    let ratio = |s: &Samples| s.total().as_secs_f64() / load.total().as_secs_f64();
    println!(
        "corpus: {} files ({travis} travis + {} course); medians of {passes} passes after {warm_up} warm-up",
        files.len(),
        files.len() - travis
    );
    println!("{}", line("lint+plan (push_master)", &push_master));
    println!("{}", line("baseline yaml::load     ", &load));
    println!("ratio: lint+plan = {:.1}x YAML load", ratio(&push_master));
    println!(
        "{} ({:.1}x YAML load)",
        line("lint + plan in all 4 contexts", &all_four),
        ratio(&all_four)
    );
    let goal = Duration::from_millis(100);
    println!(
        "goal: whole corpus lint+plan <= {} : {}",
        ms(goal),
        if push_master.total() <= goal {
            "met"
        } else {
            "NOT met"
        }
    );
}
