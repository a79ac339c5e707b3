//! Waking idle workers across machines: a connection of its own LISTENs on the work channel,
//! and every notification (sent when a transaction makes work claimable) rings the process's
//! work bell. A lost connection is re-made after a pause; meanwhile workers fall back on their
//! slow poll, so nothing is missed, only later.

use super::builds::WORK_CHANNEL;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Rings `bell` on every work notification, until the process ends.
pub(super) fn spawn(config: tokio_postgres::Config, bell: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, &bell).await {
                tracing::warn!(error = %e, "listening for work notifications; reconnecting");
            }
            // Work may have been queued while nobody listened.
            bell.notify_waiters();
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
}

async fn listen(
    config: &tokio_postgres::Config,
    bell: &Notify,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
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
        .batch_execute(&format!("LISTEN {WORK_CHANNEL}"))
        .await?;
    // Anything queued before LISTEN took effect.
    bell.notify_waiters();
    while rx.recv().await.is_some() {
        bell.notify_waiters();
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
