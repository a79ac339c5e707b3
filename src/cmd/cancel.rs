//! `slipway cancel`: cancel a build's queued and running jobs on a server.

use clap::Args as ClapArgs;

/// Arguments of `slipway cancel` and `slipway restart`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The build id.
    pub build: i64,
    /// The server, with a token allowed to act on the build.
    #[command(flatten)]
    pub server: super::remote::Server,
}

/// Cancels the build.
pub fn run(args: Args) -> anyhow::Result<()> {
    let v = args.server.client_with_token()?.cancel(args.build)?;
    if v["canceled"].as_bool() == Some(true) {
        println!("build #{} canceled", args.build);
    } else {
        println!("build #{} had already ended", args.build);
    }
    Ok(())
}
