//! Text-level helpers of lint: Travis's key-name matching for suggestions, env var assignment
//! parsing, canonical base64, and positions inside a scalar.

use crate::yaml::{Node, Pos, Style};

pub(super) fn where_(path: &str) -> String {
    if path.is_empty() {
        "the root".to_owned()
    } else {
        format!("`{path}`")
    }
}

/// Travis's `clean` repair: dashes and spaces become underscores, other punctuation goes.
pub(super) fn clean_key(key: &str) -> String {
    let key: String = key
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let key = key.trim_start_matches("__").trim_end_matches('_');
    key.replace("__", "_")
}

/// The known key Travis would read a misspelled key as: Levenshtein distance below half of the
/// shorter name (at most 4); ties go to the name sharing more letters, then the longer name.
pub fn travis_match<'k>(name: &str, candidates: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let len = name.chars().count();
    if len < 3 {
        return None;
    }
    let mut pairs: Vec<(usize, &str)> = candidates
        .filter_map(|other| {
            let d = strsim::levenshtein(name, other);
            let max = (len as f64 / 2.0)
                .min(other.chars().count() as f64 / 2.0)
                .min(4.0);
            ((d as f64) < max).then_some((d, other))
        })
        .collect();
    pairs.sort_by_key(|(d, _)| *d);
    if pairs.len() > 1 && pairs[0].0 == pairs[1].0 {
        let best = pairs[0].0;
        let shared = |other: &str| {
            let mut cs: Vec<char> = name.chars().filter(|c| other.contains(*c)).collect();
            cs.sort_unstable();
            cs.dedup();
            cs.len()
        };
        pairs.retain(|(d, _)| *d == best);
        pairs.sort_by_key(|(_, other)| {
            (
                std::cmp::Reverse(shared(other)),
                std::cmp::Reverse(other.len()),
            )
        });
    }
    pairs.first().map(|(_, other)| *other)
}

/// The closest name for a "did you mean" hint; looser than [`travis_match`].
pub(super) fn nearest<'k>(
    name: &str,
    candidates: impl Iterator<Item = &'k str>,
) -> Option<&'k str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// True when `s` is base64 that decodes and re-encodes to itself (what Travis calls encoded).
pub fn is_canonical_base64(s: &str) -> bool {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !s.len().is_multiple_of(4) {
        return false;
    }
    let pad = s.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return false;
    }
    let body = &s[..s.len() - pad];
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    if body.iter().any(|b| value(*b).is_none()) {
        return false;
    }
    // The unused low bits of the last character must be zero, or re-encoding changes it.
    match (pad, body.last().and_then(|b| value(*b))) {
        (1, Some(v)) => v & 0b11 == 0,
        (2, Some(v)) => v & 0b1111 == 0,
        _ => true,
    }
}

pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What is wrong with a line of variable definitions; characters count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvVarsError {
    /// Something other than a name where a definition starts.
    #[error("expected a variable name at character {0}")]
    NoName(usize),
    /// A character that cannot follow a definition.
    #[error("unexpected `{found}` at character {at}")]
    Unexpected {
        /// The character.
        found: char,
        /// Where.
        at: usize,
    },
    /// A quote (`'`, `"` or a backquote) that is never closed.
    #[error("a `{0}` is not closed")]
    OpenQuote(char),
    /// A `$(` or `${` that is never closed.
    #[error("a `${0}` is not closed")]
    OpenSubstitution(char),
}

/// Parses `A=1 B="two words" C=$(cmd)` the way Travis reads variable definitions (shell-like
/// words separated by spaces; a bare `NAME` means an empty value); `Err` says what is wrong.
pub fn parse_env_vars(text: &str) -> Result<Vec<(String, String)>, EnvVarsError> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let mut vars = Vec::new();
    while i < chars.len() {
        if chars[i] == '"' {
            // A whole `"NAME=value"` in double quotes.
            let start = i + 1;
            i = skip_quoted(&chars, i, '"')?;
            let inner: String = chars[start..i - 1].iter().collect();
            let (name, value) = inner.split_once('=').unwrap_or((inner.as_str(), ""));
            vars.push((name.to_owned(), value.to_owned()));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
                i += 1;
            }
            if i == start {
                return Err(EnvVarsError::NoName(start + 1));
            }
            let name: String = chars[start..i].iter().collect();
            let mut value = String::new();
            if chars.get(i) == Some(&'=') {
                i += 1;
                let value_start = i;
                i = skip_value(&chars, i)?;
                value = chars[value_start..i].iter().collect();
            }
            vars.push((name, value));
        }
        if i < chars.len() && !chars[i].is_whitespace() {
            return Err(EnvVarsError::Unexpected {
                found: chars[i],
                at: i + 1,
            });
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
    }
    Ok(vars)
}

/// Skips a quoted run starting at `chars[i] == quote`; returns the index after the closing quote.
fn skip_quoted(chars: &[char], mut i: usize, quote: char) -> Result<usize, EnvVarsError> {
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '\'' {
            i += 1;
        }
        i += 1;
    }
    if i >= chars.len() {
        return Err(EnvVarsError::OpenQuote(quote));
    }
    Ok(i + 1)
}

/// Skips one variable value (quotes, `$(…)`, `${…}` and backquotes may hold spaces).
fn skip_value(chars: &[char], mut i: usize) -> Result<usize, EnvVarsError> {
    while i < chars.len() && !chars[i].is_whitespace() {
        match chars[i] {
            '\\' => i += 2,
            q @ ('\'' | '"' | '`') => i = skip_quoted(chars, i, q)?,
            '$' if matches!(chars.get(i + 1), Some('(' | '{')) => {
                let close = if chars[i + 1] == '(' { ')' } else { '}' };
                let open = chars[i + 1];
                let mut depth = 0usize;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(EnvVarsError::OpenSubstitution(open)),
                        Some(c) if *c == open => depth += 1,
                        Some(c) if *c == close => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        Some(q @ ('\'' | '"' | '`')) => {
                            i = skip_quoted(chars, i, *q)?;
                            continue;
                        }
                        Some(_) => {}
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(i.min(chars.len()))
}

/// Position of a character offset inside a scalar, for pointing into `if:` conditions.
pub fn offset_in_scalar(node: &Node, offset: usize) -> Pos {
    let start = node.span.start;
    let quoted = node
        .as_scalar()
        .is_some_and(|s| matches!(s.style, Style::SingleQuoted | Style::DoubleQuoted));
    match node.as_scalar().map(|s| s.style) {
        Some(Style::Literal | Style::Folded) => Pos {
            line: start.line + 1,
            column: offset + 1,
        },
        _ => Pos {
            line: start.line,
            column: start.column + offset + usize::from(quoted),
        },
    }
}
