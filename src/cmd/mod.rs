//! One module per subcommand, each exposing an `Args` struct (clap) and a `run` function, and the
//! helpers several of them share (`repo`, `vars`, `dotenv`, `preview`, `imports`, `remote`).

pub mod builds;
pub mod cancel;
pub mod completions;
pub mod dotenv;
pub mod dry_run;
pub mod images;
pub mod imports;
pub mod lint;
pub mod logs;
pub mod notify;
pub mod plan;
pub mod preview;
pub mod remote;
pub mod repo;
pub mod restart;
pub mod run;
pub mod schema;
pub mod secrets;
pub mod serve;
pub mod vars;
pub mod worker;
