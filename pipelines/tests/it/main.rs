//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test says what it skipped and why, and reports what it measured"
)]

mod util;

mod bad_input;
mod build_size;
mod conditions;
mod corpus;
mod corpus_deploys;
mod git_settings;
mod imports;
mod lint_corpus;
mod lint_deploys;
mod lint_proptest;
mod notifications_corpus;
mod plan_course;
mod plan_snapshots;
mod travis_compat;
