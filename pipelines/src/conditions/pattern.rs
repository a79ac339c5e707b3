//! Ruby regular expressions, compiled so they match the way Travis matched them.
//!
//! Travis evaluated `=~` with Ruby's engine (Onigmo). Patterns are compiled with `fancy-regex` in
//! its Oniguruma mode, which brings look-around, back-references and atomic groups, and runs
//! everything else on the `regex` crate's linear-time engines; backtracking is confined to the
//! fancy parts and capped, so a pipeline file cannot stall the planner with a pathological pattern.
//! A few Ruby rules still differ from that dialect, so a pattern is rewritten before it is compiled:
//!
//! - `^` and `$` are line anchors in Ruby, always: the pattern runs in multi-line mode.
//! - `\d`, `\w`, `\s`, `\h` (and their negations) are ASCII-only in Ruby. (`\b` stays
//!   Unicode-aware: an ASCII-only boundary would need look-around, and so backtracking.)
//! - `\e` (escape) exists only in Ruby.
//! - A `{` that does not start a valid interval is a literal in Ruby; `{,n}` means `{0,n}`.
//! - Ruby's inline `m` flag is Rust's `s` flag (dot matches newline).

use fancy_regex::{Regex, RegexBuilder};

/// Compiled size limit for one pattern: generous for any real condition, small enough that a
/// hostile repetition count fails fast instead of using a lot of memory.
const SIZE_LIMIT: usize = 1 << 20;

/// Backtracking steps one match may take in the look-around/back-reference parts of a pattern;
/// past it the match fails (and the comparison is false) instead of running for minutes.
const BACKTRACK_LIMIT: usize = 100_000;

/// Compiles a Ruby pattern, or says in one line why it cannot be compiled.
pub(crate) fn compile(ruby: &str) -> Result<Regex, String> {
    let translated = translate(ruby);
    RegexBuilder::new(&translated)
        .oniguruma_mode(true)
        .multi_line(true)
        .delegate_size_limit(SIZE_LIMIT)
        .delegate_dfa_size_limit(SIZE_LIMIT)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map_err(|err| {
            let text = err.to_string();
            // Errors from the underlying engine span several lines; the last says what is wrong.
            text.lines()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or_else(|| text.lines().next().unwrap_or("invalid pattern"))
                .to_string()
        })
}

/// Whether `regex` matches anywhere in `text`; `None` when matching gave up (backtrack limit).
pub(crate) fn is_match(regex: &Regex, text: &str) -> Option<bool> {
    regex.is_match(text).ok()
}

/// Rewrites Ruby-only syntax into the `regex` crate's equivalent (see the module docs).
fn translate(ruby: &str) -> String {
    let chars: Vec<char> = ruby.chars().collect();
    let mut out = String::with_capacity(ruby.len() + 8);
    let mut class_depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let in_class = class_depth > 0;
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    out.push('\\');
                    i += 1;
                    continue;
                };
                i += 2;
                out.push_str(&translate_escape(e, in_class));
            }
            '[' => {
                if in_class && chars.get(i + 1) == Some(&':') {
                    // A POSIX class such as `[:alpha:]` inside a bracket expression: copy it whole.
                    if let Some(end) = find_posix_end(&chars, i + 2) {
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                        continue;
                    }
                }
                class_depth += 1;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    // A `]` right after `[` or `[^` is a literal in both dialects.
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                class_depth -= 1;
                out.push(']');
                i += 1;
            }
            '{' if !in_class => match interval_end(&chars, i) {
                Some(end) => {
                    out.push('{');
                    if chars[i + 1] == ',' {
                        out.push('0');
                    }
                    out.extend(&chars[i + 1..=end]);
                    i = end + 1;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                }
            },
            '}' if !in_class => {
                out.push_str("\\}");
                i += 1;
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                out.push_str("(?");
                i += 2;
                // Inline flags: Ruby's `m` (dot matches newline) is Rust's `s`.
                let start = i;
                let mut j = i;
                while j < chars.len() && matches!(chars[j], 'i' | 'm' | 'x' | '-') {
                    j += 1;
                }
                if j > start && matches!(chars.get(j), Some(':' | ')')) {
                    for &flag in &chars[start..j] {
                        out.push(if flag == 'm' { 's' } else { flag });
                    }
                    i = j;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The Rust spelling of the Ruby escape `\e`, inside or outside a bracket expression.
fn translate_escape(e: char, in_class: bool) -> String {
    let (outside, inside) = match e {
        'd' => ("[0-9]", "0-9"),
        'D' => ("[^0-9]", "[:^digit:]"),
        'w' => ("[0-9A-Za-z_]", "[:word:]"),
        'W' => ("[^0-9A-Za-z_]", "[:^word:]"),
        's' => ("[\\t\\n\\x0B\\x0C\\r ]", "[:space:]"),
        'S' => ("[^\\t\\n\\x0B\\x0C\\r ]", "[:^space:]"),
        'h' => ("[0-9A-Fa-f]", "[:xdigit:]"),
        'H' => ("[^0-9A-Fa-f]", "[:^xdigit:]"),
        'Z' if !in_class => ("(?:\\n?\\z)", ""),
        'e' => ("\\x1B", "\\x1B"),
        c if c.is_ascii_alphanumeric() => return format!("\\{c}"),
        // Any other escaped character stands for itself (`\/` is a slash).
        c => return regex::escape(c.encode_utf8(&mut [0; 4])),
    };
    if in_class { inside } else { outside }.to_string()
}

/// Where `[:name:]` starting at `from` (just after `[:`) ends, if it is a POSIX class.
fn find_posix_end(chars: &[char], from: usize) -> Option<usize> {
    let mut j = from;
    if chars.get(j) == Some(&'^') {
        j += 1;
    }
    let name_start = j;
    while j < chars.len() && chars[j].is_ascii_lowercase() {
        j += 1;
    }
    (j > name_start && chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&']'))
        .then_some(j + 1)
}

/// If `{` at `start` opens a Ruby interval (`{n}`, `{n,}`, `{,m}`, `{n,m}`), the index of its `}`.
fn interval_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    let mut digits = 0;
    let mut commas = 0;
    while let Some(&c) = chars.get(j) {
        match c {
            '0'..='9' => digits += 1,
            ',' if commas == 0 => commas += 1,
            '}' => return (digits > 0).then_some(j),
            _ => return None,
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        is_match(&compile(pattern).expect(pattern), text).unwrap()
    }

    #[test]
    fn anchors_are_line_anchors_like_ruby() {
        assert!(matches("^b$", "a\nb\nc"));
        assert!(!matches("\\Ab", "a\nb"));
        assert!(matches("a\\Z", "a\n"));
    }

    #[test]
    fn shorthand_classes_are_ascii_like_ruby() {
        assert!(matches("^\\d+$", "123"));
        assert!(!matches("^\\d+$", "١٢٣"));
        assert!(!matches("^\\w$", "é"));
        assert!(matches("^[\\d.]+$", "1.2"));
        assert!(matches("^[^\\d]+$", "abc"));
        assert!(matches("^\\h+$", "beef"));
        assert!(matches("^[\\D]$", "x"));
    }

    #[test]
    fn braces_that_are_not_intervals_are_literals() {
        assert!(matches("^{foo}$", "{foo}"));
        assert!(matches("^a{,2}$", "aa"));
        assert!(matches("^a{2}$", "aa"));
        assert!(matches("x{", "x{"));
    }

    #[test]
    fn escaped_slash_and_ruby_only_escapes() {
        assert!(matches("^release\\/.*$", "release/1"));
        assert!(matches("\\e", "\u{1b}"));
    }

    #[test]
    fn ruby_m_flag_means_dot_all() {
        assert!(matches("(?m:a.b)", "a\nb"));
        assert!(!matches("a.b", "a\nb"));
    }

    #[test]
    fn look_around_and_back_references_work_as_in_ruby() {
        assert!(matches("^((?!\\[skip\\]).)*$", "fix parser"));
        assert!(!matches("^((?!\\[skip\\]).)*$", "fix [skip] parser"));
        assert!(!matches("^.*(?<!-built)$", "v1-built"));
        assert!(matches("^(\\w)\\1", "aab"));
    }

    #[test]
    fn invalid_patterns_are_errors() {
        assert!(compile("[z-a]").is_err());
        assert!(compile("(a").is_err());
        assert!(compile("*bar*").is_err());
    }

    #[test]
    fn runaway_backtracking_gives_up() {
        let regex = compile("^(a|a)+\\1b").unwrap();
        assert_eq!(is_match(&regex, &format!("{}!b", "a".repeat(40))), None);
    }
}
