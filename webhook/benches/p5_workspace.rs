//! P5: preparing a pull request's workspace on a repository of 50,000+ commits with a warm mirror,
//! against the git CLI doing the same work in the same run.
//!
//! The origin is synthetic: `git fast-import` of a generated history (50,000 commits, about
//! 3,000 files, a merge every 50 commits), repacked once and cached under
//! `/var/tmp/slipway-bench/` keyed by a version, so reruns start in seconds. Each run works on a
//! hard-linked copy of it served by `git daemon` on loopback, so both sides fetch through the
//! pack protocol as they would from a Git host.
//!
//! Both sides first fetch a cold mirror (printed too: that is a full clone of a big repository).
//! Then, [`RUNS`] times (bounded by [`BUDGET`]), a new commit is pushed to the pull request's head
//! and each side, in alternating order:
//! - fetches the base branch and `refs/pull/1/head` into its warm bare mirror, merges the head
//!   into the base as a merge commit and reads the pipeline file from it: Slipway with
//!   `Mirrors::prepare`, the CLI with `git fetch`, `git merge-tree --write-tree`, `git commit-tree`,
//!   `git update-ref` and `git cat-file`;
//! - checks the merge out into a fresh directory as a standalone repository, once with the
//!   default `git: depth: 50` and once with `depth: false`: Slipway with `Mirrors::checkout`, the
//!   CLI with `git init` + `git fetch --depth 50` from the mirror + `git checkout`, and with
//!   `git clone --local --no-checkout` (hard links) + `git checkout`.
//!
//! Each timed step starts after `sync`, so that one step's writes are not paid by the next.
//!
//! Printed: the median of each step and total per side and their ratio (goal: Slipway's total
//! ≤ 1.2× the CLI's).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_pipelines::plan::{Context, Git};
use slipway_webhook::event::NewBuild;
use slipway_webhook::git::{Mirrors, Remote};
use slipway_webhook::testing::git;
use slipway_webhook::testing::git_hosts::GitDaemon;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Bump when the generated history changes, so a stale cache is not reused.
const VERSION: &str = "p5-v2";
const COMMITS: usize = 50_000;
const DIRS: usize = 30;
const SUBDIRS: usize = 5;
const FILES: usize = 20;
const LINES: usize = 40;
const RUNS: usize = 8;
const BUDGET: Duration = Duration::from_secs(180);

const WORDS: [&str; 16] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma",
    "omega", "vector", "buffer", "parse", "render", "index",
];

/// Writes a `git fast-import` stream; commits are numbered by their marks, from 1.
struct FastImport<'a, W: std::io::Write> {
    out: &'a mut W,
    /// The last commit's mark: how many commits were written.
    mark: usize,
    /// The committer time of the next commit.
    time: u64,
}

impl<W: std::io::Write> FastImport<'_, W> {
    /// A commit on `branch` whose parents are the marks `parents` (the first is `from`, a
    /// second one is merged) setting `files` to their contents; its mark.
    fn commit(
        &mut self,
        branch: &str,
        message: &str,
        parents: &[usize],
        files: &[(&str, &[u8])],
    ) -> std::io::Result<usize> {
        self.mark += 1;
        let out = &mut *self.out;
        write!(
            out,
            "commit {branch}\nmark :{}\ncommitter Dev <dev@example.invalid> {} +0000\ndata {}\n{message}\n",
            self.mark,
            self.time,
            message.len()
        )?;
        for (parent, word) in parents.iter().zip(["from", "merge"]) {
            writeln!(out, "{word} :{parent}")?;
        }
        for (path, bytes) in files {
            writeln!(out, "M 100644 inline {path}\ndata {}", bytes.len())?;
            out.write_all(bytes)?;
            out.write_all(b"\n")?;
        }
        writeln!(out)?;
        Ok(self.mark)
    }
}

/// Writes the fast-import stream: the initial tree, then single-file changes on `master` with a
/// two-commit side branch merged every 50 commits, then `refs/pull/1/head` forked three commits
/// before the tip, changing files `master` does not touch after the fork.
fn stream(out: &mut impl std::io::Write) -> std::io::Result<usize> {
    // Seeded, so every cache holds the same history.
    let mut rng = fastrand::Rng::with_seed(0x5eed_1234_abcd_0001);
    let mut paths = Vec::new();
    for d in 0..DIRS {
        for s in 0..SUBDIRS {
            for f in 0..FILES {
                paths.push(format!("src/m{d:02}/s{s}/f{f:02}.rs"));
            }
        }
    }
    let mut files: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            (0..LINES)
                .map(|l| {
                    let w: Vec<&str> = (0..5).map(|_| WORDS[rng.usize(..WORDS.len())]).collect();
                    format!("// {p}:{l} {}", w.join(" "))
                })
                .collect()
        })
        .collect();
    let pipeline = "language: shell\nscript: ./build.sh\n";
    let readme = "A synthetic repository for the P5 benchmark.\n";
    let body = |lines: &[String]| lines.join("\n") + "\n";
    let mut git = FastImport {
        out,
        mark: 0,
        time: 1_500_000_000,
    };
    let mut tree: Vec<(&str, Vec<u8>)> = paths
        .iter()
        .zip(&files)
        .map(|(p, lines)| (p.as_str(), body(lines).into_bytes()))
        .collect();
    tree.push((".travis.yml", pipeline.into()));
    tree.push(("README.md", readme.into()));
    let tree: Vec<(&str, &[u8])> = tree.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let mut master = git.commit("refs/heads/master", "initial", &[], &tree)?;
    let fork_at = COMMITS - 3;
    let mut fork = master;
    while git.mark < COMMITS {
        if git.mark == fork_at {
            fork = master;
        }
        git.time += 60;
        let i = rng.usize(..paths.len());
        let l = rng.usize(..LINES);
        files[i][l] = format!("// {}:{l} changed in commit {}", paths[i], git.mark);
        let change = body(&files[i]);
        let change = [(paths[i].as_str(), change.as_bytes())];
        master = if git.mark.is_multiple_of(50) && git.mark + 2 < fork_at {
            // A side branch of one commit, merged back with the merge carrying its change.
            let message = format!("side {}", git.mark + 1);
            let side = git.commit("refs/heads/side", &message, &[master], &change)?;
            git.time += 1;
            let message = format!("Merge side {}", git.mark + 1);
            let merge = git.commit("refs/heads/master", &message, &[master, side], &change)?;
            git.time -= 1;
            merge
        } else {
            let message = format!("change {}", git.mark + 1);
            git.commit("refs/heads/master", &message, &[master], &change)?
        };
    }
    // The pull request: three commits from `fork`, on files master never changes.
    let mut head = fork;
    for n in 0..3 {
        git.time += 60;
        let step = format!("// step {n}\n");
        let notes = format!("{readme}Feature step {n}.\n");
        let files = [
            (format!("feature/step{n}.rs"), step.as_bytes()),
            ("README.md".to_string(), notes.as_bytes()),
        ];
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), *b)).collect();
        let message = format!("feature step {n}");
        head = git.commit("refs/pull/1/head", &message, &[head], &files)?;
    }
    writeln!(
        git.out,
        "reset refs/heads/side\nfrom 0000000000000000000000000000000000000000\n"
    )?;
    Ok(git.mark)
}

/// The cached origin, generated on first use.
fn origin() -> PathBuf {
    let root = Path::new("/var/tmp/slipway-bench").join(VERSION);
    let repo = root.join("origin.git");
    if root.join("complete").exists() {
        return repo;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let started = Instant::now();
    git(
        &root,
        &["init", "-q", "--bare", "-b", "master", "origin.git"],
    );
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet", "--done"])
        .current_dir(&repo)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    let commits = stream(&mut stdin).unwrap();
    writeln!(stdin, "done").unwrap();
    drop(stdin.into_inner().unwrap());
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    let _ = Command::new("git")
        .args(["update-ref", "-d", "refs/heads/side"])
        .current_dir(&repo)
        .status();
    git(&repo, &["repack", "-adfq", "--window=10", "--depth=50"]);
    std::fs::write(root.join("complete"), format!("{commits}\n")).unwrap();
    println!(
        "generated the origin ({commits} commits) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    repo
}

/// Pushes a new commit onto `refs/pull/1/head` in the origin; returns its SHA.
fn push_pr_commit(origin: &Path, n: usize) -> String {
    let repo = git2::Repository::open_bare(origin).unwrap();
    let parent = repo
        .find_reference("refs/pull/1/head")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let blob = repo
        .blob(format!("// revision {n} of the pull request\n").as_bytes())
        .unwrap();
    let tree_id = git2::build::TreeUpdateBuilder::new()
        .upsert("feature/latest.rs", blob, git2::FileMode::Blob)
        .create_updated(&repo, &parent.tree().unwrap())
        .unwrap();
    let tree = repo.find_tree(tree_id).unwrap();
    let sig = git2::Signature::now("Dev", "dev@example.invalid").unwrap();
    let id = repo
        .commit(
            Some("refs/pull/1/head"),
            &sig,
            &sig,
            &format!("feature revision {n}"),
            &tree,
            &[&parent],
        )
        .unwrap();
    id.to_string()
}

fn spec(url: &str, head: &str) -> NewBuild {
    NewBuild {
        repo: "bench/p5".into(),
        clone_url: url.into(),
        head_sha: head.into(),
        head_ref: "refs/pull/1/head".into(),
        base_ref: Some("refs/heads/master".into()),
        supersede_key: None,
        context: Context::default(),
        author: None,
    }
}

const REFSPECS: [&str; 2] = [
    "+refs/heads/master:refs/heads/master",
    "+refs/pull/1/head:refs/pull/1/head",
];

fn cli_fetch(mirror: &Path, url: &str) {
    let mut args = vec!["fetch", "-q", "--no-tags", url];
    args.extend(REFSPECS);
    git(mirror, &args);
}

/// The CLI's merge: a merge commit of the head into the base, kept under a ref; its pipeline file.
fn cli_merge(mirror: &Path, build: usize) -> String {
    let tree = git(
        mirror,
        &[
            "merge-tree",
            "--write-tree",
            "refs/heads/master",
            "refs/pull/1/head",
        ],
    );
    let commit = git(
        mirror,
        &[
            "commit-tree",
            &tree,
            "-p",
            "refs/heads/master",
            "-p",
            "refs/pull/1/head",
            "-m",
            "Merge the pull request",
        ],
    );
    git(
        mirror,
        &[
            "update-ref",
            &format!("refs/slipway/builds/{build}"),
            &commit,
        ],
    );
    let pipeline = git(
        mirror,
        &["cat-file", "blob", &format!("{commit}:.travis.yml")],
    );
    assert!(pipeline.contains("script"));
    commit
}

fn cli_checkout_shallow(mirror: &Path, build: usize, url: &str, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    git(dest, &["init", "-q"]);
    git(dest, &["remote", "add", "origin", url]);
    let src = format!("file://{}", mirror.display());
    git(
        dest,
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--depth=50",
            &src,
            &format!("refs/slipway/builds/{build}"),
        ],
    );
    git(dest, &["checkout", "-q", "--detach", "FETCH_HEAD"]);
}

fn cli_checkout_full(mirror: &Path, commit: &str, dest: &Path) {
    let parent = dest.parent().unwrap();
    git(
        parent,
        &[
            "clone",
            "-q",
            "--local",
            "--no-checkout",
            mirror.to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
    );
    git(dest, &["checkout", "-q", "--detach", commit]);
}

/// Flushes the file system's dirty pages (untimed) so one step's writes and deletions are not
/// paid by the next step.
fn settle() {
    let _ = Command::new("sync").status();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Default)]
struct Steps {
    fetch_merge: Vec<f64>,
    shallow: Vec<f64>,
    full: Vec<f64>,
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name() == ".git" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

/// Bytes of the files under `dir`: a job's workspace is copied into its container whole, `.git`
/// included, so this is what a job carries.
fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += dir_bytes(&e.path());
        } else if t.is_file() {
            n += e.metadata().unwrap().len();
        }
    }
    n
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cached = origin();
    let commits: usize = std::fs::read_to_string(cached.parent().unwrap().join("complete"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let scratch = tempfile::Builder::new()
        .prefix("slipway-p5-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let base = scratch.path();
    let origin = base.join("origin.git");
    git(
        base,
        &[
            "clone",
            "-q",
            "--mirror",
            "--local",
            cached.to_str().unwrap(),
            origin.to_str().unwrap(),
        ],
    );
    let pack_bytes: u64 = std::fs::read_dir(origin.join("objects/pack"))
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let daemon = GitDaemon::start(base).expect("git daemon");
    let url = daemon.url("origin");
    let mirrors = Mirrors::new(base.join("mirrors"));
    let cli_mirror = base.join("cli.git");
    git(
        base,
        &["init", "-q", "--bare", cli_mirror.to_str().unwrap()],
    );
    let settings_shallow = Git::default();
    let settings_full = Git {
        depth: None,
        ..Git::default()
    };
    let remote = Remote::anonymous(&url);
    let never = CancellationToken::new();

    // Cold mirrors: a full clone of the big repository, once per side.
    let head = git(&origin, &["rev-parse", "refs/pull/1/head"]);
    let t = Instant::now();
    let sources = mirrors
        .prepare(0, &spec(&url, &head), &url, None, &never)
        .unwrap();
    let cold_slipway = ms(t.elapsed());
    assert!(sources.pipeline.is_some());
    let t = Instant::now();
    cli_fetch(&cli_mirror, &url);
    let cold_cli = ms(t.elapsed());
    cli_merge(&cli_mirror, 0);

    let mut slipway = Steps::default();
    let mut cli = Steps::default();
    let mut files = 0;
    // `.git` sizes of the last run: Slipway depth 50, CLI depth 50, Slipway depth: false.
    let mut sizes = [0u64; 3];
    let started = Instant::now();
    for run in 1..=RUNS {
        if run > 3 && started.elapsed() > BUDGET {
            break;
        }
        let head = push_pr_commit(&origin, run);
        let mut sides: [(&str, bool); 2] = [("slipway", true), ("cli", false)];
        if run % 2 == 0 {
            sides.reverse();
        }
        for (_, is_slipway) in sides {
            let shallow_dest = base.join(format!("ws-shallow-{run}"));
            let full_dest = base.join(format!("ws-full-{run}"));
            settle();
            let t = Instant::now();
            let commit = if is_slipway {
                let src = mirrors
                    .prepare(run as i64, &spec(&url, &head), &url, None, &never)
                    .unwrap();
                slipway.fetch_merge.push(ms(t.elapsed()));
                src.commit
            } else {
                cli_fetch(&cli_mirror, &url);
                let commit = cli_merge(&cli_mirror, run);
                cli.fetch_merge.push(ms(t.elapsed()));
                commit
            };
            // Both checkouts, in an order that alternates between runs.
            let mut shallow_first = [true, false];
            if run % 4 >= 2 {
                shallow_first.reverse();
            }
            for shallow in shallow_first {
                settle();
                let t = Instant::now();
                match (is_slipway, shallow) {
                    (true, true) => mirrors
                        .checkout(
                            "bench/p5",
                            &commit,
                            &shallow_dest,
                            &settings_shallow,
                            remote,
                            &never,
                        )
                        .unwrap(),
                    (true, false) => mirrors
                        .checkout(
                            "bench/p5",
                            &commit,
                            &full_dest,
                            &settings_full,
                            remote,
                            &never,
                        )
                        .unwrap(),
                    (false, true) => cli_checkout_shallow(&cli_mirror, run, &url, &shallow_dest),
                    (false, false) => cli_checkout_full(&cli_mirror, &commit, &full_dest),
                }
                let side = if is_slipway { &mut slipway } else { &mut cli };
                let times = if shallow {
                    &mut side.shallow
                } else {
                    &mut side.full
                };
                times.push(ms(t.elapsed()));
            }
            let n: usize = git(&shallow_dest, &["rev-list", "--count", "HEAD"])
                .parse()
                .unwrap();
            assert!(n <= 100, "the depth-50 workspace holds {n} commits");
            assert!(shallow_dest.join("feature/latest.rs").exists());
            assert!(full_dest.join("feature/latest.rs").exists());
            if is_slipway {
                files = count_files(&shallow_dest);
                sizes[0] = dir_bytes(&shallow_dest.join(".git"));
                sizes[2] = dir_bytes(&full_dest.join(".git"));
            } else {
                sizes[1] = dir_bytes(&shallow_dest.join(".git"));
            }
            std::fs::remove_dir_all(&shallow_dest).unwrap();
            std::fs::remove_dir_all(&full_dest).unwrap();
        }
    }
    drop(daemon);

    let runs = slipway.fetch_merge.len();
    let s = [
        median(&mut slipway.fetch_merge),
        median(&mut slipway.shallow),
        median(&mut slipway.full),
    ];
    let c = [
        median(&mut cli.fetch_merge),
        median(&mut cli.shallow),
        median(&mut cli.full),
    ];
    println!(
        "P5 PR workspace preparation: origin of {commits} commits, {files} files, {:.1} MB packed, \
         served by git daemon on loopback; warm mirrors, a new PR commit before each of {runs} runs (median)",
        pack_bytes as f64 / 1e6
    );
    println!(
        "{:<34}{:>12}{:>12}{:>9}",
        "", "slipway ms", "git CLI ms", "ratio"
    );
    let row = |name: &str, a: f64, b: f64| {
        println!("{name:<34}{a:>12.1}{b:>12.1}{:>8.2}x", a / b);
    };
    row("fetch + merge + pipeline file", s[0], c[0]);
    row("checkout, depth 50", s[1], c[1]);
    row("checkout, depth: false", s[2], c[2]);
    row("total, depth 50 (default)", s[0] + s[1], c[0] + c[1]);
    row("total, depth: false", s[0] + s[2], c[0] + c[2]);
    row("cold mirror (full fetch)", cold_slipway, cold_cli);
    println!(
        "workspace .git: depth 50 {:.1} MB (git CLI {:.1} MB), depth: false {:.1} MB",
        sizes[0] as f64 / 1e6,
        sizes[1] as f64 / 1e6,
        sizes[2] as f64 / 1e6
    );
    println!(
        "goal: total ≤ 1.2x the git CLI; depth 50: {:.2}x, depth: false: {:.2}x",
        (s[0] + s[1]) / (c[0] + c[1]),
        (s[0] + s[2]) / (c[0] + c[2])
    );
}
