//! Finding secrets fast: long patterns through a sampled 4-byte fingerprint filter in front of
//! an anchored Aho-Corasick automaton, short ones through a plain (SIMD-prefiltered) search.
//!
//! A plain Aho-Corasick search looks at every byte through a large automaton. Log text almost
//! never contains a secret, so most of that work can be skipped: when every pattern is at least
//! `step + 3` bytes long, any occurrence covers one of the positions `from + step - 1`,
//! `from + 2*step - 1`, …, and the 4 bytes there are one of the pattern's first `step` 4-byte
//! windows. Those windows are kept in a hashed bitmap; only where the bitmap says "maybe" does
//! the automaton try the `step` possible start positions, in order, anchored. The first one that
//! matches is the leftmost match, and the automaton's leftmost-longest semantics pick the
//! longest pattern there.
//!
//! One short secret would force `step` down to 1 for all, so patterns shorter than
//! [`SHORT_LEN`] get their own unanchored automaton (few patterns: its prefilter is fast), and
//! the two results are merged: the leftmost start wins, then the longer match. With more than
//! [`MAX_SHORT`] short patterns everything goes through the sampled filter with a small step.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};

/// log2 of the bitmap size in bits: 2^18 bits is 32 KiB, small enough to stay in cache.
const BITS: u32 = 18;

/// The most positions skipped per probe; more would fill the bitmap when there are many secrets.
const MAX_STEP: usize = 16;

/// Patterns shorter than this go to the unanchored automaton; the rest can be sampled at
/// least every `SHORT_LEN - 3` bytes.
const SHORT_LEN: usize = 12;

/// The most short patterns searched separately; beyond this the automaton's SIMD prefilter
/// gives up and a second full scan would be slower than sampling every byte.
const MAX_SHORT: usize = 64;

/// The leftmost-longest matcher for a set of patterns, each at least 4 bytes long.
#[derive(Debug, Clone)]
pub(super) struct Finder {
    long: Option<Sampled>,
    short: Option<AhoCorasick>,
}

impl Finder {
    /// Builds the matcher; `patterns` must be non-empty and each at least 4 bytes long.
    pub(super) fn new(patterns: &[Vec<u8>]) -> Finder {
        let (mut short, mut long): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            patterns.iter().cloned().partition(|p| p.len() < SHORT_LEN);
        if short.len() > MAX_SHORT {
            // Too many for the fast prefilter: two full scans would cost more than sampling
            // every byte once.
            long.append(&mut short);
        }
        let short = (!short.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&short)
                .expect("leftmost-longest automata over a few short patterns always build")
        });
        Finder {
            long: (!long.is_empty()).then(|| Sampled::new(&long)),
            short,
        }
    }

    /// Calls `found(start, end)` for each leftmost-longest match in `hay` that starts in
    /// `from..limit`, in order (a match may end after `limit`, but not after the end of `hay`).
    pub(super) fn for_each(
        &self,
        hay: &[u8],
        from: usize,
        limit: usize,
        mut found: impl FnMut(usize, usize),
    ) {
        // The next match of each half, once searched. A cached match stays valid while it
        // starts at or after `pos`; a cached "none before `limit`" stays valid for good.
        let mut next_long: Option<Option<(usize, usize)>> = None;
        let mut next_short: Option<Option<(usize, usize)>> = None;
        let stale = |cached: &Option<Option<(usize, usize)>>, pos: usize| match cached {
            None => true,
            Some(Some((start, _))) => *start < pos,
            Some(None) => false,
        };
        let mut pos = from;
        while pos < limit {
            if let Some(long) = &self.long
                && stale(&next_long, pos)
            {
                next_long = Some(long.find(hay, pos, limit));
            }
            if let Some(short) = &self.short
                && stale(&next_short, pos)
            {
                next_short = Some(
                    short
                        .find(Input::new(hay).span(pos..hay.len()))
                        .filter(|m| m.start() < limit)
                        .map(|m| (m.start(), m.end())),
                );
            }
            let best = match (next_long.flatten(), next_short.flatten()) {
                (Some(a), Some(b)) => Some(if (a.0, usize::MAX - a.1) <= (b.0, usize::MAX - b.1) {
                    a
                } else {
                    b
                }),
                (a, b) => a.or(b),
            };
            let Some((start, end)) = best else { break };
            found(start, end);
            pos = end;
        }
    }
}

/// Long patterns behind the sampled fingerprint filter.
#[derive(Debug, Clone)]
struct Sampled {
    automaton: AhoCorasick,
    bitmap: Box<[u64]>,
    step: usize,
}

fn gram(hay: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([hay[at], hay[at + 1], hay[at + 2], hay[at + 3]])
}

fn slot(gram: u32) -> usize {
    (gram.wrapping_mul(0x9E37_79B1) >> (32 - BITS)) as usize
}

impl Sampled {
    /// Builds the filter and automaton; `patterns` must be non-empty and each at least 4 bytes long.
    fn new(patterns: &[Vec<u8>]) -> Sampled {
        let min_len = patterns
            .iter()
            .map(Vec::len)
            .min()
            .expect("at least one pattern");
        assert!(min_len >= 4, "patterns are at least 4 bytes");
        let step = (min_len - 3).min(MAX_STEP);
        let mut bitmap = vec![0u64; 1 << (BITS - 6)].into_boxed_slice();
        for pattern in patterns {
            for offset in 0..step {
                let s = slot(gram(pattern, offset));
                bitmap[s >> 6] |= 1 << (s & 63);
            }
        }
        let build = |kind| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .start_kind(StartKind::Anchored)
                .kind(kind)
                .build(patterns)
        };
        // A DFA can exceed its size limit with very many long values; the contiguous NFA has
        // no such limit and is only somewhat slower on the rare probes that reach it.
        let automaton = build(Some(AhoCorasickKind::DFA))
            .or_else(|_| build(None))
            .expect("anchored leftmost-longest automata over non-empty patterns always build");
        Sampled {
            automaton,
            bitmap,
            step,
        }
    }

    fn maybe(&self, hay: &[u8], at: usize) -> bool {
        let s = slot(gram(hay, at));
        self.bitmap[s >> 6] & (1 << (s & 63)) != 0
    }

    /// The leftmost-longest match in `hay` that starts in `from..limit` (it may end after
    /// `limit`, but not after the end of `hay`), as `(start, end)`.
    fn find(&self, hay: &[u8], from: usize, limit: usize) -> Option<(usize, usize)> {
        // The last position a 4-byte window fits at.
        let last = hay.len().checked_sub(4)?;
        let step = self.step;
        let mut probe = from + step - 1;
        // Candidates for a probe are `probe + 1 - step ..= probe`.
        while probe <= last && probe + 1 - step < limit {
            if self.maybe(hay, probe) {
                for start in probe + 1 - step..=probe.min(limit - 1) {
                    let input = Input::new(hay)
                        .span(start..hay.len())
                        .anchored(Anchored::Yes);
                    if let Some(m) = self.automaton.find(input) {
                        return Some((start, m.end()));
                    }
                }
            }
            probe += step;
        }
        None
    }
}
