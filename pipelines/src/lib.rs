//! Pipeline files: everything Slipway knows about `.slipway.yml` and `.travis.yml` before anything runs.
//!
//! The crate is pure: it reads bytes it is given and returns values. It does no file, network or
//! process I/O of its own, so the CLI, the runner and the webhook service all plan a file the same way.

pub mod conditions;
pub mod diagnostic;
pub mod plan;
pub mod yaml;
