//! Claims in SQLite: where a worker's claim stands when it writes (fencing), and the records of
//! the deploys a claim begins and ends, which keep a lost job from deploying twice.

use super::*;

/// Where `lease`'s claim stands ([`crate::store::hold`]).
pub(super) fn held(conn: &Connection, lease: JobLease) -> Result<Hold, StoreError> {
    let row: Option<(String, i64)> = query_row(
        conn,
        "SELECT state, attempts FROM jobs WHERE id = ?1",
        [lease.job_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?;
    let row = row
        .map(|(s, a)| Ok::<_, StoreError>((JobState::parse(&s)?, a)))
        .transpose()?;
    hold(lease, row)
}

impl SqliteStore {
    /// See [`Store::deploy_started`].
    pub(super) async fn record_deploy_start(
        &self,
        lease: JobLease,
        index: i64,
        provider: &str,
    ) -> Result<(), StoreError> {
        let provider = provider.to_string();
        self.write(move |conn| {
            held(conn, lease)?;
            exec(
                conn,
                "INSERT OR REPLACE INTO deploys (job_id, attempt, idx, provider, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![lease.job_id, lease.attempt, index, provider, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    /// See [`Store::deploy_finished`].
    pub(super) async fn record_deploy_end(
        &self,
        lease: JobLease,
        index: i64,
        succeeded: bool,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            held(conn, lease)?;
            exec(
                conn,
                "UPDATE deploys SET finished_at = ?4, succeeded = ?5 WHERE job_id = ?1 AND attempt = ?2 AND idx = ?3",
                params![lease.job_id, lease.attempt, index, now_ms(), succeeded],
            )?;
            Ok(())
        })
        .await
    }
}
