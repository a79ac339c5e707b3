//! Fans a job's log out to its live viewers. Chunks this process's workers produce go out from
//! memory at once; on a store shared by several processes, the store's word that another process
//! stored chunks of a job or ended it goes to that job's viewers, who read the chunks from the
//! store. Only jobs with viewers have a channel: word about any other job costs one lookup.

use crate::store::{LogChunk, StoreChanges};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, broadcast};

/// What live viewers of a job's log receive.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A chunk produced here, also being written to the store.
    Chunk(LogChunk),
    /// The store holds the job's log up to this `seq` (written by any process: a viewer reads
    /// what it lacks, if anything, from the store).
    Stored(i64),
    /// The job may have ended elsewhere; also sent when word from the store may have been lost.
    Changed,
    /// The job ended here; no more chunks from this process.
    End,
}

/// Fans a job's log out to live viewers.
///
/// Chunks reach the store in batches (every 100 ms or 64 KiB), so each job's channel also keeps
/// the chunks published but not stored yet: a viewer that subscribes gets them with its receiver,
/// under the same lock as publishing, and so never misses a chunk that was sent live before it
/// came and stored only after it read the store.
#[derive(Debug, Default)]
pub struct LogHub {
    channels: Mutex<HashMap<i64, Channel>>,
}

#[derive(Debug)]
struct Channel {
    tx: broadcast::Sender<LiveEvent>,
    unstored: Vec<LogChunk>,
    /// A worker of this process produces the job's log (until it closes the channel).
    local: bool,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            tx: broadcast::channel(1024).0,
            unstored: Vec::new(),
            local: false,
        }
    }
}

impl LogHub {
    /// Subscribes to a job's live events, with the chunks published but not yet stored. Read
    /// the stored log after subscribing, then these chunks, then the live ones, skipping every
    /// chunk whose `seq` was already seen: no chunk is missed or repeated.
    pub fn subscribe(&self, job: i64) -> (broadcast::Receiver<LiveEvent>, Vec<LogChunk>) {
        let mut map = self.channels.lock().expect("log hub");
        let ch = map.entry(job).or_insert_with(Channel::new);
        (ch.tx.subscribe(), ch.unstored.clone())
    }

    /// The chunks of a job published but not yet stored (for a viewer that lagged behind).
    pub fn unstored(&self, job: i64) -> Vec<LogChunk> {
        self.channels
            .lock()
            .expect("log hub")
            .get(&job)
            .map(|ch| ch.unstored.clone())
            .unwrap_or_default()
    }

    /// True while a worker of this process produces the job's log: its end comes as
    /// [`LiveEvent::End`], after the last chunk, not from the store.
    pub fn is_local(&self, job: i64) -> bool {
        self.channels
            .lock()
            .expect("log hub")
            .get(&job)
            .is_some_and(|ch| ch.local)
    }

    pub(crate) fn publish(&self, job: i64, chunk: LogChunk) {
        let mut map = self.channels.lock().expect("log hub");
        let ch = map.entry(job).or_insert_with(Channel::new);
        ch.local = true;
        ch.unstored.push(chunk.clone());
        let _ = ch.tx.send(LiveEvent::Chunk(chunk));
    }

    /// The store now holds a job's chunks up to `seq`.
    pub(crate) fn stored(&self, job: i64, seq: i64) {
        if let Some(ch) = self.channels.lock().expect("log hub").get_mut(&job) {
            ch.unstored.retain(|c| c.seq > seq);
        }
    }

    /// Ends a job's stream and forgets it.
    pub fn close(&self, job: i64) {
        if let Some(ch) = self.channels.lock().expect("log hub").remove(&job) {
            let _ = ch.tx.send(LiveEvent::End);
        }
    }

    /// Forgets a job's channel once nobody listens and nothing awaits storing.
    pub fn release(&self, job: i64) {
        let mut map = self.channels.lock().expect("log hub");
        if map
            .get(&job)
            .is_some_and(|ch| ch.tx.receiver_count() == 0 && ch.unstored.is_empty())
        {
            map.remove(&job);
        }
    }

    /// Passes word from the store to a job's viewers, if it has any.
    fn tell(&self, job: i64, event: LiveEvent) {
        if let Some(ch) = self.channels.lock().expect("log hub").get(&job) {
            let _ = ch.tx.send(event);
        }
    }

    /// Tells every viewer that anything may have changed.
    fn tell_all(&self) {
        for ch in self.channels.lock().expect("log hub").values() {
            let _ = ch.tx.send(LiveEvent::Changed);
        }
    }
}

/// Where a shared store's word about other processes' changes goes: the workers' bell, the
/// log hub and the work done here.
pub struct Changes {
    /// Rung when work may have become claimable.
    pub work: Arc<Notify>,
    /// The live log fan-out.
    pub hub: Arc<LogHub>,
    /// The builds this process prepares and the jobs it runs: one that ended elsewhere (a
    /// cancel) stops here at once.
    pub local: Arc<crate::worker::LocalWork>,
}

impl StoreChanges for Changes {
    fn work(&self) {
        self.work.notify_waiters();
    }

    fn log_stored(&self, job_id: i64, seq: i64) {
        self.hub.tell(job_id, LiveEvent::Stored(seq));
    }

    fn job_ended(&self, job_id: i64) {
        self.local.job_ended(job_id);
        self.hub.tell(job_id, LiveEvent::Changed);
    }

    fn preparation_ended(&self, build_id: i64) {
        self.local.preparation_ended(build_id);
    }

    fn missed(&self) {
        self.work.notify_waiters();
        self.hub.tell_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChunkKind;

    fn chunk(seq: i64) -> LogChunk {
        LogChunk {
            seq,
            kind: ChunkKind::Output,
            data: format!("line {seq}\n"),
        }
    }

    #[test]
    fn a_viewer_arriving_between_publish_and_store_gets_the_unstored_chunks() {
        let hub = LogHub::default();
        hub.publish(7, chunk(1));
        hub.publish(7, chunk(2));
        // Chunk 1 reached the store; 2 is only in memory when the viewer subscribes.
        hub.stored(7, 1);
        let (mut live, unstored) = hub.subscribe(7);
        assert_eq!(unstored, vec![chunk(2)]);
        hub.publish(7, chunk(3));
        match live.try_recv() {
            Ok(LiveEvent::Chunk(c)) => assert_eq!(c, chunk(3)),
            other => panic!("expected chunk 3 live, got {other:?}"),
        }
        assert_eq!(hub.unstored(7), vec![chunk(2), chunk(3)]);
        hub.stored(7, 3);
        assert!(hub.unstored(7).is_empty());
    }

    #[test]
    fn a_channel_with_unstored_chunks_outlives_its_last_viewer() {
        let hub = LogHub::default();
        let (live, _) = hub.subscribe(9);
        hub.publish(9, chunk(1));
        drop(live);
        hub.release(9);
        let (_live, unstored) = hub.subscribe(9);
        assert_eq!(
            unstored,
            vec![chunk(1)],
            "release dropped a chunk not yet stored"
        );
        hub.close(9);
        assert!(hub.unstored(9).is_empty());
    }

    #[test]
    fn word_from_the_store_reaches_only_the_viewers_of_its_job() {
        let hub = Arc::new(LogHub::default());
        let changes = Changes {
            work: Arc::new(Notify::new()),
            hub: hub.clone(),
            local: Default::default(),
        };
        let (mut five, _) = hub.subscribe(5);
        let (mut six, _) = hub.subscribe(6);
        changes.log_stored(5, 12);
        changes.job_ended(6);
        // A job nobody watches gets no channel from word about it.
        changes.log_stored(8, 1);
        assert!(matches!(five.try_recv(), Ok(LiveEvent::Stored(12))));
        assert!(five.try_recv().is_err(), "nothing else for job 5");
        assert!(matches!(six.try_recv(), Ok(LiveEvent::Changed)));
        assert!(six.try_recv().is_err(), "nothing else for job 6");
        assert!(hub.channels.lock().unwrap().get(&8).is_none());
        assert!(!hub.is_local(5), "job 5 runs elsewhere");
        hub.publish(5, chunk(13));
        assert!(hub.is_local(5));

        changes.missed();
        assert!(matches!(six.try_recv(), Ok(LiveEvent::Changed)));
        hub.close(5);
        assert!(!hub.is_local(5), "closed: nothing more from here");
    }
}
