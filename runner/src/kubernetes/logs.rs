//! The job's output, read from the job container's log stream.
//!
//! A log stream can break for reasons that say nothing about the job (an API server restarting,
//! a proxy's idle timeout), so its end never ends the job by itself: the stream is followed with
//! timestamps, and when it stops before the job container has terminated it is opened again from
//! the last second seen (`sinceTime`, which the API takes in whole seconds), skipping the lines
//! already passed on. The output ends once the container has terminated and its log is read to
//! the end, or once the pod is gone.

use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncBufReadExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::mpsc;

use super::pod::JOB_CONTAINER;
use super::status::{JobState, job_state};
use crate::executor::{ExecError, OutputStream};

/// Pause before opening a broken stream again.
const RESUME_PAUSE: Duration = Duration::from_millis(500);

/// Follows the job container's log of pod `name` until the job ends; see the module docs.
pub(super) fn follow(pods: Api<Pod>, name: String) -> OutputStream {
    let (tx, rx) = mpsc::channel::<Result<Bytes, ExecError>>(64);
    tokio::spawn(async move {
        let mut last: Option<Timestamp> = None;
        loop {
            // However this stream ended, only the pod says whether the job did.
            let _ = read_once(&pods, &name, &mut last, &tx).await;
            if tx.is_closed() {
                return;
            }
            match job_state(&pods, &name).await {
                Ok(JobState::Terminated(_) | JobState::Gone) => {
                    // Whatever the container wrote after the stream broke is still in its log.
                    let _ = read_once(&pods, &name, &mut last, &tx).await;
                    return;
                }
                Ok(_) | Err(_) => tokio::time::sleep(RESUME_PAUSE).await,
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The stream ended or failed before the job did.
struct StreamBroke;

/// Reads one log stream from `last` on, passing on the lines not yet seen.
async fn read_once(
    pods: &Api<Pod>,
    name: &str,
    last: &mut Option<Timestamp>,
    tx: &mpsc::Sender<Result<Bytes, ExecError>>,
) -> Result<(), StreamBroke> {
    let params = LogParams {
        container: Some(JOB_CONTAINER.into()),
        follow: true,
        timestamps: true,
        // Whole seconds, rounded down, so no line after `last` is skipped.
        since_time: last.and_then(|t| Timestamp::from_second(t.as_second()).ok()),
        ..Default::default()
    };
    let reader = pods
        .log_stream(name, &params)
        .await
        .map_err(|_| StreamBroke)?;
    let mut lines = Box::pin(reader).lines_with_newlines();
    while let Some(line) = lines.next().await {
        let line = line.map_err(|_| StreamBroke)?;
        let Some((stamp, text)) = split_timestamp(&line) else {
            continue;
        };
        if last.is_some_and(|l| stamp <= l) {
            continue;
        }
        *last = Some(stamp);
        if tx.send(Ok(Bytes::from(text.to_vec()))).await.is_err() {
            return Ok(());
        }
    }
    Err(StreamBroke)
}

/// Splits a timestamped log line (`2026-01-02T03:04:05.123456789Z text`) into its time and text.
fn split_timestamp(line: &[u8]) -> Option<(Timestamp, &[u8])> {
    let space = line.iter().position(|b| *b == b' ')?;
    let stamp = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
    Some((stamp, &line[space + 1..]))
}

/// `lines` keeping each line's `\n`, so the output is passed on byte for byte.
trait LinesWithNewlines {
    fn lines_with_newlines(self) -> futures::stream::BoxStream<'static, std::io::Result<Vec<u8>>>;
}

impl<R: futures::AsyncBufRead + Send + Unpin + 'static> LinesWithNewlines for R {
    fn lines_with_newlines(self) -> futures::stream::BoxStream<'static, std::io::Result<Vec<u8>>> {
        futures::stream::unfold(self, |mut r| async move {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(line), r)),
                Err(e) => Some((Err(e), r)),
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamped_line_splits_into_time_and_text_byte_for_byte() {
        let (t, text) = split_timestamp(b"2026-01-02T03:04:05.5Z  two spaces\n").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.5Z");
        assert_eq!(text, b" two spaces\n");
        assert!(split_timestamp(b"no stamp here\n").is_none());
    }
}
