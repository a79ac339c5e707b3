//! The streaming log masker: every byte of a job's log passes through one [`Masker`], which
//! replaces each secret value (and the forms a job is likely to print it in) with `[secure]`,
//! even when a value is split across chunks.
//!
//! # What is masked
//! For every value of at least [`MIN_LEN`] bytes, and for every line of at least [`MIN_LEN`]
//! bytes of a multi-line value (trailing `\r` removed):
//! - the text itself;
//! - its base64 form (standard alphabet) at each of the three alignments it can have inside a
//!   longer base64 text, so `echo "$USER:$TOKEN" | base64` is masked as well as `base64 <<< $TOKEN`;
//!   the URL-safe alphabet likewise;
//! - its URL-encoded forms (`%20` and `+` for spaces).
//!
//! Matching is leftmost-longest over all of these at once (Aho-Corasick), so when two secrets
//! overlap, the earliest and then the longest one wins, and the output is the same however the
//! log is cut into chunks.
//!
//! # Streaming
//! [`Masker::push`] writes out every byte that can no longer be part of a match and holds back
//! at most `max_len - 1` bytes (the longest pattern minus one); [`Masker::finish`] flushes them.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::Secret;
use crate::secret::MASK;

mod finder;

use finder::Finder;

/// Values (and lines of values) shorter than this many bytes are not masked: masking `a` or
/// `12` would shred every log while hiding nothing worth hiding. [`Masker::new`] warns instead.
pub const MIN_LEN: usize = 4;

/// The characters `encodeURIComponent` leaves alone, plus the letters and digits.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Something the runner should show the user about the masking of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A value too short to mask; it will appear in logs if the job prints it.
    TooShort {
        /// The value's position among the values given to [`Masker::new`] (0-based).
        index: usize,
        /// Its length in characters.
        chars: usize,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::TooShort { index, chars } => write!(
                f,
                "secret value #{} has {chars} character(s), fewer than {MIN_LEN}: it is not masked in logs",
                index + 1
            ),
        }
    }
}

/// Replaces secrets with `[secure]` in a stream of log chunks. One per log stream (or one per
/// job when stdout and stderr are merged before masking).
#[derive(Debug, Clone)]
pub struct Masker {
    /// `None` when there is nothing to mask: every chunk passes straight through.
    finder: Option<Finder>,
    /// The longest pattern, in bytes.
    max_len: usize,
    /// Bytes not yet written out: they might start a secret that the next chunk completes.
    pending: Vec<u8>,
}

impl Masker {
    /// Builds the masker for a job's secret values; also returns a warning for each value too
    /// short to mask.
    pub fn new(values: impl IntoIterator<Item = Secret<String>>) -> (Masker, Vec<Warning>) {
        let (patterns, warnings) = patterns(values);
        let max_len = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let finder = (!patterns.is_empty()).then(|| Finder::new(&patterns));
        let masker = Masker {
            finder,
            max_len,
            pending: Vec::with_capacity(2 * max_len),
        };
        (masker, warnings)
    }

    /// The longest byte string masked; [`Masker::push`] holds back at most one byte less.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Masks `chunk` as the continuation of everything pushed before and appends to `out`
    /// every byte that can no longer be part of a secret.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let Some(finder) = &self.finder else {
            out.extend_from_slice(chunk);
            return;
        };
        // A match starting at `p` is decided once `p + max_len` bytes are known.
        let keep = self.max_len - 1;
        if self.pending.is_empty() {
            let limit = chunk.len().saturating_sub(keep);
            let resume = scan(finder, chunk, 0, limit, out);
            self.pending.extend_from_slice(&chunk[resume..]);
        } else if chunk.len() <= keep {
            self.pending.extend_from_slice(chunk);
            let limit = self.pending.len().saturating_sub(keep);
            let resume = scan(finder, &self.pending, 0, limit, out);
            self.pending.drain(..resume);
        } else {
            // Decide every held-back position with the first `keep` bytes of the chunk, then
            // continue in the chunk itself without copying it.
            let held = self.pending.len();
            self.pending.extend_from_slice(&chunk[..keep]);
            let resume = scan(finder, &self.pending, 0, held, out);
            self.pending.clear();
            let from = resume - held;
            let limit = chunk.len() - keep;
            let resume = scan(finder, chunk, from, limit, out);
            self.pending.extend_from_slice(&chunk[resume..]);
        }
    }

    /// Ends the stream: masks and writes out whatever was held back.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(finder) = &self.finder {
            let end = self.pending.len();
            scan(finder, &self.pending, 0, end, out);
        }
        self.pending.clear();
    }

    /// Masks a whole text at once (for error messages and other short strings).
    pub fn mask(&self, text: &[u8]) -> Vec<u8> {
        let mut fresh = Masker {
            finder: self.finder.clone(),
            max_len: self.max_len,
            pending: Vec::new(),
        };
        let mut out = Vec::with_capacity(text.len());
        fresh.push(text, &mut out);
        fresh.finish(&mut out);
        out
    }
}

/// Writes `hay[from..limit]` to `out` with every match that starts before `limit` masked, and
/// returns where the caller must continue: `limit`, or the end of a match that crosses it.
fn scan(finder: &Finder, hay: &[u8], from: usize, limit: usize, out: &mut Vec<u8>) -> usize {
    if from >= limit {
        return from;
    }
    let mut pos = from;
    finder.for_each(hay, from, limit, |start, end| {
        out.extend_from_slice(&hay[pos..start]);
        out.extend_from_slice(MASK.as_bytes());
        pos = end;
    });
    if pos < limit {
        out.extend_from_slice(&hay[pos..limit]);
        pos = limit;
    }
    pos
}

/// Every byte string to mask for `values` (deduplicated, each at least [`MIN_LEN`] long), and
/// the warnings for values too short to mask.
fn patterns(values: impl IntoIterator<Item = Secret<String>>) -> (Vec<Vec<u8>>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let value = value.expose();
        if value.len() < MIN_LEN {
            warnings.push(Warning::TooShort {
                index,
                chars: value.chars().count(),
            });
            continue;
        }
        add_forms(value, &mut patterns);
        if value.contains('\n') {
            for line in value.lines() {
                add_forms(line, &mut patterns);
            }
        }
    }
    patterns.retain(|p| p.len() >= MIN_LEN);
    patterns.sort_unstable();
    patterns.dedup();
    (patterns, warnings)
}

/// Adds the forms of `unit` a log is likely to contain.
fn add_forms(unit: &str, patterns: &mut Vec<Vec<u8>>) {
    let unit = unit.strip_suffix('\r').unwrap_or(unit);
    if unit.len() < MIN_LEN {
        return;
    }
    let bytes = unit.as_bytes();
    patterns.push(bytes.to_vec());
    // The whole encoding, as `base64 <<< "$SECRET"`-style output ends (padding included).
    patterns.push(STANDARD.encode(bytes).into_bytes());
    patterns.push(URL_SAFE.encode(bytes).into_bytes());
    for offset in 0..3 {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            patterns.push(base64_core(engine, bytes, offset));
        }
    }
    let component = utf8_percent_encode(unit, URL_COMPONENT).to_string();
    if component != unit {
        patterns.push(component.replace("%20", "+").into_bytes());
        patterns.push(component.into_bytes());
    }
}

/// The base64 characters that depend only on `bytes` when they follow `offset` other bytes in
/// the encoded input: the characters whose 6 bits lie entirely inside `bytes`.
fn base64_core(engine: &base64::engine::GeneralPurpose, bytes: &[u8], offset: usize) -> Vec<u8> {
    let mut input = vec![0u8; offset];
    input.extend_from_slice(bytes);
    let encoded = engine.encode(&input);
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + bytes.len())) / 6;
    encoded.as_bytes()[first..end.max(first)].to_vec()
}

#[cfg(test)]
mod tests;
