//! The `slipway` command line: lint, plan and run pipeline files, and serve webhooks.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses arguments and
//! dispatches, so adding a command never touches another command's code.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line prints for its user"
)]

mod cmd;

use clap::{CommandFactory as _, Parser, Subcommand};

/// Self-hosted CI/CD for Travis-style pipeline files.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand; each variant's arguments are defined in its module.
#[derive(Debug, Subcommand)]
enum Command {
    /// Report every problem in a pipeline file, with positions and hints (exit 1 on errors).
    Lint(cmd::lint::Args),
    /// Print the JSON Schema of pipeline files, for editors.
    Schema(cmd::schema::Args),
    /// Show the stages, jobs and deploys a pipeline file means for one event, and why.
    Plan(cmd::plan::Args),
    /// Repository keys, encrypted files and values, and settings variables.
    Secrets(cmd::secrets::Args),
    /// Run a pipeline file's jobs locally in Docker, on the working tree as it is.
    Run(cmd::run::Args),
    /// Serve GitHub webhooks: build pull requests and pushes, report statuses, show a web UI.
    Serve(cmd::serve::Args),
    /// Claim and run jobs from the PostgreSQL store several servers share (no HTTP).
    Worker(cmd::worker::Args),
    /// List a server's builds, or show one build's jobs.
    Builds(cmd::builds::Args),
    /// Print (and with -f follow) a job's log from a server.
    Logs(cmd::logs::Args),
    /// Cancel a build on a server.
    Cancel(cmd::cancel::Args),
    /// Run a build again on a server.
    Restart(cmd::restart::Args),
    /// Print the shell completion script (e.g. `slipway completions bash > /etc/bash_completion.d/slipway`).
    Completions(cmd::completions::CompletionsArgs),
    /// Print the manual page, or write one per subcommand with --dir.
    Man(cmd::completions::ManArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => cmd::lint::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Secrets(args) => cmd::secrets::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Builds(args) => cmd::builds::run(args),
        Command::Logs(args) => cmd::logs::run(args),
        Command::Cancel(args) => cmd::cancel::run(args),
        Command::Restart(args) => cmd::restart::run(args),
        Command::Completions(args) => cmd::completions::completions(args, Cli::command()),
        Command::Man(args) => cmd::completions::man(args, Cli::command()),
    }
}
