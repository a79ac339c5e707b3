//! Ruby regular expressions, compiled with the `regex` crate so they match the way Travis matched them.
//!
//! Travis evaluated `=~` with Ruby's engine. The `regex` crate differs from it in ways that change
//! results on ordinary patterns, so a pattern is rewritten before it is compiled:
//!
//! - `^` and `$` are line anchors in Ruby, always: the pattern runs in multi-line mode.
//! - `\d`, `\w`, `\s`, `\h`, `\b` (and their negations) are ASCII-only in Ruby.
//! - `\Z` (end, or before a final newline) and `\e` (escape) exist only in Ruby.
//! - A `{` that does not start a valid interval is a literal in Ruby; `{,n}` means `{0,n}`.
//! - Ruby's inline `m` flag is Rust's `s` flag (dot matches newline).
//!
//! What the `regex` crate cannot do at all (look-around, back-references) is reported as an error
//! instead of being approximated. The crate's guarantee of linear-time matching is worth more on a
//! CI server than those features: a pipeline file cannot stall the planner with a pathological pattern.

use regex::{Regex, RegexBuilder};

/// Compiled size limit for one pattern: generous for any real condition, small enough that a
/// hostile repetition count fails fast instead of using a lot of memory.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles a Ruby pattern, or says in one line why it cannot be compiled.
pub(crate) fn compile(ruby: &str) -> Result<Regex, String> {
    let translated = translate(ruby);
    RegexBuilder::new(&translated)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
        .map_err(|err| match err {
            regex::Error::Syntax(text) => text
                .lines()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or("syntax error")
                .to_string(),
            regex::Error::CompiledTooBig(_) => "pattern is too large".to_string(),
            _ => "invalid pattern".to_string(),
        })
}

/// Rewrites Ruby-only syntax into the `regex` crate's equivalent (see the module docs).
fn translate(ruby: &str) -> String {
    let chars: Vec<char> = ruby.chars().collect();
    let mut out = String::with_capacity(ruby.len() + 8);
    out.push_str("(?m)");
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
                if j > start && matches!(chars.get(j), Some(':') | Some(')')) {
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
        'b' if !in_class => ("(?-u:\\b)", ""),
        'B' if !in_class => ("(?-u:\\B)", ""),
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
        compile(pattern).expect(pattern).is_match(text)
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
    fn unsupported_and_invalid_patterns_are_errors() {
        assert!(compile("[z-a]").is_err());
        assert!(compile("(?!x)").unwrap_err().contains("look-around"));
        assert!(compile("(a").is_err());
    }
}
