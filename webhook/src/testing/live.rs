//! A live log viewer over plain TCP: reads a job's server-sent events as they arrive, noting
//! when each chunk came, for tests and benchmarks of live logs.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One chunk event as the viewer got it.
#[derive(Debug, Clone)]
pub struct SeenChunk {
    pub seq: i64,
    pub kind: String,
    pub data: String,
    /// When its event was read off the connection.
    pub at: Instant,
}

/// A client of `GET /jobs/{id}/events`.
pub struct LogViewer {
    stream: TcpStream,
    raw: Vec<u8>,
    /// Chunk events in the order they came.
    pub chunks: Vec<SeenChunk>,
    /// The stream's `end` event came.
    pub ended: bool,
}

impl LogViewer {
    /// The chunks seen as `(seq, data)`, in the order they came: what a stored log is compared
    /// with.
    pub fn seen(&self) -> Vec<(i64, &str)> {
        self.chunks
            .iter()
            .map(|c| (c.seq, c.data.as_str()))
            .collect()
    }

    /// Opens job `job`'s event stream on the server at `base` (`http://host:port`), resuming
    /// after `last_event_id` if given; the response's status and, on anything but 200, its
    /// body.
    pub fn open(base: &str, job: i64, last_event_id: Option<i64>) -> Result<LogViewer, String> {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        // HTTP/1.0: the body is the rest of the connection, with no chunked framing to undo.
        write!(
            stream,
            "GET /jobs/{job}/events HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut viewer = LogViewer {
            stream,
            raw: Vec::new(),
            chunks: Vec::new(),
            ended: false,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while find(&viewer.raw, b"\r\n\r\n").is_none() {
            if !viewer.read_some()? && Instant::now() > deadline {
                return Err("no response head".into());
            }
        }
        let head_end = find(&viewer.raw, b"\r\n\r\n").unwrap_or(0) + 4;
        let head = String::from_utf8_lossy(&viewer.raw[..head_end]).into_owned();
        viewer.raw.drain(..head_end);
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            while viewer.read_some().unwrap_or(false) {}
            return Err(format!(
                "{}{}",
                head.lines().next().unwrap_or_default(),
                String::from_utf8_lossy(&viewer.raw)
            ));
        }
        Ok(viewer)
    }

    /// Reads what has arrived (waiting up to 200 ms for something); false when nothing did.
    fn read_some(&mut self) -> Result<bool, String> {
        let mut buf = [0u8; 16384];
        match self.stream.read(&mut buf) {
            Ok(0) => Err("the stream closed".into()),
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads events until `done` holds (true) or `within` passed (false).
    pub fn read_until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&LogViewer) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            self.take_events();
            if done(self) {
                return true;
            }
            if self.ended || Instant::now() > deadline {
                return false;
            }
            if let Err(e) = self.read_some() {
                self.take_events();
                assert!(done(self), "reading the event stream: {e}");
                return true;
            }
        }
    }

    /// Reads to the `end` event; false when it did not come `within`.
    pub fn read_to_end(&mut self, within: Duration) -> bool {
        self.read_until(within, |v| v.ended)
    }

    /// The output the viewer has, in order.
    pub fn text(&self) -> String {
        self.chunks.iter().map(|c| c.data.as_str()).collect()
    }

    /// Parses the complete events read so far.
    fn take_events(&mut self) {
        let now = Instant::now();
        while let Some(end) = find(&self.raw, b"\n\n") {
            let block = String::from_utf8_lossy(&self.raw[..end]).into_owned();
            self.raw.drain(..end + 2);
            let mut event = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            match event {
                "end" => self.ended = true,
                "chunk" => {
                    let v: Value = serde_json::from_str(&data).expect("a chunk event is JSON");
                    self.chunks.push(SeenChunk {
                        seq: v["seq"].as_i64().expect("a chunk has a seq"),
                        kind: v["kind"].as_str().unwrap_or_default().to_string(),
                        data: v["data"].as_str().unwrap_or_default().to_string(),
                        at: now,
                    });
                }
                _ => {}
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
