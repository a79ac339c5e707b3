//! The loop every outbox task runs (commit statuses and check runs, notifications): take what is
//! due, send it, batch after batch while there is any, then wait for more.
//!
//! A batch is taken from the store under a hold ([`HOLD_MS`]), so that processes sharing one
//! database each send a row once; the hold is renewed while the batch is being sent, and lapses
//! when the process holding it is gone, so another one sends its rows.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How long a taken batch stays with the process that took it without a renewal: the rows of a
/// process that died while sending them go out from another one after at most this long.
pub(crate) const HOLD_MS: i64 = 10_000;

/// The name an outbox task of this process takes rows under (`claimed_by`): which outbox, the
/// process and when it started.
pub(crate) fn holder(outbox: &str) -> String {
    format!("{outbox}:{}-{}", std::process::id(), crate::store::now_ms())
}

/// Drains an outbox until `shutdown`: `send_due` takes one batch under `holder` and sends it,
/// saying how many rows it handled; while it runs, the hold on its rows is renewed every third of
/// [`HOLD_MS`]. When it handled none the loop waits `idle`, or less when `wake` is notified. A
/// failed batch is logged under `name` and waited out like an empty one. A long backlog does not
/// hold up a shutdown: it is checked between batches.
pub(crate) async fn drain<F, Fut, E>(
    name: &'static str,
    (store, holder): (&dyn Store, &str),
    mut send_due: F,
    wake: Option<&Notify>,
    idle: Duration,
    shutdown: &CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, E>>,
    E: Display,
{
    let renew_every = Duration::from_millis(HOLD_MS as u64 / 3);
    loop {
        let batch = send_due();
        tokio::pin!(batch);
        let result = loop {
            tokio::select! {
                result = &mut batch => break result,
                () = tokio::time::sleep(renew_every) => {
                    if let Err(e) = store.outbox_hold(holder, HOLD_MS).await {
                        tracing::warn!(error = %e, "{name}: renewing the hold on its rows");
                    }
                }
            }
        };
        let sent = match result {
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
