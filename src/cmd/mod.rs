//! One module per subcommand, each exposing an `Args` struct (clap) and a `run` function.

pub mod builds;
pub mod cancel;
pub mod imports;
pub mod lint;
pub mod logs;
pub mod plan;
pub mod remote;
pub mod restart;
pub mod run;
pub mod schema;
pub mod secrets;
pub mod serve;
