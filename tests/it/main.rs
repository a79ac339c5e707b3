//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test says what it skipped and why, and reports what it measured"
)]

mod serve;
mod support;

mod artifacts_s3;
mod cli_completions;
mod course_multi_docker;
mod deploy_pages;
mod deploy_pypi;
mod deploy_registries;
mod deploy_releases;
mod deploy_s3;
mod imports_run;
mod notifications;
mod notify_run;
mod os_matrix_cli;
mod red_team;
mod run_cli;
mod run_images;
mod run_vars;
mod scale_out;
mod scale_out_doc;
mod secrets_cli;
mod secrets_run;
mod serve_access;
mod serve_checks;
mod serve_crash;
mod serve_deploy;
mod serve_deploy_inputs;
mod serve_deploy_pages;
mod serve_deploy_releases;
mod serve_e2e;
mod serve_fetch;
mod serve_front_door;
mod serve_images;
mod serve_notify;
