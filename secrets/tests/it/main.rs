//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.

mod util;

mod age_interop;
mod masker_props;
mod store;
mod travis_openssl;
