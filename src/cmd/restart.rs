//! `slipway restart`: run a build again as a new build (same commit and event).

/// The same arguments as `slipway cancel`: a build on a server, and a token allowed to act on it.
pub use super::cancel::Args;

/// Restarts the build.
pub fn run(args: Args) -> anyhow::Result<()> {
    let v = args.server.client_with_token()?.restart(args.build)?;
    println!("build #{} restarted as #{}", args.build, v["build"]);
    Ok(())
}
