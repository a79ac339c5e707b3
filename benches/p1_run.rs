//! P1 of record: the job start overhead a user sees.
//!
//! `slipway run` (this package's binary, as built for benchmarks) on a git repository whose
//! pipeline is one job of 20 trivial commands, against `docker run --rm IMAGE sh -c '<the same 20
//! commands>'`, in pairs within one run (the order alternates, so a machine getting busier
//! favours neither side). Prints both medians, the ratio and the added milliseconds, the spread
//! of the pairs' ratios (how noisy the machine was), and the engine's own event times (`docker
//! events`) of one more pair, from each command's start. Goal: ≤ 1.10× and ≤ +50 ms.
//! Needs the Docker engine and the busybox test image (`scripts/test-images.sh`).
//! `SLIPWAY_P1_BIN=PATH` measures another `slipway` binary instead; `SLIPWAY_P1_BASE_BIN=PATH` adds
//! an earlier binary as a third side of each round (a before-and-after in one sitting).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use slipway_webhook::testing::bench::load_average;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PAIRS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn timed(cmd: &mut Command, what: &str) -> f64 {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

fn engine_ready() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    if !engine_ready() {
        eprintln!("P1 skipped: no Docker engine answers `docker version`");
        std::process::exit(i32::from(std::env::var("CI").as_deref() == Ok("true")));
    }
    let image = std::env::var("SLIPWAY_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "slipway-test/busybox:latest".into());
    let commands: Vec<String> = (1..=20).map(|i| format!("echo step {i}")).collect();
    let repo = tempfile::tempdir().expect("temp dir");
    let dir = repo.path();
    git(dir, &["init", "-q", "-b", "master"]);
    std::fs::write(
        dir.join(".slipway.yml"),
        format!(
            "image: \"{image}\"\nlanguage: shell\nscript:\n{}",
            commands
                .iter()
                .map(|c| format!("  - {c}\n"))
                .collect::<String>()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("README"), "A repository for P1.\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "P1"]);
    let home = tempfile::tempdir().expect("temp dir");
    let bin =
        std::env::var_os("SLIPWAY_P1_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_slipway").into());
    let earlier = std::env::var_os("SLIPWAY_P1_BASE_BIN");
    let slipway_bin = |bin: &std::ffi::OsStr| {
        let mut c = Command::new(bin);
        c.arg("run")
            .arg(dir)
            .args(["--repo", "bench/p1"])
            .env("HOME", home.path())
            .env_remove("RUST_LOG");
        c
    };
    let slipway = || slipway_bin(&bin);
    let joined = commands.join("; ");
    let docker = || {
        let mut c = Command::new("docker");
        c.args(["run", "--rm", &image, "sh", "-c", &joined]);
        c
    };
    // One of each first: images, page cache and the engine warm up on both sides.
    timed(&mut docker(), "docker run");
    timed(&mut slipway(), "slipway run");

    if let Some(earlier) = &earlier {
        timed(&mut slipway_bin(earlier), "earlier slipway run");
    }

    let load_before = load_average();
    let (mut ours, mut base, mut ratios, mut before) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        // The sides in an order that rotates: a machine getting busier favours none of them.
        let sides = if earlier.is_some() { 3 } else { 2 };
        let (mut o, mut b) = (0.0, 0.0);
        for k in 0..sides {
            match (pair + k) % sides {
                0 => b = timed(&mut docker(), "docker run"),
                1 => o = timed(&mut slipway(), "slipway run"),
                _ => before.push(timed(
                    &mut slipway_bin(earlier.as_deref().expect("a third side")),
                    "earlier slipway run",
                )),
            }
        }
        ours.push(o);
        base.push(b);
        ratios.push(o / b);
    }
    let load_after = load_average();
    let (o, b) = (median(ours.clone()), median(base.clone()));
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!("P1: `slipway run` of a 20-command job vs `docker run --rm`, {PAIRS} pairs");
    println!("  docker run --rm (baseline): median {b:>7.1} ms");
    println!("  slipway run:                median {o:>7.1} ms");
    println!(
        "  ratio {:.3}x (goal <= 1.10x), added {:+.1} ms (goal <= +50 ms)",
        o / b,
        o - b
    );
    println!(
        "  pair ratios: min {:.3}x, median {:.3}x, max {:.3}x; load average {load_before} before, {load_after} after",
        sorted[0],
        median(ratios),
        sorted[sorted.len() - 1]
    );
    if !before.is_empty() {
        let e = median(before);
        println!(
            "  earlier slipway run (SLIPWAY_P1_BASE_BIN): median {e:>7.1} ms, ratio {:.3}x, added {:+.1} ms; this one against it {:.3}x",
            e / b,
            e - b,
            o / e
        );
    }
    let name = format!("slipway-p1-baseline-{}", std::process::id());
    events(
        Command::new("docker").args(["run", "--rm", "--name", &name, &image, "sh", "-c", &joined]),
        "docker run",
        Some(&name),
    );
    events(&mut slipway(), "slipway run", None);
}

/// Runs `cmd` once with the engine's event stream open and prints the time of each event of its
/// own containers (other processes share the engine) from the command's start: where the time
/// goes. `name` is the container's name when the command sets one; otherwise its containers are
/// those whose `dev.slipway.owner` label names the command's process.
fn events(cmd: &mut Command, what: &str, name: Option<&str>) {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let owner = format!(":{}:", child.id());
    let status = child.wait_with_output().expect(what).status;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(status.success(), "{what} failed");
    let until = since + started.elapsed() + Duration::from_millis(50);
    let out = Command::new("docker")
        .args([
            "events",
            "--filter",
            "type=container",
            "--since",
            &format!("{}.{:09}", since.as_secs(), since.subsec_nanos()),
            "--until",
            &format!("{}.{:09}", until.as_secs(), until.subsec_nanos()),
            "--format",
            "{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes \"dev.slipway.owner\"}}",
        ])
        .output()
        .expect("docker events");
    let t0 = since.as_nanos() as i128;
    let line: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let t: i128 = parts.next()?.parse().ok()?;
            let action = parts.next()?;
            let (container, label) = (parts.next()?, parts.next().unwrap_or(""));
            let ours = match name {
                Some(n) => container == n,
                None => label.contains(&owner),
            };
            let action = action.split(':').next().unwrap_or(action);
            ours.then(|| format!("{action} {}", (t - t0) / 1_000_000))
        })
        .collect();
    println!(
        "  {what} ({ms:.0} ms), engine events in ms: {}",
        line.join(", ")
    );
}
