//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test says what it skipped and why, and reports what it measured"
)]

mod util;

mod api_filters;
mod browser;
mod browser_access;
mod browser_pages;
mod fetch_policy;
mod github_app;
mod imports;
mod ingest;
mod live_across;
mod live_attempts;
mod mirror_upkeep;
mod queue;
mod retention;
mod store_contract;
mod trust;
mod workspace;
