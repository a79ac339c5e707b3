//! `slipway restart`: run a build again as a new build (same commit and event).

use clap::Args as ClapArgs;
use slipway_webhook::client::Client;

/// Arguments of `slipway restart`.
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

/// Restarts the build.
pub fn run(args: Args) -> anyhow::Result<()> {
    let v = Client::new(&args.server, Some(args.token)).restart(args.build)?;
    println!("build #{} restarted as #{}", args.build, v["build"]);
    Ok(())
}
