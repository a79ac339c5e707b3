//! Splits a job's raw output into log bytes and the markers its script writes.
//!
//! The compiled job script reports progress in-band: a marker is one line
//! `\x02slipway:<nonce>:<text>\n` written to the same stream as the commands' output. The nonce
//! is random per job, so a command cannot forge progress by printing something that looks like a
//! marker. The parser works on chunks of any size and keeps no more than one partial marker in
//! memory, so multi-gigabyte logs and very long lines pass through without being split into lines.

use bytes::{Bytes, BytesMut};

/// The byte that starts every marker (ASCII STX); rare in real output, so scanning is fast.
const START: u8 = 0x02;
/// Upper bound on a marker's length; a longer "marker" is treated as ordinary output.
const MAX_MARKER: usize = 512;

/// One piece of parsed output, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Output bytes to log as they are.
    Log(Bytes),
    /// The text of a marker (without prefix and newline).
    Marker(String),
}

/// Streaming marker parser for one job.
#[derive(Debug)]
pub struct MarkerParser {
    prefix: Vec<u8>,
    pending: BytesMut,
}

impl MarkerParser {
    /// A parser for markers carrying `nonce`.
    pub fn new(nonce: &str) -> Self {
        let mut prefix = vec![START];
        prefix.extend_from_slice(format!("slipway:{nonce}:").as_bytes());
        MarkerParser {
            prefix,
            pending: BytesMut::new(),
        }
    }

    /// The exact prefix the script must print before a marker's text.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Feeds one chunk, appending the pieces it completes to `out`.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Piece>) {
        let mut data = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            self.pending.split().freeze()
        };
        loop {
            let Some(at) = memchr::memchr(START, &data) else {
                push_log(out, data);
                return;
            };
            if at > 0 {
                push_log(out, data.slice(..at));
                data = data.slice(at..);
            }
            // `data` starts with START.
            let known = data.len().min(self.prefix.len());
            if data[..known] != self.prefix[..known] {
                // Not our marker: emit the START byte as output and go on.
                push_log(out, data.slice(..1));
                data = data.slice(1..);
                continue;
            }
            if data.len() < self.prefix.len() {
                self.pending.extend_from_slice(&data);
                return;
            }
            let body = &data[self.prefix.len()..];
            match memchr::memchr(b'\n', body) {
                Some(end) => {
                    out.push(Piece::Marker(
                        String::from_utf8_lossy(&body[..end]).into_owned(),
                    ));
                    data = data.slice(self.prefix.len() + end + 1..);
                }
                None if data.len() < MAX_MARKER => {
                    self.pending.extend_from_slice(&data);
                    return;
                }
                None => {
                    push_log(out, data.slice(..1));
                    data = data.slice(1..);
                }
            }
        }
    }

    /// Flushes whatever is left at the end of the stream as ordinary output.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        if !self.pending.is_empty() {
            let rest = self.pending.split().freeze();
            push_log(out, rest);
        }
    }
}

fn push_log(out: &mut Vec<Piece>, bytes: Bytes) {
    if !bytes.is_empty() {
        out.push(Piece::Log(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(input: &[u8], size: usize) -> Vec<Piece> {
        let mut p = MarkerParser::new("n0nce");
        let mut out = Vec::new();
        for chunk in input.chunks(size) {
            p.push(Bytes::copy_from_slice(chunk), &mut out);
        }
        p.finish(&mut out);
        // Normalise adjacent log pieces produced across pushes.
        let mut merged: Vec<Piece> = Vec::new();
        for piece in out {
            match (merged.last_mut(), piece) {
                (Some(Piece::Log(a)), Piece::Log(b)) => {
                    let mut v = a.to_vec();
                    v.extend_from_slice(&b);
                    *a = Bytes::from(v);
                }
                (_, p) => merged.push(p),
            }
        }
        merged
    }

    #[test]
    fn markers_are_split_out_of_output_at_any_chunk_size() {
        let input = b"hello\n\x02slipway:n0nce:cmd-start script 0\nworld \x1b[31mred\x1b[0m\x02slipway:n0nce:cmd-end script 0 1\ntail";
        let expected = vec![
            Piece::Log(Bytes::from_static(b"hello\n")),
            Piece::Marker("cmd-start script 0".into()),
            Piece::Log(Bytes::from_static(b"world \x1b[31mred\x1b[0m")),
            Piece::Marker("cmd-end script 0 1".into()),
            Piece::Log(Bytes::from_static(b"tail")),
        ];
        for size in [1, 2, 3, 7, 16, input.len()] {
            assert_eq!(parse_in_chunks(input, size), expected, "chunk size {size}");
        }
    }

    #[test]
    fn a_marker_with_the_wrong_nonce_is_plain_output() {
        let input = b"a\x02slipway:forged:result passed\nb";
        assert_eq!(
            parse_in_chunks(input, 4),
            vec![Piece::Log(Bytes::from_static(input))]
        );
    }

    #[test]
    fn an_unterminated_marker_at_the_end_is_kept_as_output() {
        let input = b"x\x02slipway:n0nce:cmd-st";
        assert_eq!(
            parse_in_chunks(input, 5),
            vec![Piece::Log(Bytes::from_static(input))]
        );
    }

    #[test]
    fn long_lines_pass_through_whole() {
        let line = vec![b'z'; 1 << 20];
        let out = parse_in_chunks(&line, 65536);
        assert_eq!(out, vec![Piece::Log(Bytes::from(line))]);
    }
}
