//! The dotenv format `--env-file` and `--secret-file` read: `NAME=VALUE` lines, `#` comments,
//! blank lines, an optional `export ` in front, and values bare, 'single-quoted' (literal) or
//! "double-quoted" (`\n`, `\t`, `\"`, `\\` and `\$` escapes; may span lines). Nothing is expanded:
//! `$HOME` in a value stays `$HOME`, so a file means the same on every machine.
//!
//! A line that is none of these is an error naming the file, the line and the fix, because a
//! silently skipped line would be a variable that quietly goes missing from the job.

use std::fmt;

/// One `NAME=VALUE` of a dotenv file, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The variable's name.
    pub name: String,
    /// The value, unquoted and unescaped.
    pub value: String,
    /// The 1-based line the entry starts on.
    pub line: usize,
}

/// Why a dotenv file cannot be read: the file, the line, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// The file as the user named it.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
    /// How to write it instead.
    pub fix: String,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}; {}",
            self.file, self.line, self.problem, self.fix
        )
    }
}

impl std::error::Error for DotenvError {}

/// True for a name a POSIX shell can export.
pub fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses the text of the dotenv file `file` (named in errors only).
///
/// Errors never quote a value: the file may hold secrets.
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, DotenvError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let err = |problem: &str, fix: &str| DotenvError {
            file: file.to_owned(),
            line: start + 1,
            problem: problem.to_owned(),
            fix: fix.to_owned(),
        };
        let line = lines[i].trim_start_matches('\u{feff}').trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((name, rest)) = line.split_once('=') else {
            return Err(err(
                "expected NAME=VALUE",
                "write the variable as NAME=VALUE (a line starting with # is a comment)",
            ));
        };
        let name = name.trim_end();
        if !is_var_name(name) {
            return Err(err(
                &format!("`{}` is not a variable name", printable(name)),
                "names are letters, digits and _, not starting with a digit (NAME=VALUE)",
            ));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                // The closing quote may be on a later line: gather lines until it is found.
                let mut body = rest[1..].to_owned();
                let (value, tail) = loop {
                    if let Some(found) = closing_quote(&body, q) {
                        break found;
                    }
                    let Some(next) = lines.get(i) else {
                        return Err(err(
                            &format!("the {} quote is never closed", quote_name(q)),
                            &format!("end the value with {q}"),
                        ));
                    };
                    body.push('\n');
                    body.push_str(next);
                    i += 1;
                };
                let tail = tail.trim();
                if !(tail.is_empty() || tail.starts_with('#')) {
                    return Err(err(
                        &format!("text after the closing {} quote", quote_name(q)),
                        "put the whole value inside the quotes, or start a comment with ` #`",
                    ));
                }
                if q == '"' { unescape(&value) } else { value }
            }
            _ => bare_value(rest),
        };
        out.push(Entry {
            name: name.to_owned(),
            value,
            line: start + 1,
        });
    }
    Ok(out)
}

fn quote_name(q: char) -> &'static str {
    if q == '"' { "double" } else { "single" }
}

/// A name as an error may show it: at most 40 characters, control characters escaped.
fn printable(name: &str) -> String {
    name.chars().take(40).flat_map(char::escape_debug).collect()
}

/// The quoted text up to the closing quote `q` (a `\` escapes the next character inside double
/// quotes) and what follows it, or `None` when `body` has no closing quote.
fn closing_quote(body: &str, q: char) -> Option<(String, &str)> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some((body[..i].to_owned(), &body[i + 1..]));
        }
    }
    None
}

/// A double-quoted value's escapes: `\n`, `\r`, `\t`, and `\` before any other character keeps
/// that character (`\"`, `\\`, `\$`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// An unquoted value: trimmed, and cut at a ` #` comment.
fn bare_value(text: &str) -> String {
    let cut = text
        .char_indices()
        .find(|&(i, c)| c == '#' && text[..i].ends_with([' ', '\t']))
        .map_or(text, |(i, _)| &text[..i]);
    cut.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse("t.env", text)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }

    fn p(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn reads_bare_quoted_commented_and_exported_lines() {
        let text = "# a comment\n\nA=1\nexport B = two words  # note\nC='lit $HOME \\n'\n\
                    D=\"tab\\tq\\\"\\$X\"\nE=\nF=a#b\n";
        assert_eq!(
            pairs(text),
            vec![
                p("A", "1"),
                p("B", "two words"),
                p("C", "lit $HOME \\n"),
                p("D", "tab\tq\"$X"),
                p("E", ""),
                p("F", "a#b"),
            ]
        );
    }

    #[test]
    fn a_double_quoted_value_may_span_lines_and_keeps_its_first_line_number() {
        let entries = parse("t.env", "KEY=\"-----BEGIN\nbody\n-----END\"\nNEXT=1\n").unwrap();
        assert_eq!(entries[0].value, "-----BEGIN\nbody\n-----END");
        assert_eq!(entries[0].line, 1);
        assert_eq!((entries[1].name.as_str(), entries[1].line), ("NEXT", 4));
    }

    #[test]
    fn bad_lines_name_file_line_and_fix_without_quoting_values() {
        let cases = [
            ("A=1\njust words\n", 2, "expected NAME=VALUE"),
            ("1A=x\n", 1, "`1A` is not a variable name"),
            (
                "A=1\nB=\"open\nC=2\n",
                2,
                "the double quote is never closed",
            ),
            (
                "A='x' trailing-secret\n",
                1,
                "text after the closing single quote",
            ),
        ];
        for (text, line, problem) in cases {
            let e = parse("dir/.env", text).unwrap_err();
            assert_eq!((e.line, e.problem.as_str()), (line, problem), "{text:?}");
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("dir/.env:{line}: ")), "{shown}");
            assert!(!shown.contains("trailing-secret"), "{shown}");
        }
    }
}
