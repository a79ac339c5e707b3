//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test says what it skipped and why, and reports what it measured"
)]

mod util;

mod addons_e2e;
mod build_dir_volume;
mod cache_s3;
mod containment;
mod e2e;
mod kubernetes_e2e;
mod scheduling;
mod secrets_e2e;
mod snapshots;
mod unpack_e2e;
mod workspaces_e2e;
