//! `slipway schema`: print the JSON Schema of pipeline files, for editors (yaml-language-server).

use clap::Args as ClapArgs;

/// Arguments of `slipway schema` (none: the schema has one form).
#[derive(Debug, ClapArgs)]
pub struct Args {}

/// Prints the draft-07 JSON Schema generated from the same key tables lint uses.
pub fn run(_args: Args) -> anyhow::Result<()> {
    println!("{}", slipway_pipelines::schema::schema_json());
    Ok(())
}
