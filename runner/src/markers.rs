//! Splits a job's raw output into log bytes and the markers its script writes.
//!
//! The compiled job script reports progress in-band: a marker is one line
//! `\x02slipway:<nonce>:<text>\n` written to the same stream as the commands' output. The nonce
//! is random per job, so a command cannot forge progress by printing something that looks like a
//! marker. The parser works on chunks of any size and keeps no more than one partial marker in
//! memory, so multi-gigabyte logs and very long lines pass through without being split into lines.

use bytes::{Bytes, BytesMut};
use slipway_pipelines::plan::PhaseName;

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

/// What a marker says. `script.rs` writes markers through `Display` and the runner reads them
/// back with [`Marker::parse`], so the two sides share one definition of every marker's words.
/// Where only the shell knows a value when it runs (an exit code, its own version), the script
/// writes the same words with a shell expansion in that place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// The shell running the script: bash with its version, or POSIX `sh` when `None`.
    Shell(Option<String>),
    /// A phase began.
    PhaseStart(PhaseName),
    /// A phase ended.
    PhaseEnd(PhaseName),
    /// A command began.
    CommandStart {
        phase: PhaseName,
        /// Its place in the phase, from 0.
        index: usize,
    },
    /// A command exited.
    CommandEnd {
        phase: PhaseName,
        /// Its place in the phase, from 0.
        index: usize,
        exit_code: i32,
    },
    /// Deploy step `index` began.
    DeployStart(usize),
    /// A deploy step ended.
    DeployEnd {
        /// The step, in file order from 0.
        index: usize,
        exit_code: i32,
    },
    /// The script waits on its stdin while the runner performs deploy step `index`.
    DeployRequest(usize),
    /// The script waits on its stdin while the runner uploads the artifacts.
    ArtifactsRequest,
    /// The script waits on its stdin for the cache archive (its length, then the tar).
    CacheRestoreRequest,
    /// The script waits on its stdin while the runner saves the gathered cache.
    CacheSaveRequest,
    /// `travis_terminate` with this exit code.
    Terminate(i32),
    /// Why the script could not go on.
    Error(String),
    /// The job's result as the script decided it.
    Result(ScriptResult),
}

/// The results a script reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptResult {
    /// Every command that decides the result passed.
    Passed,
    /// A `script` command failed.
    Failed,
    /// Anything else went wrong.
    Errored,
}

impl ScriptResult {
    /// The word in the marker.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptResult::Passed => "passed",
            ScriptResult::Failed => "failed",
            ScriptResult::Errored => "errored",
        }
    }
}

impl Marker {
    /// Reads a marker's text; `None` for one the runner does not know or that is malformed (it
    /// is ignored). A `terminate` without a readable code terminates with 1, and a result other
    /// than passed or failed is errored.
    pub fn parse(text: &str) -> Option<Marker> {
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let arg = |i: usize| args.get(i).copied().unwrap_or_default();
        let phase = |i: usize| PhaseName::ALL.into_iter().find(|p| p.as_str() == arg(i));
        let number = |i: usize| arg(i).parse::<usize>().ok();
        let code = |i: usize| arg(i).parse::<i32>().ok();
        Some(match kind {
            "shell" => Marker::Shell((arg(0) == "bash").then(|| arg(1).to_string())),
            "phase-start" => Marker::PhaseStart(phase(0)?),
            "phase-end" => Marker::PhaseEnd(phase(0)?),
            "cmd-start" => Marker::CommandStart {
                phase: phase(0)?,
                index: number(1)?,
            },
            "cmd-end" => Marker::CommandEnd {
                phase: phase(0)?,
                index: number(1)?,
                exit_code: code(2)?,
            },
            "deploy-start" => Marker::DeployStart(number(0)?),
            "deploy-end" => Marker::DeployEnd {
                index: number(0)?,
                exit_code: code(1)?,
            },
            "deploy-request" => Marker::DeployRequest(text[kind.len()..].trim().parse().ok()?),
            "artifacts-request" if args.is_empty() => Marker::ArtifactsRequest,
            "cache-restore-request" if args.is_empty() => Marker::CacheRestoreRequest,
            "cache-save-request" if args.is_empty() => Marker::CacheSaveRequest,
            "terminate" => Marker::Terminate(code(0).unwrap_or(1)),
            "error" => Marker::Error(text.get("error ".len()..).unwrap_or_default().to_string()),
            "result" => Marker::Result(match arg(0) {
                "passed" => ScriptResult::Passed,
                "failed" => ScriptResult::Failed,
                _ => ScriptResult::Errored,
            }),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Marker::Shell(Some(version)) => write!(f, "shell bash {version}"),
            Marker::Shell(None) => write!(f, "shell sh"),
            Marker::PhaseStart(p) => write!(f, "phase-start {}", p.as_str()),
            Marker::PhaseEnd(p) => write!(f, "phase-end {}", p.as_str()),
            Marker::CommandStart { phase, index } => {
                write!(f, "cmd-start {} {index}", phase.as_str())
            }
            Marker::CommandEnd {
                phase,
                index,
                exit_code,
            } => write!(f, "cmd-end {} {index} {exit_code}", phase.as_str()),
            Marker::DeployStart(i) => write!(f, "deploy-start {i}"),
            Marker::DeployEnd { index, exit_code } => write!(f, "deploy-end {index} {exit_code}"),
            Marker::DeployRequest(i) => write!(f, "deploy-request {i}"),
            Marker::ArtifactsRequest => write!(f, "artifacts-request"),
            Marker::CacheRestoreRequest => write!(f, "cache-restore-request"),
            Marker::CacheSaveRequest => write!(f, "cache-save-request"),
            Marker::Terminate(code) => write!(f, "terminate {code}"),
            Marker::Error(why) => write!(f, "error {why}"),
            Marker::Result(r) => write!(f, "result {}", r.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    fn phase() -> impl Strategy<Value = PhaseName> {
        proptest::sample::select(PhaseName::ALL.to_vec())
    }

    fn marker() -> impl Strategy<Value = Marker> {
        prop_oneof![
            proptest::option::of("[0-9a-z.()-]{0,16}").prop_map(Marker::Shell),
            phase().prop_map(Marker::PhaseStart),
            phase().prop_map(Marker::PhaseEnd),
            (phase(), any::<usize>())
                .prop_map(|(phase, index)| Marker::CommandStart { phase, index }),
            (phase(), any::<usize>(), any::<i32>()).prop_map(|(phase, index, exit_code)| {
                Marker::CommandEnd {
                    phase,
                    index,
                    exit_code,
                }
            }),
            any::<usize>().prop_map(Marker::DeployStart),
            (any::<usize>(), any::<i32>())
                .prop_map(|(index, exit_code)| Marker::DeployEnd { index, exit_code }),
            any::<usize>().prop_map(Marker::DeployRequest),
            Just(Marker::ArtifactsRequest),
            Just(Marker::CacheRestoreRequest),
            Just(Marker::CacheSaveRequest),
            any::<i32>().prop_map(Marker::Terminate),
            "[^\n\x02]{0,60}".prop_map(Marker::Error),
            proptest::sample::select(vec![
                ScriptResult::Passed,
                ScriptResult::Failed,
                ScriptResult::Errored
            ])
            .prop_map(Marker::Result),
        ]
    }

    proptest! {
        #[test]
        fn every_marker_the_script_writes_reads_back_as_itself(m in marker()) {
            prop_assert_eq!(Marker::parse(&m.to_string()), Some(m));
        }

        #[test]
        fn markers_in_output_read_back_as_themselves_at_any_chunk_size(
            markers in proptest::collection::vec(marker(), 1..8),
            log in "[^\x02]{0,40}",
            size in 1usize..64,
        ) {
            let mut wire = Vec::new();
            for m in &markers {
                wire.extend_from_slice(log.as_bytes());
                wire.extend_from_slice(format!("\x02slipway:n0nce:{m}\n").as_bytes());
            }
            let read: Vec<Marker> = parse_in_chunks(&wire, size)
                .into_iter()
                .filter_map(|piece| match piece {
                    Piece::Marker(text) => Marker::parse(&text),
                    Piece::Log(_) => None,
                })
                .collect();
            prop_assert_eq!(read, markers);
        }
    }

    #[test]
    fn malformed_markers_are_not_read_and_lenient_ones_keep_their_defaults() {
        assert_eq!(Marker::parse("cmd-end script x 1"), None);
        assert_eq!(Marker::parse("phase-start nonsense"), None);
        assert_eq!(Marker::parse("artifacts-request now"), None);
        assert_eq!(Marker::parse("something-else 1"), None);
        assert_eq!(Marker::parse("terminate x"), Some(Marker::Terminate(1)));
        assert_eq!(
            Marker::parse("result odd"),
            Some(Marker::Result(ScriptResult::Errored))
        );
        assert_eq!(Marker::parse("error"), Some(Marker::Error(String::new())));
        assert_eq!(Marker::parse("shell sh"), Some(Marker::Shell(None)));
    }
}
