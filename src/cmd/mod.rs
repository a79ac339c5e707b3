//! One module per subcommand, each exposing an `Args` struct (clap) and a `run` function.

pub mod lint;
pub mod plan;
pub mod run;
pub mod schema;
pub mod secrets;
