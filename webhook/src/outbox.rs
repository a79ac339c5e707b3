//! The loop every outbox task runs (commit statuses and check runs, notifications): send what is
//! due, batch after batch while there is any, then wait for more.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Drains an outbox until `shutdown`: `send_due` sends one batch and says how many rows it
/// handled; when it handled none the loop waits `idle`, or less when `wake` is notified. A
/// failed batch is logged under `name` and waited out like an empty one. A long backlog does not
/// hold up a shutdown: it is checked between batches.
pub(crate) async fn drain<F, Fut, E>(
    name: &'static str,
    mut send_due: F,
    wake: Option<&Notify>,
    idle: Duration,
    shutdown: &CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, E>>,
    E: Display,
{
    loop {
        let sent = match send_due().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "{name}");
                0
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if sent > 0 {
            continue;
        }
        let woken = async {
            match wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = woken => {}
            () = tokio::time::sleep(idle) => {}
        }
    }
}
