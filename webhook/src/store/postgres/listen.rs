//! Word between processes: one connection per process LISTENs on the work channel (sent when a
//! transaction makes work claimable), on the log channel (sent when a transaction stores log
//! chunks or ends a job) and on the preparation channel (sent when a build's preparation ends),
//! and passes each notification on. A lost connection is re-made after a
//! pause, and everyone is told word may have been missed: idle workers look for work, live
//! viewers look at the store; until then workers and viewers fall back on their slow polls, so
//! nothing is missed, only later.
//!
//! A log notification carries the job's id and the last stored `seq`, or `end` (the job ended,
//! or its claim did and it was queued again), never log text: the payload stays far below PostgreSQL's limit whatever a job prints, and anyone who
//! may LISTEN on the database learns nothing of a log from it. Hearers read the log from the
//! store under their own access checks.

use super::{Db, WORK_CHANNEL};
use crate::store::sql::Sql;
use crate::store::{StoreChanges, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel a job's stored log chunks and its end are announced on. The end is sent by the
/// trigger of migration 0003, which names this channel too.
pub(super) const LOG_CHANNEL: &str = "slipway_log";

/// The channel a build's id is sent on when its preparation ends, by the trigger of migration
/// 0006.
pub(super) const PREPARATION_CHANNEL: &str = "slipway_preparation";

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Announces, once the current transaction commits, that a job's log is stored up to `seq`.
pub(super) async fn log_stored(db: &Db<'_, '_>, job_id: i64, seq: i64) -> Result<(), StoreError> {
    let payload = format!("{job_id} {seq}");
    db.exec("SELECT pg_notify(?1, ?2)", &[&LOG_CHANNEL, &payload])
        .await?;
    Ok(())
}

/// Announces, once the current transaction commits, that a job's claim ended though the job was
/// queued again. Said as a job's end is: hearers ask the store what became of the job.
pub(super) async fn attempt_ended(db: &Db<'_, '_>, job_id: i64) -> Result<(), StoreError> {
    let payload = format!("{job_id} end");
    db.exec("SELECT pg_notify(?1, ?2)", &[&LOG_CHANNEL, &payload])
        .await?;
    Ok(())
}

/// What a notification says.
#[derive(Debug, PartialEq, Eq)]
enum Word {
    Work,
    LogStored { job_id: i64, seq: i64 },
    JobEnded { job_id: i64 },
    PreparationEnded { build_id: i64 },
}

/// Reads a notification; `None` for one this version does not know.
fn parse(channel: &str, payload: &str) -> Option<Word> {
    if channel == WORK_CHANNEL {
        return Some(Word::Work);
    }
    if channel == PREPARATION_CHANNEL {
        let build_id = payload.parse().ok()?;
        return Some(Word::PreparationEnded { build_id });
    }
    if channel != LOG_CHANNEL {
        return None;
    }
    let (job, what) = payload.split_once(' ')?;
    let job_id = job.parse().ok()?;
    match what {
        "end" => Some(Word::JobEnded { job_id }),
        seq => Some(Word::LogStored {
            job_id,
            seq: seq.parse().ok()?,
        }),
    }
}

/// Passes every notification on to `changes`, until the process ends.
pub(super) fn spawn(config: tokio_postgres::Config, changes: Arc<dyn StoreChanges>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, changes.as_ref()).await {
                tracing::warn!(error = %e, "listening for notifications; reconnecting");
            }
            // Work may have been queued, and logs stored, while nobody listened.
            changes.missed();
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
}

async fn listen(
    config: &tokio_postgres::Config,
    changes: &dyn StoreChanges,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let Some(word) = parse(n.channel(), n.payload()) else {
                        continue;
                    };
                    if tx.send(word).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!(
            "LISTEN {WORK_CHANNEL}; LISTEN {LOG_CHANNEL}; LISTEN {PREPARATION_CHANNEL}"
        ))
        .await?;
    // Anything that happened before LISTEN took effect.
    changes.missed();
    while let Some(word) = rx.recv().await {
        match word {
            Word::Work => changes.work(),
            Word::LogStored { job_id, seq } => changes.log_stored(job_id, seq),
            Word::JobEnded { job_id } => changes.job_ended(job_id),
            Word::PreparationEnded { build_id } => changes.preparation_ended(build_id),
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_read_by_channel_and_payload() {
        assert_eq!(parse(WORK_CHANNEL, ""), Some(Word::Work));
        assert_eq!(
            parse(LOG_CHANNEL, "42 17"),
            Some(Word::LogStored {
                job_id: 42,
                seq: 17
            })
        );
        assert_eq!(
            parse(LOG_CHANNEL, "42 end"),
            Some(Word::JobEnded { job_id: 42 })
        );
        for junk in ["", "42", "x 1", "42 ", "42 1 2", "42 lots of text"] {
            assert_eq!(parse(LOG_CHANNEL, junk), None, "{junk:?}");
        }
        assert_eq!(
            parse(PREPARATION_CHANNEL, "42"),
            Some(Word::PreparationEnded { build_id: 42 })
        );
        for junk in ["", "x", "42 end", " 42"] {
            assert_eq!(parse(PREPARATION_CHANNEL, junk), None, "{junk:?}");
        }
        assert_eq!(parse("elsewhere", "42 17"), None);
    }
}
