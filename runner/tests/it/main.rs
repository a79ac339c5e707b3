//! The integration tests, one binary for the crate: each module is one concern, and the
//! helpers they share are compiled once.

mod util;

mod addons_e2e;
mod containment;
mod e2e;
mod kubernetes_e2e;
mod scheduling;
mod secrets_e2e;
mod snapshots;
mod unpack_e2e;
mod workspaces_e2e;
