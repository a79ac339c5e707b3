//! Lint agrees with Travis CI's own config processor on the shared corpus.
//!
//! For every `.travis.yml` in `corpus/travis/` and `corpus/course/`, `corpus/expected/*.jsonl` records
//! what travis-yml reported. Lint must flag errors for exactly the files Travis rejects, and report
//! the same warnings (code + key path) for at least 98% of files; each remaining difference is pinned
//! below by a named test that says who is right and why.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use slipway_pipelines::diagnostic::{Diagnostic, Severity};
use slipway_pipelines::lint::{TRAVIS_CODES, lint};

/// The shared corpus, or `None` (after saying so) when it is not there and CI does not demand it.
fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("corpus/expected/travis.jsonl").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "shared corpus not found at {} (set SLIPWAY_SHARED)",
            dir.display()
        );
    }
    eprintln!("skipped: shared corpus not found at {}", dir.display());
    None
}

/// One corpus file with Travis's verdict.
struct Case {
    name: String,
    path: PathBuf,
    travis_error: bool,
    travis_warnings: BTreeSet<(String, String)>,
}

fn strip_indices(key: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for c in key.chars() {
        match c {
            '[' => skip = true,
            ']' => skip = false,
            _ if !skip => out.push(c),
            _ => {}
        }
    }
    out.strip_suffix(".secure").unwrap_or(&out).to_owned()
}

/// Travis reports a message on the parent key with the offending key in `args`; join them into
/// one dotted path, as Slipway's diagnostics carry it.
fn travis_key(message: &Value) -> String {
    let base = message["key"].as_str().unwrap_or_default();
    let base = if base == "root" { "" } else { base };
    let args = &message["args"];
    let leaf = args["original"].as_str().or(args["key"].as_str());
    let full = match leaf {
        Some(leaf) if !base.ends_with(leaf) => {
            if base.is_empty() {
                leaf.to_owned()
            } else {
                format!("{base}.{leaf}")
            }
        }
        _ => base.to_owned(),
    };
    strip_indices(&full)
}

fn cases(shared: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    for (set, dir) in [("travis", "corpus/travis"), ("course", "corpus/course")] {
        let jsonl =
            std::fs::read_to_string(shared.join(format!("corpus/expected/{set}.jsonl"))).unwrap();
        for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let file = v["file"].as_str().unwrap().to_owned();
            let travis_warnings = v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| matches!(m["level"].as_str(), Some("warn" | "alert")))
                .map(|m| (m["code"].as_str().unwrap().to_owned(), travis_key(m)))
                .collect();
            out.push(Case {
                name: format!("{set}/{file}"),
                path: shared.join(dir).join(&file),
                travis_error: !v["load_ok"].as_bool().unwrap(),
                travis_warnings,
            });
        }
    }
    out
}

fn ours(case: &Case) -> (bool, BTreeSet<(String, String)>, Vec<Diagnostic>) {
    let bytes = std::fs::read(&case.path).unwrap();
    let diags = lint(&case.name, &bytes);
    let error = diags.iter().any(|d| d.severity == Severity::Error);
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning && TRAVIS_CODES.contains(&d.code.as_str()))
        .map(|d| {
            (
                d.code.clone(),
                strip_indices(d.key.as_deref().unwrap_or_default()),
            )
        })
        .collect();
    (error, warnings, diags)
}

/// Files whose warning set differs from Travis's, each pinned by a test below.
const PINNED: &[&str] = &["travis/aio-libs__aiohttp.travis.yml"];

#[test]
fn lint_agrees_with_travis_on_the_corpus() {
    let Some(shared) = shared() else { return };
    let cases = cases(&shared);
    assert!(cases.len() >= 100, "corpus has {} files", cases.len());
    let mut verdict_mismatch = Vec::new();
    let mut warning_mismatch = Vec::new();
    for case in &cases {
        let (error, warnings, diags) = ours(case);
        if error != case.travis_error {
            let ours: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            verdict_mismatch.push(format!(
                "{}: travis error={} ours error={}\n    {}",
                case.name,
                case.travis_error,
                error,
                ours.join("\n    ")
            ));
        }
        if warnings != case.travis_warnings {
            let missing: Vec<_> = case.travis_warnings.difference(&warnings).collect();
            let extra: Vec<_> = warnings.difference(&case.travis_warnings).collect();
            warning_mismatch.push((
                case.name.clone(),
                format!("{}: missing {missing:?} extra {extra:?}", case.name),
            ));
        }
    }
    let agree = cases.len() - warning_mismatch.len();
    let pct = 100.0 * agree as f64 / cases.len() as f64;
    println!(
        "error verdict: {}/{} files agree; warnings: {agree}/{} files agree ({pct:.1}%)",
        cases.len() - verdict_mismatch.len(),
        cases.len(),
        cases.len()
    );
    for (_, m) in &warning_mismatch {
        println!("  warning difference: {m}");
    }
    assert!(
        verdict_mismatch.is_empty(),
        "error verdicts differ:\n{}",
        verdict_mismatch.join("\n")
    );
    let unpinned: Vec<&String> = warning_mismatch
        .iter()
        .filter(|(name, _)| !PINNED.contains(&name.as_str()))
        .map(|(_, m)| m)
        .collect();
    assert!(
        unpinned.is_empty(),
        "unpinned warning differences:\n{unpinned:#?}"
    );
    assert!(pct >= 98.0, "warning agreement {pct:.1}% is below 98%");
}

/// Pinned difference: `aio-libs__aiohttp` uses `*py35`, an alias whose anchor is never defined.
/// Travis's loader let the alias through as an empty value and went on to report `sudo` as
/// deprecated (and duplicate keys as errors). Slipway rejects the file at load time, so its later
/// warnings never appear. Slipway is right: YAML requires an anchor to be defined before an alias
/// refers to it, and silently reading a typo'd alias as empty would run the job with no Python
/// version. Both reject the file, so the error verdict agrees.
#[test]
fn aiohttp_undefined_alias_is_rejected_at_load_time() {
    let Some(shared) = shared() else { return };
    let bytes = std::fs::read(shared.join("corpus/travis/aio-libs__aiohttp.travis.yml")).unwrap();
    let diags = lint("aiohttp.yml", &bytes);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(d.severity, Severity::Error);
    assert!(d.message.contains("anchor"), "{d}");
    assert_eq!(d.pos().map(|p| p.line), Some(285), "{d}");
}
