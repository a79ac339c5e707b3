//! `slipway lint`: report every problem in a pipeline file, with positions and hints.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args as ClapArgs, ValueEnum};
use slipway_pipelines::diagnostic::{Diagnostic, Severity};
use slipway_pipelines::lint::{LintOptions, has_errors, lint_with};

/// Arguments of `slipway lint`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The pipeline file (default: `.slipway.yml`, else `.travis.yml`, in the current directory).
    pub file: Option<PathBuf>,
    /// The pipeline file, as an option.
    #[arg(short = 'f', long = "file", conflicts_with = "file")]
    pub file_opt: Option<PathBuf>,
    /// Output format: `human` lines, or a JSON array of diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The most jobs a build may have (Travis's limit, 200, unless the server sets another).
    #[arg(long = "max-jobs", default_value_t = slipway_pipelines::DEFAULT_MAX_JOBS)]
    pub max_jobs: u64,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `file:line:column: severity: message` plus `hint:` lines and a summary.
    Human,
    /// A JSON array of diagnostics, for editors and CI annotations.
    Json,
}

/// Lints the file and prints the result; exits with status 1 when there is any error.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = match args.file.or(args.file_opt) {
        Some(path) => path,
        None => find_pipeline_file(Path::new("."))?,
    };
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .strip_prefix("./")
        .unwrap_or(&path)
        .display()
        .to_string();
    let options = LintOptions {
        max_jobs: args.max_jobs,
    };
    let diags = lint_with(&name, &bytes, &options);
    let out = match args.format {
        Format::Human => render_human(&name, &diags),
        Format::Json => serde_json::to_string_pretty(&diags)? + "\n",
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    if has_errors(&diags) {
        std::process::exit(1);
    }
    Ok(())
}

/// `.slipway.yml` wins over `.travis.yml`, so a repository can move to Slipway's file gradually.
pub fn find_pipeline_file(dir: &Path) -> anyhow::Result<PathBuf> {
    for name in [".slipway.yml", ".travis.yml"] {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no .slipway.yml or .travis.yml in {}; pass the file to lint",
        dir.display()
    )
}

/// Renders diagnostics as `file:line:column: severity: message` lines with a closing summary.
pub fn render_human(file: &str, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(out, "{d}");
    }
    let count = |s: Severity| diags.iter().filter(|d| d.severity == s).count();
    let (errors, warnings, infos) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    if diags.is_empty() {
        let _ = writeln!(out, "{file}: no problems found");
    } else {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            out,
            "{file}: {}, {}, {}",
            plural(errors, "error"),
            plural(warnings, "warning"),
            plural(infos, "note")
        );
    }
    out
}
