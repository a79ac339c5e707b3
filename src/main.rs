//! The `slipway` command line: lint, plan and run pipeline files, and serve webhooks.

use clap::Parser;

/// Self-hosted CI/CD for Travis-style pipeline files.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
