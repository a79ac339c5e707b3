//! `slipway logs`: print a job's log from a server, and with `-f` follow it until the job ends.

use clap::Args as ClapArgs;
use std::io::Write as _;

/// Arguments of `slipway logs`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The job id (see `slipway builds ID`).
    pub job: i64,
    /// Keep printing until the job ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[command(flatten)]
    pub server: super::remote::Server,
}

/// Prints the log.
pub fn run(args: Args) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let mut after = 0;
    let mut out = std::io::stdout().lock();
    loop {
        let v = client.log(args.job, after)?;
        let chunks = v["chunks"].as_array().cloned().unwrap_or_default();
        for c in &chunks {
            after = c["seq"].as_i64().unwrap_or(after);
            let data = c["data"].as_str().unwrap_or("");
            match c["kind"].as_str() {
                Some("output") => out.write_all(data.as_bytes())?,
                Some("note") => writeln!(out, "[slipway] {data}")?,
                _ => {}
            }
        }
        out.flush()?;
        let done = matches!(
            v["state"].as_str(),
            Some("passed" | "failed" | "errored" | "canceled" | "not_run")
        );
        if !args.follow || (done && chunks.is_empty()) {
            return Ok(());
        }
        if chunks.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}
