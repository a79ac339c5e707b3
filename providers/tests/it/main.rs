//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test says what it skipped and why, and reports what it measured"
)]

mod util;

mod aws_moto;
mod bundle;
mod corpus;
mod course_eb;
mod course_k8s;
mod dry_run;
mod endpoints;
mod heroku;
mod hook_in_runner;
mod npm;
mod packagecloud;
mod pages;
mod pypi;
mod releases;
mod rubygems;
