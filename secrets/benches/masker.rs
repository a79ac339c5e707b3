//! Masker throughput on 1 GiB of log text with 100 secrets, against a plain copy of the same
//! chunks measured in the same run. Prints MB/s for both and their ratio.
//!
//! `cargo bench -p slipway-secrets --bench masker`; `MASKER_BENCH_MIB` sets the size (default
//! 1024) and `MASKER_BENCH_SHORT_SECRETS` how many of the 100 secrets are 4..=8 characters long
//! (default 0).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use slipway_secrets::{Masker, Secret};

const CHUNK: usize = 32 * 1024;
const SECRETS: usize = 100;

/// 100 random secrets: `short` of them of 4..=8 characters, the others of 16..=48.
fn secrets(rng: &mut fastrand::Rng, short: usize) -> Vec<String> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-";
    (0..SECRETS)
        .map(|i| {
            let len = if i < short {
                4 + rng.usize(..5)
            } else {
                16 + rng.usize(..33)
            };
            (0..len)
                .map(|_| CHARS[rng.usize(..CHARS.len())] as char)
                .collect()
        })
        .collect()
}

/// Build-log-like text: compiler and test lines, with a secret about every 64 KiB.
fn log_text(rng: &mut fastrand::Rng, secrets: &[String], size: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "Compiling",
        "Downloading",
        "test",
        "ok",
        "PASS",
        "src/lib.rs",
        "npm",
        "WARN",
        "deprecated",
        "module",
        "webpack",
        "bundle.js",
        "200",
        "GET",
        "/api/v1/users",
        "docker",
        "Step",
        "RUN",
        "--->",
        "Successfully",
        "built",
        "a1b2c3d4e5f6",
        "0.53s",
        "(cached)",
        "[INFO]",
        "error:",
    ];
    let mut text = Vec::with_capacity(size + 256);
    let mut next_secret = 0;
    while text.len() < size {
        let words = 3 + rng.usize(..10);
        for w in 0..words {
            if w > 0 {
                text.push(b' ');
            }
            text.extend_from_slice(WORDS[rng.usize(..WORDS.len())].as_bytes());
        }
        if text.len() >= next_secret {
            text.extend_from_slice(b" token=");
            text.extend_from_slice(secrets[rng.usize(..secrets.len())].as_bytes());
            next_secret += 64 * 1024;
        }
        text.push(b'\n');
    }
    text.truncate(size);
    text
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours means "not me".
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "masker")
    {
        return;
    }
    let total_mib: usize = std::env::var("MASKER_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    // Short secrets slow the masker's filter down (see docs/secrets.md).
    let short: usize = std::env::var("MASKER_BENCH_SHORT_SECRETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Seeded, so every run measures the same bytes.
    let mut rng = fastrand::Rng::with_seed(0x5eed_1e55_c0ff_ee11);
    let secrets = secrets(&mut rng, short.min(SECRETS));
    // 64 MiB of distinct text, fed again and again until the total is reached.
    let block = log_text(&mut rng, &secrets, 64 << 20);
    let total = total_mib << 20;
    let rounds = total.div_ceil(block.len());

    let (mut masker, warnings) = Masker::new(secrets.iter().cloned().map(Secret::new));
    assert!(warnings.is_empty());
    let mut out = Vec::with_capacity(2 * CHUNK);

    // Warm up once (page faults, caches, the automaton's first use), checking that every
    // planted secret is masked.
    let mut masks = 0usize;
    for chunk in block.chunks(CHUNK) {
        out.clear();
        masker.push(chunk, &mut out);
        masks += out.windows(8).filter(|w| *w == b"[secure]").count();
    }
    masker.finish(&mut out);
    assert!(
        masks >= block.len() / (64 * 1024),
        "secrets were masked: {masks}"
    );

    let start = Instant::now();
    let mut copied = 0usize;
    for _ in 0..rounds {
        for chunk in block.chunks(CHUNK) {
            out.clear();
            out.extend_from_slice(black_box(chunk));
            copied += black_box(&out).len();
        }
    }
    let copy_time = start.elapsed();

    let start = Instant::now();
    let mut masked_out = 0usize;
    for _ in 0..rounds {
        for chunk in block.chunks(CHUNK) {
            out.clear();
            masker.push(black_box(chunk), &mut out);
            masked_out += out.len();
        }
    }
    out.clear();
    masker.finish(&mut out);
    let mask_time = start.elapsed();

    let input = rounds * block.len();
    let copy = mb_per_s(input, copy_time);
    let mask = mb_per_s(input, mask_time);
    println!(
        "masker: {} MiB in {} KiB chunks, {} secrets ({} of 4..=8 chars, the rest 16..=48; max pattern {} bytes), {} masked per 64 MiB",
        input >> 20,
        CHUNK >> 10,
        secrets.len(),
        short.min(SECRETS),
        masker.max_len(),
        masks
    );
    println!("  baseline (copy of the same chunks): {copy:>9.0} MB/s ({copied} bytes)");
    println!("  masker:                             {mask:>9.0} MB/s ({masked_out} bytes out)");
    println!("  masker / baseline:                  {:>9.3}", mask / copy);
}
