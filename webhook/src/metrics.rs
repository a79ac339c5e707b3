//! Counters for `/metrics` in Prometheus's text format; queue gauges are read from the store.

use crate::store::Counts;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters, cheap enough for the request path.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Deliveries stored.
    pub deliveries_accepted: AtomicU64,
    /// Deliveries whose id was seen before.
    pub deliveries_duplicate: AtomicU64,
    /// Deliveries refused for their signature.
    pub signature_failures: AtomicU64,
    /// Jobs started by this process.
    pub jobs_started: AtomicU64,
    /// Statuses delivered to GitHub.
    pub statuses_sent: AtomicU64,
    /// Status reports that failed and will be retried.
    pub status_failures: AtomicU64,
}

impl Metrics {
    /// Adds one.
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, counts: &Counts) -> String {
        let mut out = String::new();
        let counters = [
            (
                "slipway_deliveries_accepted_total",
                &self.deliveries_accepted,
                "Webhook deliveries stored.",
            ),
            (
                "slipway_deliveries_duplicate_total",
                &self.deliveries_duplicate,
                "Redeliveries of a known delivery id.",
            ),
            (
                "slipway_signature_failures_total",
                &self.signature_failures,
                "Deliveries refused for their signature.",
            ),
            (
                "slipway_jobs_started_total",
                &self.jobs_started,
                "Jobs started by this process.",
            ),
            (
                "slipway_statuses_sent_total",
                &self.statuses_sent,
                "Commit statuses delivered to GitHub.",
            ),
            (
                "slipway_status_failures_total",
                &self.status_failures,
                "Commit status reports that failed and were rescheduled.",
            ),
        ];
        for (name, c, help) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP slipway_builds Builds by state.\n# TYPE slipway_builds gauge"
        );
        for (state, n) in &counts.builds {
            let _ = writeln!(out, "slipway_builds{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP slipway_jobs Jobs by state.\n# TYPE slipway_jobs gauge"
        );
        for (state, n) in &counts.jobs {
            let _ = writeln!(out, "slipway_jobs{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP slipway_outbox_pending Status reports not yet delivered.\n# TYPE slipway_outbox_pending gauge\nslipway_outbox_pending {}",
            counts.outbox_pending
        );
        let _ = writeln!(
            out,
            "# HELP slipway_deliveries Deliveries recorded.\n# TYPE slipway_deliveries gauge\nslipway_deliveries {}",
            counts.deliveries
        );
        out
    }
}
