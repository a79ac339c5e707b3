//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test says what it skipped and why, and reports what it measured"
)]

mod util;

mod age_interop;
mod masker_props;
mod store;
mod travis_openssl;
