//! Fans a job's log out to its live viewers, one stream per attempt of the job. Chunks this
//! process's workers produce go out from memory at once; on a store shared by several processes,
//! the store's word that another process stored chunks of a job or ended it goes to that job's
//! viewers, who read the chunks from the store. Only jobs with viewers have a channel: word about
//! any other job costs one lookup.
//!
//! A viewer follows the job's current attempt. An attempt whose lease moved on (its job was
//! queued again) may still be running here, late — a worker that was only slow: its chunks and
//! its end go to its own channel only, which is fenced as soon as this process learns the lease
//! moved on (a newer attempt starts here, a renewal or a write is refused), so they never reach
//! the viewers of the attempt that replaced it.

use crate::store::{JobLease, LogChunk, StoreChanges};
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
    /// The attempt ended here, or its lease moved on; no more chunks of it from this process.
    End,
}

/// Fans a job's log out to live viewers.
///
/// Chunks reach the store in batches (every 100 ms or 64 KiB), so each attempt's channel also
/// keeps the chunks published but not stored yet: a viewer that subscribes gets them with its
/// receiver, under the same lock as publishing, and so never misses a chunk that was sent live
/// before it came and stored only after it read the store.
#[derive(Debug, Default)]
pub struct LogHub {
    /// By job id, then by attempt.
    channels: Mutex<HashMap<i64, HashMap<i64, Channel>>>,
}

#[derive(Debug)]
struct Channel {
    tx: broadcast::Sender<LiveEvent>,
    unstored: Vec<LogChunk>,
    /// A worker of this process produces the attempt's log (until it closes the channel).
    local: bool,
    /// The attempt's lease moved on: what it still publishes goes nowhere.
    fenced: bool,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            tx: broadcast::channel(1024).0,
            unstored: Vec::new(),
            local: false,
            fenced: false,
        }
    }

    /// Ends the attempt's streams for good: its viewers go on with the job's current attempt.
    fn fence(&mut self) {
        if !self.fenced {
            self.fenced = true;
            self.unstored.clear();
            let _ = self.tx.send(LiveEvent::End);
        }
    }
}

type Channels = HashMap<i64, HashMap<i64, Channel>>;

fn channel(map: &mut Channels, lease: JobLease) -> &mut Channel {
    map.entry(lease.job_id)
        .or_default()
        .entry(lease.attempt)
        .or_insert_with(Channel::new)
}

fn existing(map: &Channels, lease: JobLease) -> Option<&Channel> {
    map.get(&lease.job_id)?.get(&lease.attempt)
}

fn remove(map: &mut Channels, lease: JobLease) -> Option<Channel> {
    let attempts = map.get_mut(&lease.job_id)?;
    let ch = attempts.remove(&lease.attempt);
    if attempts.is_empty() {
        map.remove(&lease.job_id);
    }
    ch
}

impl LogHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels.lock().expect("log hub")
    }

    /// Subscribes to an attempt's live events, with the chunks published but not yet stored.
    /// Read the stored log after subscribing, then these chunks, then the live ones, skipping
    /// every chunk whose `seq` was already seen: no chunk is missed or repeated.
    pub fn subscribe(&self, lease: JobLease) -> (broadcast::Receiver<LiveEvent>, Vec<LogChunk>) {
        let mut map = self.lock();
        let ch = channel(&mut map, lease);
        (ch.tx.subscribe(), ch.unstored.clone())
    }

    /// The chunks of an attempt published but not yet stored (for a viewer that lagged behind).
    pub fn unstored(&self, lease: JobLease) -> Vec<LogChunk> {
        existing(&self.lock(), lease)
            .map(|ch| ch.unstored.clone())
            .unwrap_or_default()
    }

    /// True while a worker of this process produces the attempt's log and its lease is not
    /// known to have moved on: its end comes as [`LiveEvent::End`], after the last chunk, not
    /// from the store.
    pub fn is_local(&self, lease: JobLease) -> bool {
        existing(&self.lock(), lease).is_some_and(|ch| ch.local && !ch.fenced)
    }

    /// A worker of this process starts `lease`'s attempt: older attempts of the job are fenced.
    pub(crate) fn begin(&self, lease: JobLease) {
        let mut map = self.lock();
        if let Some(attempts) = map.get_mut(&lease.job_id) {
            for (_, ch) in attempts.iter_mut().filter(|(a, _)| **a < lease.attempt) {
                ch.fence();
            }
        }
        channel(&mut map, lease).local = true;
    }

    pub(crate) fn publish(&self, lease: JobLease, chunk: LogChunk) {
        let mut map = self.lock();
        let ch = channel(&mut map, lease);
        if ch.fenced {
            return;
        }
        ch.local = true;
        ch.unstored.push(chunk.clone());
        let _ = ch.tx.send(LiveEvent::Chunk(chunk));
    }

    /// The store now holds an attempt's chunks up to `seq`.
    pub(crate) fn stored(&self, lease: JobLease, seq: i64) {
        if let Some(ch) = self
            .lock()
            .get_mut(&lease.job_id)
            .and_then(|m| m.get_mut(&lease.attempt))
        {
            ch.unstored.retain(|c| c.seq > seq);
        }
    }

    /// The attempt's lease moved on (the store refused its write): its viewers are told, its
    /// chunks not stored are dropped, and what it still publishes goes nowhere, until it closes.
    pub(crate) fn fence(&self, lease: JobLease) {
        channel(&mut self.lock(), lease).fence();
    }

    /// Ends an attempt's stream and forgets it.
    pub fn close(&self, lease: JobLease) {
        if let Some(ch) = remove(&mut self.lock(), lease) {
            let _ = ch.tx.send(LiveEvent::End);
        }
    }

    /// Forgets an attempt's channel once nobody listens and nothing awaits storing; a fenced
    /// one stays until its attempt closes it.
    pub fn release(&self, lease: JobLease) {
        let mut map = self.lock();
        if existing(&map, lease)
            .is_some_and(|ch| ch.tx.receiver_count() == 0 && ch.unstored.is_empty() && !ch.fenced)
        {
            remove(&mut map, lease);
        }
    }

    /// Passes word from the store to a job's viewers, if it has any: whichever attempt they
    /// follow, they read the store, which holds only what the current attempt wrote.
    fn tell(&self, job: i64, event: LiveEvent) {
        if let Some(attempts) = self.lock().get(&job) {
            for ch in attempts.values() {
                let _ = ch.tx.send(event.clone());
            }
        }
    }

    /// Tells every viewer that anything may have changed.
    fn tell_all(&self) {
        for ch in self.lock().values().flat_map(|m| m.values()) {
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

    /// The first attempt of `job`.
    fn at(job: i64) -> JobLease {
        JobLease {
            job_id: job,
            attempt: 1,
        }
    }

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
        hub.publish(at(7), chunk(1));
        hub.publish(at(7), chunk(2));
        // Chunk 1 reached the store; 2 is only in memory when the viewer subscribes.
        hub.stored(at(7), 1);
        let (mut live, unstored) = hub.subscribe(at(7));
        assert_eq!(unstored, vec![chunk(2)]);
        hub.publish(at(7), chunk(3));
        match live.try_recv() {
            Ok(LiveEvent::Chunk(c)) => assert_eq!(c, chunk(3)),
            other => panic!("expected chunk 3 live, got {other:?}"),
        }
        assert_eq!(hub.unstored(at(7)), vec![chunk(2), chunk(3)]);
        hub.stored(at(7), 3);
        assert!(hub.unstored(at(7)).is_empty());
    }

    #[test]
    fn a_channel_with_unstored_chunks_outlives_its_last_viewer() {
        let hub = LogHub::default();
        let (live, _) = hub.subscribe(at(9));
        hub.publish(at(9), chunk(1));
        drop(live);
        hub.release(at(9));
        let (_live, unstored) = hub.subscribe(at(9));
        assert_eq!(
            unstored,
            vec![chunk(1)],
            "release dropped a chunk not yet stored"
        );
        hub.close(at(9));
        assert!(hub.unstored(at(9)).is_empty());
    }

    #[test]
    fn word_from_the_store_reaches_only_the_viewers_of_its_job() {
        let hub = Arc::new(LogHub::default());
        let changes = Changes {
            work: Arc::new(Notify::new()),
            hub: hub.clone(),
            local: Default::default(),
        };
        let (mut five, _) = hub.subscribe(at(5));
        let (mut six, _) = hub.subscribe(at(6));
        changes.log_stored(5, 12);
        changes.job_ended(6);
        // A job nobody watches gets no channel from word about it.
        changes.log_stored(8, 1);
        assert!(matches!(five.try_recv(), Ok(LiveEvent::Stored(12))));
        assert!(five.try_recv().is_err(), "nothing else for job 5");
        assert!(matches!(six.try_recv(), Ok(LiveEvent::Changed)));
        assert!(six.try_recv().is_err(), "nothing else for job 6");
        assert!(hub.channels.lock().unwrap().get(&8).is_none());
        assert!(!hub.is_local(at(5)), "job 5 runs elsewhere");
        hub.publish(at(5), chunk(13));
        assert!(hub.is_local(at(5)));

        changes.missed();
        assert!(matches!(six.try_recv(), Ok(LiveEvent::Changed)));
        hub.close(at(5));
        assert!(!hub.is_local(at(5)), "closed: nothing more from here");
    }

    #[test]
    fn a_lost_attempts_chunks_and_end_never_reach_the_next_attempts_viewers() {
        let hub = LogHub::default();
        let (first, second) = (
            at(4),
            JobLease {
                job_id: 4,
                attempt: 2,
            },
        );
        let (mut old, _) = hub.subscribe(first);
        hub.begin(first);
        hub.publish(first, chunk(1));
        // The lease moved on: the second attempt starts here while the first runs on, late.
        let (mut new, _) = hub.subscribe(second);
        hub.begin(second);
        hub.publish(first, chunk(5));
        hub.publish(second, chunk(3));
        hub.close(first);
        assert!(matches!(old.try_recv(), Ok(LiveEvent::Chunk(c)) if c == chunk(1)));
        assert!(
            matches!(old.try_recv(), Ok(LiveEvent::End)),
            "the first attempt's viewers move on"
        );
        assert!(matches!(new.try_recv(), Ok(LiveEvent::Chunk(c)) if c == chunk(3)));
        assert!(new.try_recv().is_err(), "nothing of the first attempt");
        assert!(hub.is_local(second));
        assert!(!hub.is_local(first));
        let (_late, unstored) = hub.subscribe(second);
        assert_eq!(unstored, vec![chunk(3)]);
    }

    #[test]
    fn a_refused_write_fences_its_attempt_until_it_closes() {
        let hub = LogHub::default();
        let (mut live, _) = hub.subscribe(at(3));
        hub.publish(at(3), chunk(1));
        hub.fence(at(3));
        hub.publish(at(3), chunk(2));
        assert!(matches!(live.try_recv(), Ok(LiveEvent::Chunk(c)) if c == chunk(1)));
        assert!(matches!(live.try_recv(), Ok(LiveEvent::End)));
        assert!(live.try_recv().is_err(), "nothing after the fence");
        assert!(hub.unstored(at(3)).is_empty(), "refused chunks are dropped");
        assert!(!hub.is_local(at(3)));
        drop(live);
        hub.release(at(3));
        hub.publish(at(3), chunk(3));
        assert!(hub.unstored(at(3)).is_empty(), "fenced until closed");
        hub.close(at(3));
        assert!(hub.channels.lock().unwrap().get(&3).is_none());
    }
}
