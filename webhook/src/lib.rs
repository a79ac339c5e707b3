//! `slipway serve`: receives GitHub webhooks, builds the merge of each pull request locally, runs
//! its pipeline, reports the result on GitHub and shows everything live in a browser.
//!
//! The request path only verifies, parses and stores a delivery (durably, before answering);
//! git and container work happen in workers that claim work from the store under leases, so the
//! server can be killed at any moment and resume from the store.

pub mod auth;
pub mod client;
pub mod config;
pub mod event;
pub mod git;
pub mod github;
pub mod imports;
pub mod job_runner;
pub mod loghub;
pub mod metrics;
pub mod notify;
mod outbox;
pub mod retention;
pub mod runner_exec;
pub mod server;
pub mod signature;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod web;
pub mod worker;
pub mod worker_process;

pub use config::Config;
pub use server::{Server, start};
