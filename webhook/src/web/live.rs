//! A job's log over server-sent events: the stored chunks first, then chunks as they are
//! produced, then `end`. A job this process runs is followed from memory; one that another
//! process runs (on a shared store) from the store, as soon as the store says chunks were
//! stored. Either way each chunk is sent once, in order, by its `seq`.
//!
//! The job is looked up (and the caller's right to read it checked) before anything is
//! subscribed, and each stream holds a place under the per-address and total caps. The task that
//! feeds a stream ends as soon as its client goes away, dropping its subscription and place.

use super::access::{Caller, readable_job};
use super::{App, AppState, ansi};
use crate::loghub::LiveEvent;
use crate::store::{ChunkKind, LogChunk};
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
    job: i64,
    live: Option<tokio::sync::broadcast::Receiver<LiveEvent>>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        // The receiver first: the hub frees a channel only once nobody listens.
        self.live.take();
        self.app.engine.hub.release(self.job);
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

/// Follows a job that has not ended: its chunks from this process's workers as they are
/// produced, and those of other processes from the store as soon as the store says they are
/// there. Returns once the job has ended.
async fn follow(app: &Arc<App>, id: i64, feed: &mut Feed) -> Result<(), Gone> {
    let hub = &app.engine.hub;
    loop {
        // Subscribed before reading the store, so nothing falls between the two.
        let (live, unstored) = hub.subscribe(id);
        let mut sub = Subscription {
            app,
            job: id,
            live: Some(live),
        };
        feed.stored(app, id).await?;
        // Sent live before this viewer came, stored after it read the store.
        for c in &unstored {
            feed.send(c).await?;
        }
        if ended(app, id).await {
            return Ok(());
        }
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
                    }
                }
                Ok(LiveEvent::Changed) => {
                    feed.stored(app, id).await?;
                    // A job run here ends with `End`, after its last chunk.
                    if !hub.is_local(id) && ended(app, id).await {
                        return Ok(());
                    }
                }
                Ok(LiveEvent::End) | Err(RecvError::Closed) => {
                    if ended(app, id).await {
                        return Ok(());
                    }
                    // Not ended: the job was re-queued and runs on elsewhere.
                    break;
                }
                Err(RecvError::Lagged(_)) => {
                    // Catch up from the store, then from what is not stored yet.
                    feed.stored(app, id).await?;
                    for c in hub.unstored(id) {
                        feed.send(&c).await?;
                    }
                }
            }
        }
        drop(sub);
    }
}

/// True once the job will produce no more log (ended, or pruned).
async fn ended(app: &App, id: i64) -> bool {
    match app.store.job(id).await {
        Ok(Some(j)) => j.state.is_final(),
        Ok(None) => true,
        Err(_) => false,
    }
}
