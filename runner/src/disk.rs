//! The per-job disk limit's watchdog, for engines whose storage driver cannot cap a container's
//! writable layer (only overlay2 on xfs with project quotas, btrfs, zfs and devicemapper can).
//!
//! A job that fills the disk stops every other job and the server with it, so the runner asks the
//! executor how much the job container has written ([`Executor::disk_usage`]) every interval and
//! stops the job, errored, once it is over the limit. Between two checks a job can write more
//! than the limit: the interval bounds how much.

use std::time::Duration;

use crate::executor::Executor;

/// Resolves with the reason to stop the job once its container has written more than `limit`
/// bytes; never resolves when the executor enforces the limit itself.
pub async fn watchdog(
    executor: &dyn Executor,
    job_id: &str,
    limit: u64,
    every: Duration,
) -> String {
    loop {
        tokio::time::sleep(every).await;
        match executor.disk_usage(job_id).await {
            Ok(None) => std::future::pending::<()>().await,
            Ok(Some(used)) if used > limit => {
                return format!(
                    "The job wrote {} into its container, over its disk limit of {}, and was stopped.",
                    human(used),
                    human(limit)
                );
            }
            // A failed check is tried again next time: the job is not stopped on a guess.
            Ok(Some(_)) | Err(_) => {}
        }
    }
}

/// `12.3 GiB`, `512.0 MiB`, `900 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(900), "900 B");
        assert_eq!(human(20 << 30), "20.0 GiB");
        assert_eq!(human(3 << 19), "1.5 MiB");
    }
}
