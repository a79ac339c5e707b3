//! `slipway schema`: print the JSON Schema of pipeline files, for editors (yaml-language-server).

use std::io::Write as _;

use clap::Args as ClapArgs;

/// Arguments of `slipway schema` (none: the schema has one form).
#[derive(Debug, ClapArgs)]
pub struct Args {}

/// Prints the draft-07 JSON Schema generated from the same key tables lint uses.
pub fn run(_args: Args) -> anyhow::Result<()> {
    let text = slipway_pipelines::schema::schema_json();
    let mut out = std::io::stdout().lock();
    // A closed pipe (`slipway schema | head`) is the reader's choice, not an error.
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
