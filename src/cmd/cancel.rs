//! `slipway cancel`: cancel a build's queued and running jobs on a server.

use clap::Args as ClapArgs;
use slipway_webhook::client::Client;

/// Arguments of `slipway cancel` and `slipway restart`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The build id.
    pub build: i64,
    /// The server's URL.
    #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An API token from the server's `api_tokens`.
    #[arg(long, env = "SLIPWAY_TOKEN")]
    pub token: String,
}

/// Cancels the build.
pub fn run(args: Args) -> anyhow::Result<()> {
    let v = Client::new(&args.server, Some(args.token)).cancel(args.build)?;
    if v["canceled"].as_bool() == Some(true) {
        println!("build #{} canceled", args.build);
    } else {
        println!("build #{} had already ended", args.build);
    }
    Ok(())
}
