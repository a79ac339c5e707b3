//! Group commit of deliveries: the deliveries arriving while the last batch was being recorded
//! are recorded together, in one transaction, by one task, and each caller is answered once that
//! transaction has committed (a 2xx still means durable). A batch costs one `BEGIN`, one lock
//! statement, one wake-up of the workers and one `COMMIT`, whatever its size.
//!
//! A batch of pushes (the common case) is recorded set-wise, by a few statements for the whole
//! batch ([`super::batch`]); a lone push too, which costs fewer statements that way. A batch with
//! anything else is recorded a delivery at a time, its statements pipelined on its connection:
//! deliveries that supersede builds of the same branch (or close its pull request) one after the
//! other, in arrival order; others side by side. Either way, the batch takes every branch's lock
//! up front, in one order that every process follows, so two servers' batches wait for each
//! other rather than deadlock. When any statement of a batch fails, the batch is rolled back and
//! each of its deliveries recorded in a transaction of its own: one bad delivery fails only
//! itself.

use super::{Db, WORK_CHANNEL, batch};
use crate::store::sql::builds::supersede_lock;
use crate::store::sql::queue;
use crate::store::{Delivery, DeliveryAction, Recorded, StoreError};
use deadpool_postgres::Pool;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most deliveries recorded in one transaction.
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<Recorded, StoreError>>;

/// The way in to the task recording deliveries.
pub(super) struct Intake {
    tx: mpsc::UnboundedSender<(Delivery, Reply)>,
}

impl Intake {
    /// Starts the task, which ends once the store is dropped.
    pub(super) fn start(pool: Pool) -> Intake {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Intake { tx }
    }

    /// Records `d` with the deliveries arriving meanwhile; answers once it is committed.
    pub(super) async fn record(&self, d: Delivery) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((d, reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// What the deliveries of a batch share: the branch locks taken for all of them, and whether one
/// of them made work claimable.
pub(in crate::store::postgres) struct Batch {
    locked: HashSet<String>,
    wake: AtomicBool,
}

impl Batch {
    /// True when the batch took the lock of `key` already.
    pub(super) fn holds(&self, key: &str) -> bool {
        self.locked.contains(key)
    }

    /// Wakes the workers once the batch commits.
    pub(super) fn wake(&self) {
        self.wake.store(true, Ordering::Relaxed);
    }
}

async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<(Delivery, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        record_batch(&pool, batch).await;
    }
}

/// Why a batch was not recorded.
enum Failed {
    /// A statement failed: nothing is committed, and each delivery is tried on its own.
    Statement,
    /// The database could not be reached, or the commit failed: every caller gets the error.
    Commit(StoreError),
}

async fn record_batch(pool: &Pool, batch: Vec<(Delivery, Reply)>) {
    let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) = batch.into_iter().unzip();
    // A lone push too: the batch's statements are fewer than its own.
    if deliveries.len() > 1 || batch::fits(&deliveries) {
        match record_together(pool, &deliveries).await {
            Ok(recorded) => {
                for (reply, r) in replies.into_iter().zip(recorded) {
                    let _ = reply.send(Ok(r));
                }
                return;
            }
            Err(Failed::Commit(e)) => {
                let e = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Task(e.clone())));
                }
                return;
            }
            Err(Failed::Statement) => {}
        }
    }
    for (reply, d) in replies.into_iter().zip(deliveries) {
        let _ = reply.send(record_alone(pool, d).await);
    }
}

/// Records one delivery in a transaction of its own.
async fn record_alone(pool: &Pool, d: Delivery) -> Result<Recorded, StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Task(format!("no database connection: {e}")))?;
    let tx = client.transaction().await?;
    let recorded = queue::record_delivery(&Db::Tx(&tx), d).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// Records `deliveries` in one transaction; their outcomes in order.
async fn record_together(pool: &Pool, deliveries: &[Delivery]) -> Result<Vec<Recorded>, Failed> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| Failed::Commit(StoreError::Task(format!("no database connection: {e}"))))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| Failed::Commit(e.into()))?;
    let locked: HashSet<String> = deliveries
        .iter()
        .filter_map(|d| match &d.action {
            DeliveryAction::Build { build, auto_cancel } => supersede_lock(build, *auto_cancel),
            _ => None,
        })
        .collect();
    let batch = Batch {
        locked,
        wake: AtomicBool::new(false),
    };
    let db = Db::Batch(&tx, &batch);
    let outcome = async {
        if !batch.locked.is_empty() {
            let locks: Vec<&str> = batch.locked.iter().map(String::as_str).collect();
            // In the order of the lock ids, the same in every process.
            let st = tx
                .prepare_cached(
                    "SELECT pg_advisory_xact_lock(h) FROM (
                     SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS k ORDER BY h) l",
                )
                .await?;
            tx.execute(&st, &[&locks]).await?;
        }
        let recorded = if batch::fits(deliveries) {
            batch::record(&tx, &batch, deliveries).await?
        } else {
            in_lanes(&db, deliveries).await?
        };
        if batch.wake.load(Ordering::Relaxed) {
            let st = tx.prepare_cached("SELECT pg_notify($1, '')").await?;
            tx.execute(&st, &[&WORK_CHANNEL]).await?;
        }
        Ok::<_, StoreError>(recorded)
    }
    .await;
    let recorded = match outcome {
        Ok(r) => r,
        Err(e) => {
            if deliveries.len() > 1 {
                tracing::warn!(error = %e, deliveries = deliveries.len(), "a batch of deliveries failed; recording each alone");
            }
            let _ = tx.rollback().await;
            return Err(Failed::Statement);
        }
    };
    tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
    Ok(recorded)
}

/// Records `deliveries` a statement at a time, in lanes (see [`lanes`]) pipelined side by side;
/// their outcomes in order.
async fn in_lanes(db: &Db<'_, '_>, deliveries: &[Delivery]) -> Result<Vec<Recorded>, StoreError> {
    let orders: Vec<Order> = deliveries.iter().map(order_of).collect();
    let recorded =
        futures::future::try_join_all(lanes(&orders).into_iter().map(|lane| async move {
            let mut out = Vec::with_capacity(lane.len());
            for i in lane {
                out.push((i, queue::record_delivery(db, deliveries[i].clone()).await?));
            }
            Ok::<_, StoreError>(out)
        }))
        .await?;
    let mut out: Vec<Option<Recorded>> = (0..deliveries.len()).map(|_| None).collect();
    for (i, r) in recorded.into_iter().flatten() {
        out[i] = Some(r);
    }
    Ok(out.into_iter().flatten().collect())
}

/// How a delivery is ordered against the others of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Order {
    /// It touches no branch's builds: side by side with any other.
    Free,
    /// After the earlier deliveries with the same key (a branch or pull request of a
    /// repository): the later push supersedes the earlier.
    After(String),
    /// A re-run, whose branch is known only once its build is read: the whole batch in order.
    Alone,
}

fn order_of(d: &Delivery) -> Order {
    match &d.action {
        DeliveryAction::Build { build, .. } => match &build.supersede_key {
            Some(k) => Order::After(format!("{}\n{k}", build.repo.to_lowercase())),
            None => Order::Free,
        },
        DeliveryAction::ClosePullRequest { repo, number } => {
            Order::After(format!("{}\npr:{number}", repo.to_lowercase()))
        }
        DeliveryAction::Rerun { .. } => Order::Alone,
        DeliveryAction::Nothing => Order::Free,
    }
}

/// The deliveries (by index) in lanes recorded side by side, each lane in arrival order: one lane
/// per key, one per free delivery; with a re-run in the batch, one lane for all.
fn lanes(orders: &[Order]) -> Vec<Vec<usize>> {
    if orders.contains(&Order::Alone) {
        return vec![(0..orders.len()).collect()];
    }
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut lanes = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        match order {
            Order::After(k) => by_key.entry(k).or_default().push(i),
            _ => lanes.push(vec![i]),
        }
    }
    lanes.extend(by_key.into_values());
    lanes
}

#[cfg(test)]
mod tests {
    use super::{Order, lanes};

    #[test]
    fn deliveries_of_one_branch_share_a_lane_in_arrival_order() {
        let after = |s: &str| Order::After(s.to_string());
        let orders = [
            after("r\nb1"),
            Order::Free,
            after("r\nb2"),
            after("r\nb1"),
            Order::Free,
        ];
        assert_eq!(lanes(&orders), vec![vec![1], vec![4], vec![0, 3], vec![2]]);
    }

    #[test]
    fn a_rerun_puts_the_whole_batch_in_one_lane() {
        let orders = [Order::After("r\nb1".into()), Order::Alone, Order::Free];
        assert_eq!(lanes(&orders), vec![vec![0, 1, 2]]);
    }
}
