//! The single filter stage every log byte passes, and the log size cap.
//!
//! Output leaves the marker parser as chunks; each chunk goes through one [`LogFilter`] (the
//! secret masker plugs in here) and then the [`LogCap`], which stops the log at a configured size
//! and says so visibly. Bytes move in chunks, never lines, so ANSI colours and very long lines
//! arrive intact.

use bytes::Bytes;

/// A streaming transformation of log bytes, e.g. secret masking.
///
/// It has the same shape as `slipway_secrets::Masker`: output may lag input (a secret can span
/// two chunks), and `finish` flushes what is held back. `Sync` keeps a running job's future
/// `Send`, so servers can spawn jobs on their runtime like any other task.
pub trait LogFilter: Send + Sync {
    /// Filters one chunk, appending what is ready to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// Flushes held-back bytes at the end of the stream.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// Passes bytes through unchanged (no secrets in the job).
#[derive(Debug, Default)]
pub struct PassThrough;

impl LogFilter for PassThrough {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(chunk);
    }
    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

impl LogFilter for slipway_secrets::Masker {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        slipway_secrets::Masker::push(self, chunk, out);
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        slipway_secrets::Masker::finish(self, out);
    }
}

/// Stops a job's log at `cap` bytes, with one visible notice.
#[derive(Debug)]
pub struct LogCap {
    cap: u64,
    written: u64,
    truncated: bool,
}

impl LogCap {
    /// A cap of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        LogCap {
            cap,
            written: 0,
            truncated: false,
        }
    }

    /// Bytes admitted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the cap was reached.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// What of `chunk` may still be logged; at the cap, the cut-off part is replaced once by a
    /// notice. After that everything is dropped.
    pub fn admit(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.truncated {
            return None;
        }
        let room = self.cap - self.written;
        if (chunk.len() as u64) <= room {
            self.written += chunk.len() as u64;
            return Some(chunk);
        }
        self.truncated = true;
        let mut out = chunk.slice(..room as usize).to_vec();
        self.written = self.cap;
        out.extend_from_slice(
            format!(
                "\n\x1b[31;1m[slipway] The log reached its size limit of {} bytes; the rest of this job's output is not kept.\x1b[0m\n",
                self.cap
            )
            .as_bytes(),
        );
        Some(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_in_chunks(values: &[&str], input: &str, size: usize) -> String {
        let (masker, _) = slipway_secrets::Masker::new(
            values
                .iter()
                .map(|s| slipway_secrets::Secret::new(s.to_string())),
        );
        let mut filter: Box<dyn LogFilter> = Box::new(masker);
        let mut out = Vec::new();
        for c in input.as_bytes().chunks(size) {
            filter.push(c, &mut out);
        }
        filter.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_secrets_masker_plugs_in_and_masks_across_chunks() {
        for size in 1..8 {
            assert_eq!(
                mask_in_chunks(&["hunter22"], "pw=hunter22 and hunter22!", size),
                "pw=[secure] and [secure]!"
            );
        }
    }

    #[test]
    fn the_cap_cuts_once_with_a_notice() {
        let mut cap = LogCap::new(10);
        assert_eq!(cap.admit(Bytes::from_static(b"12345")).unwrap(), "12345");
        let cut = cap.admit(Bytes::from_static(b"6789abcdef")).unwrap();
        assert!(cut.starts_with(b"67890"[..4].as_ref()));
        assert!(String::from_utf8_lossy(&cut).contains("size limit of 10 bytes"));
        assert_eq!(cap.admit(Bytes::from_static(b"more")), None);
        assert!(cap.truncated());
    }
}
