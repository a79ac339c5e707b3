//! One module per subcommand, each exposing an `Args` struct (clap) and a `run` function.

pub mod plan;
pub mod secrets;
