//! Settings of the public front door: connection and stream limits, sign-in sessions, and how
//! long old builds are kept.

use serde::Deserialize;

/// Limits of the HTTP listener, so that a slow or greedy client cannot hold the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A connection that has not sent a whole request head within this many seconds is closed
    /// (slowloris).
    pub header_timeout_seconds: u64,
    /// A request body (a delivery, a form) must arrive within this many seconds.
    pub body_timeout_seconds: u64,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Live-log streams open at once, in total.
    pub max_streams: usize,
    /// Live-log streams open at once from one client address.
    pub max_streams_per_address: usize,
    /// Sign-in attempts per client address and minute.
    pub sign_ins_per_minute: u32,
    /// Requests with an unknown API token per client address and minute; past it the address
    /// gets 429 until the minute is over.
    pub failed_tokens_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a request from one of these addresses
    /// counts as coming from the last address the header names. Empty: the header is ignored
    /// (anyone could write it).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            max_connections: 1024,
            max_streams: 512,
            max_streams_per_address: 16,
            sign_ins_per_minute: 20,
            failed_tokens_per_minute: 10,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Browser sessions opened by signing in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// A session ends this many days after sign-in.
    pub days: u64,
    /// How long GitHub's answer about a user's permission on a repository is trusted, in seconds.
    pub permission_cache_seconds: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            days: 14,
            permission_cache_seconds: 300,
        }
    }
}

/// What is pruned in the background so the data directory stops growing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Finished builds (with their jobs, logs and merge refs) and deliveries older than this many
    /// days are removed; 0 keeps them forever.
    pub days: u64,
    /// Only this many finished builds per repository are kept, newest first; 0 keeps all.
    pub builds_per_repo: u64,
    /// How often pruning runs, in minutes.
    pub every_minutes: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            days: 90,
            builds_per_repo: 1000,
            every_minutes: 60,
        }
    }
}
