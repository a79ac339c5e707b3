//! A job's log over server-sent events: the stored chunks first, then chunks as they are
//! produced, then `end`. A job this process runs is followed from memory; one that another
//! process runs (on a shared store) from the store, as soon as the store says chunks were
//! stored. Either way each chunk is sent once, in order, by its `seq`.
//!
//! A stream follows the job's current attempt. A lost attempt (its lease expired and the job was
//! queued again) may run on, late, in this process: its chunks and its end are its own, and a
//! viewer that followed it goes on with the next attempt from the stored log, which fencing
//! keeps free of the lost attempt's late lines.
//!
//! The job is looked up (and the caller's right to read it checked) before anything is
//! subscribed, and each stream holds a place under the per-address and total caps. The task that
//! feeds a stream ends as soon as its client goes away, dropping its subscription and place.

use super::access::{Caller, readable_job};
use super::{App, AppState, ansi};
use crate::loghub::LiveEvent;
use crate::store::{ChunkKind, JobLease, JobState, LogChunk};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One chunk as an SSE event. Output goes through the connection's converter, so a colour or an
/// escape sequence that spans chunks renders as one; every event's `html` is balanced on its own.
fn chunk_event(c: &LogChunk, colours: &mut ansi::AnsiHtml) -> SseEvent {
    let html = match c.kind {
        ChunkKind::Output => colours.push(&c.data),
        _ => ansi::escape(&c.data),
    };
    SseEvent::default()
        .event("chunk")
        .id(c.seq.to_string())
        .data(json!({"seq": c.seq, "kind": c.kind, "data": c.data, "html": html}).to_string())
}

/// A receiver of a job's live events that releases the job's channel in the hub whichever way
/// the feeding task ends.
struct Subscription<'a> {
    app: &'a App,
    lease: JobLease,
    live: Option<tokio::sync::broadcast::Receiver<LiveEvent>>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        // The receiver first: the hub frees a channel only once nobody listens.
        self.live.take();
        self.app.engine.hub.release(self.lease);
    }
}

/// The client went away.
struct Gone;

/// Sends chunks after `last` to the client, updating `last`.
struct Feed {
    tx: mpsc::Sender<SseEvent>,
    colours: ansi::AnsiHtml,
    last: i64,
}

impl Feed {
    async fn send(&mut self, c: &LogChunk) -> Result<(), Gone> {
        if c.seq <= self.last {
            return Ok(());
        }
        self.last = c.seq;
        let e = chunk_event(c, &mut self.colours);
        self.tx.send(e).await.map_err(|_| Gone)
    }

    /// A resumed stream (`Last-Event-ID`) continues in the colours the log had there.
    async fn resume_colours(&mut self, app: &App, job: i64) {
        let mut seen = 0;
        while seen < self.last {
            match app.store.log(job, seen, 2000).await {
                Ok(chunks) if !chunks.is_empty() => {
                    for c in chunks.iter().take_while(|c| c.seq <= self.last) {
                        if c.kind == ChunkKind::Output {
                            self.colours.push(&c.data);
                        }
                    }
                    seen = chunks.last().map_or(self.last, |c| c.seq);
                }
                _ => break,
            }
        }
    }

    /// The job's current attempt is `next`, no longer the one followed: what that one sent
    /// live past the stored log was never stored and never will be (its lease moved on), so the
    /// stored log goes on from there, with `next`'s chunks. Returns `next`.
    async fn moved_on(&mut self, app: &App, job: i64, next: i64) -> i64 {
        if let Ok(free) = app.store.next_seq(job).await {
            self.last = self.last.min(free - 1);
        }
        next
    }

    /// Everything stored after `last`, page by page.
    async fn stored(&mut self, app: &App, job: i64) -> Result<(), Gone> {
        loop {
            let chunks = app
                .store
                .log(job, self.last, 2000)
                .await
                .unwrap_or_default();
            if chunks.is_empty() {
                return Ok(());
            }
            for c in &chunks {
                self.send(c).await?;
            }
        }
    }
}

/// `GET /jobs/{id}/events`.
pub(super) async fn job_events(
    State(app): AppState,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let job = match readable_job(&app, &caller, id).await {
        Ok((job, _)) => job,
        Err(r) => return r,
    };
    let Some(slot) = app.limits.stream(caller.addr) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "10")],
            "too many live logs open; close some and retry\n",
        )
            .into_response();
    };
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    let finished = job.state.is_final();
    tokio::spawn(async move {
        let _slot = slot;
        let closed = tx.clone();
        tokio::select! {
            _ = feed(&app, id, after, finished, tx) => {}
            _ = closed.closed() => {}
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Feeds one stream until the job's log ends or the client goes away.
async fn feed(
    app: &Arc<App>,
    id: i64,
    after: i64,
    finished: bool,
    tx: mpsc::Sender<SseEvent>,
) -> Result<(), Gone> {
    let mut feed = Feed {
        tx,
        colours: ansi::AnsiHtml::new(),
        last: after,
    };
    feed.resume_colours(app, id).await;
    if !finished {
        follow(app, id, &mut feed).await?;
    }
    // Whatever was stored after the last live chunk (the final flush), or the whole log of a
    // finished job.
    feed.stored(app, id).await?;
    feed.tx
        .send(SseEvent::default().event("end").data("end"))
        .await
        .map_err(|_| Gone)
}

/// How often a viewer looks at the store unasked: the backstop for word from the store that
/// was lost, or never sent (a queued job cancelled on a store of one process).
const BACKSTOP: Duration = Duration::from_secs(5);

/// Where a job stands for its viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Now {
    /// It will produce no more log (ended after `attempts` claims, or pruned: 0).
    Ended { attempts: i64 },
    /// Its log comes from this attempt: the running one, or the next claim of a queued job.
    Attempt(i64),
    /// The store did not answer.
    Unknown,
}

async fn now(app: &App, id: i64) -> Now {
    match app.store.job(id).await {
        Ok(Some(j)) if j.state.is_final() => Now::Ended {
            attempts: j.attempts,
        },
        Ok(Some(j)) if j.state == JobState::Running => Now::Attempt(j.attempts),
        Ok(Some(j)) => Now::Attempt(j.attempts + 1),
        Ok(None) => Now::Ended { attempts: 0 },
        Err(_) => Now::Unknown,
    }
}

/// Follows a job that has not ended: the chunks of its current attempt from this process's
/// workers as they are produced, and those of other processes from the store as soon as the
/// store says they are there. A lost attempt still running here, late, is not followed: its
/// chunks and its end are its own. Returns once the job has ended.
async fn follow(app: &Arc<App>, id: i64, feed: &mut Feed) -> Result<(), Gone> {
    let hub = &app.engine.hub;
    let mut attempt = match now(app, id).await {
        Now::Ended { .. } => return Ok(()),
        Now::Attempt(a) => a,
        Now::Unknown => 1,
    };
    loop {
        let lease = JobLease {
            job_id: id,
            attempt,
        };
        // Subscribed before reading the store, so nothing falls between the two.
        let (live, unstored) = hub.subscribe(lease);
        let mut sub = Subscription {
            app,
            lease,
            live: Some(live),
        };
        feed.stored(app, id).await?;
        // Sent live before this viewer came, stored after it read the store.
        for c in &unstored {
            feed.send(c).await?;
        }
        match now(app, id).await {
            Now::Ended { .. } => return Ok(()),
            Now::Attempt(a) if a != attempt => {
                attempt = feed.moved_on(app, id, a).await;
                continue;
            }
            _ => {}
        }
        if let Some(next) = watch(app, lease, feed, &mut sub).await? {
            attempt = feed.moved_on(app, id, next).await;
            continue;
        }
        match now(app, id).await {
            Now::Ended { .. } => return Ok(()),
            Now::Attempt(a) if a != attempt => attempt = feed.moved_on(app, id, a).await,
            _ => {}
        }
    }
}

/// Passes an attempt's live events on until the job ends (`None`), its current attempt is
/// another (`Some` of it), or the attempt's stream ends here while the job goes on (`None` too:
/// the caller looks again).
async fn watch(
    app: &Arc<App>,
    lease: JobLease,
    feed: &mut Feed,
    sub: &mut Subscription<'_>,
) -> Result<Option<i64>, Gone> {
    let (hub, id) = (&app.engine.hub, lease.job_id);
    let moved = |now: Now| match now {
        Now::Attempt(a) if a != lease.attempt => Some(a),
        _ => None,
    };
    let mut backstop = tokio::time::interval_at(Instant::now() + BACKSTOP, BACKSTOP);
    while let Some(live) = sub.live.as_mut() {
        let event = tokio::select! {
            event = live.recv() => event,
            _ = backstop.tick() => Ok(LiveEvent::Changed),
        };
        match event {
            Ok(LiveEvent::Chunk(c)) => {
                // A chunk past a gap: the job moved here from another process whose last
                // chunks this viewer has not read yet.
                if c.seq > feed.last + 1 {
                    feed.stored(app, id).await?;
                }
                feed.send(&c).await?;
            }
            Ok(LiveEvent::Stored(seq)) => {
                if seq > feed.last {
                    feed.stored(app, id).await?;
                    // Stored by another process while this attempt runs here: the lease moved
                    // on to an attempt over there.
                    if hub.is_local(lease)
                        && let Some(a) = moved(now(app, id).await)
                    {
                        return Ok(Some(a));
                    }
                }
            }
            Ok(LiveEvent::Changed) => {
                feed.stored(app, id).await?;
                match now(app, id).await {
                    // A job run here ends with `End`, after its last chunk; a lost attempt
                    // running on here, late, is not waited for.
                    Now::Ended { attempts }
                        if !hub.is_local(lease) || attempts != lease.attempt =>
                    {
                        return Ok(None);
                    }
                    n => {
                        if let Some(a) = moved(n) {
                            return Ok(Some(a));
                        }
                    }
                }
            }
            Ok(LiveEvent::End) | Err(RecvError::Closed) => {
                // Ended, or the job was queued again and runs on elsewhere: looked at again.
                return Ok(None);
            }
            Err(RecvError::Lagged(_)) => {
                // Catch up from the store, then from what is not stored yet.
                feed.stored(app, id).await?;
                for c in hub.unstored(lease) {
                    feed.send(&c).await?;
                }
            }
        }
    }
    Ok(None)
}
