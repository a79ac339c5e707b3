//! Mirror upkeep: a warm pull-request preparation on a mirror that 200 fetches have left with
//! 200 packs, against the same mirror after `Mirrors::upkeep` compacted it, in the same run.
//!
//! The origin is generated with `git fast-import` (5,000 commits over 500 files) in a temporary
//! directory. The mirror is fetched cold once, then 200 commits are pushed to master one at a
//! time, each prepared as a push build (one fetch, one pack, one build ref each). Then, [`RUNS`]
//! times: a commit is pushed to master and a pull request (based three commits back) is prepared:
//! fetch of master and the PR head, merge, build ref, pipeline file. The median is printed for
//! the 200-pack mirror, then again after one upkeep pass, with the ratio and the compaction's own
//! time. Each timed step starts after `sync`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_pipelines::plan::Context;
use slipway_webhook::event::NewBuild;
use slipway_webhook::git::{Mirrors, Upkeep};
use slipway_webhook::testing::{Origin, git};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const REPO: &str = "bench/app";
const HISTORY: usize = 5_000;
const FILES: usize = 500;
const PACKS: usize = 200;
const RUNS: usize = 9;

/// Appends `HISTORY` commits to master of `work` with `git fast-import`, each changing one file.
fn generate(work: &Path) {
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(work)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = std::io::BufWriter::new(child.stdin.take().unwrap());
    let parent = git(work, &["rev-parse", "master"]);
    for i in 0..HISTORY {
        let body = format!(
            "file {} revision {i}\n{}\n",
            i % FILES,
            "x".repeat(200 + i % 97)
        );
        writeln!(s, "commit refs/heads/master").unwrap();
        writeln!(
            s,
            "committer B <b@example.invalid> {} +0000",
            1_600_000_000 + i
        )
        .unwrap();
        writeln!(s, "data 9\ncommit {:>2}", i % 100).unwrap();
        if i == 0 {
            writeln!(s, "from {parent}").unwrap();
        }
        writeln!(s, "M 100644 inline src/{}/f{}.txt", i % 25, i % FILES).unwrap();
        writeln!(s, "data {}\n{body}", body.len()).unwrap();
    }
    drop(s);
    assert!(child.wait().unwrap().success());
    git(work, &["reset", "-q", "--hard", "master"]);
    git(work, &["push", "-q", "origin", "master"]);
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn spec(origin: &Origin, head_ref: &str, sha: &str, base: Option<&str>) -> NewBuild {
    NewBuild {
        repo: REPO.into(),
        clone_url: origin.url(),
        head_sha: sha.into(),
        head_ref: head_ref.into(),
        base_ref: base.map(str::to_string),
        supersede_key: None,
        context: Context::default(),
        author: None,
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn packs(mirror: &Path) -> usize {
    std::fs::read_dir(mirror.join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pack")
        })
        .count()
}

/// `RUNS` warm pull-request preparations; returns their median in ms.
fn warm_prepares(origin: &Origin, mirrors: &Mirrors, next_id: &mut i64, pr_head: &str) -> f64 {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        *next_id += 1;
        origin.push_master("bench.txt", &format!("{next_id}\n"));
        let s = spec(
            origin,
            "refs/pull/1/head",
            pr_head,
            Some("refs/heads/master"),
        );
        sync();
        let t = Instant::now();
        mirrors
            .prepare(*next_id, &s, &origin.url(), None, &CancellationToken::new())
            .unwrap();
        times.push(t.elapsed());
    }
    median(times)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let t = Instant::now();
    generate(&origin.work);
    eprintln!(
        "origin: {HISTORY} commits, {FILES} files, generated in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let off = Upkeep {
        max_packs: 0,
        max_loose_refs: 0,
        ..Upkeep::default()
    };
    let mirrors = Mirrors::with_upkeep(tmp.path().join("mirrors"), off);
    let mirror = mirrors.path(REPO);
    let mut id = 0i64;
    let t = Instant::now();
    for i in 0..PACKS {
        let sha = origin.push_master("pile.txt", &format!("{i}\n"));
        id += 1;
        mirrors
            .prepare(
                id,
                &spec(&origin, "refs/heads/master", &sha, None),
                &origin.url(),
                None,
                &CancellationToken::new(),
            )
            .unwrap();
    }
    eprintln!(
        "{PACKS} push preparations in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let pr_head = origin.pull_request(1, "master~3", "feature.txt", "a change\n");
    let before_packs = packs(&mirror);
    let before = warm_prepares(&origin, &mirrors, &mut id, &pr_head);

    let compact = Mirrors::with_upkeep(
        tmp.path().join("mirrors"),
        Upkeep {
            max_packs: 1,
            max_loose_refs: 1,
            ..Upkeep::default()
        },
    );
    sync();
    let t = Instant::now();
    let report = compact.upkeep(REPO).unwrap();
    let upkeep_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(report.repacked && report.refs_packed, "{report:?}");
    let after = warm_prepares(&origin, &mirrors, &mut id, &pr_head);
    println!(
        "warm PR prepare, {before_packs} packs + {} loose refs: {before:.1} ms (median of {RUNS})",
        report.loose_refs_before
    );
    println!(
        "upkeep pass: {upkeep_ms:.0} ms -> {} pack(s), {} loose refs",
        report.packs_after, report.loose_refs_after
    );
    println!("warm PR prepare after upkeep: {after:.1} ms (median of {RUNS})");
    println!("ratio after/before: {:.2}x", after / before);
}
