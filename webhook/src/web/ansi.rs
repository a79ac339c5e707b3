//! Log text to HTML: every character escaped, ANSI SGR colours turned into classed spans, every
//! other escape sequence dropped. This is the only place log bytes become markup.
//!
//! A job's log arrives in chunks, and a colour (or an escape sequence itself) may start in one
//! chunk and end in a later one. [`AnsiHtml`] keeps the colour state and any unfinished escape
//! sequence between chunks, and renders each chunk as balanced HTML: spans are closed at the end
//! of a chunk and reopened at the start of the next, so every chunk can be inserted on its own.

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Renders one piece of log text on its own, starting with no colour.
pub fn to_html(text: &str) -> String {
    AnsiHtml::new().push(text)
}

/// The most parameter bytes of a control sequence kept while waiting for its end; a sequence with
/// more is read to its end and ignored, so nothing a log holds makes the converter grow.
const MAX_PARAMS: usize = 256;

/// The SGR attributes in force.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Style {
    bold: bool,
    italic: bool,
    underline: bool,
    /// One of the 16 standard colours.
    fg: Option<u8>,
    /// One of the 16 standard colours.
    bg: Option<u8>,
}

impl Style {
    fn is_plain(&self) -> bool {
        *self == Style::default()
    }

    fn classes(&self) -> String {
        let mut out = Vec::new();
        if self.bold {
            out.push("b".to_string());
        }
        if self.italic {
            out.push("i".to_string());
        }
        if self.underline {
            out.push("u".to_string());
        }
        if let Some(f) = self.fg {
            out.push(format!("f{f}"));
        }
        if let Some(g) = self.bg {
            out.push(format!("g{g}"));
        }
        out.join(" ")
    }

    /// Applies the parameters of one `ESC [ … m` sequence.
    fn apply(&mut self, params: &str) {
        // `38:5:196` (sub-parameters) and `38;5;196` mean the same.
        let mut codes = params.split([';', ':']).map(|p| {
            if p.is_empty() {
                Some(0)
            } else {
                p.parse::<u16>().ok()
            }
        });
        while let Some(code) = codes.next() {
            let Some(code) = code else { continue };
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => self.bold = false,
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((code - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                100..=107 => self.bg = Some((code - 100 + 8) as u8),
                38 | 48 => {
                    // Extended colours: `5;N` (256 colours) or `2;R;G;B`. The first 16 of the
                    // 256 are the standard ones; the rest are shown uncoloured.
                    let colour = match codes.next().flatten() {
                        Some(5) => codes.next().flatten().filter(|n| *n < 16).map(|n| n as u8),
                        Some(2) => {
                            codes.next();
                            codes.next();
                            codes.next();
                            None
                        }
                        _ => None,
                    };
                    if code == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Where the parser is inside an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    /// Plain text.
    Text,
    /// After `ESC`.
    Esc,
    /// Inside `ESC [` (control sequence), collecting parameters.
    Csi,
    /// Inside `ESC ]` (operating system command, e.g. a window title), up to `BEL` or `ESC \`.
    Osc,
    /// Inside an OSC, after an `ESC` that may start its `ESC \` end.
    OscEsc,
    /// After `ESC` and an intermediate byte (`ESC ( B`), waiting for the final byte.
    EscIntermediate,
}

/// Converts one job's log to HTML chunk by chunk, carrying colours and unfinished escape
/// sequences from each chunk to the next.
#[derive(Debug, Clone)]
pub struct AnsiHtml {
    style: Style,
    seq: Seq,
    /// The parameters of the control sequence being read.
    params: String,
    /// The control sequence being read has more than `MAX_PARAMS` parameter bytes.
    overflow: bool,
}

impl Default for AnsiHtml {
    fn default() -> Self {
        AnsiHtml::new()
    }
}

impl AnsiHtml {
    /// A converter at the start of a log: no colour, no sequence under way.
    pub fn new() -> AnsiHtml {
        AnsiHtml {
            style: Style::default(),
            seq: Seq::Text,
            params: String::new(),
            overflow: false,
        }
    }

    /// Renders the next chunk of the log. The result is balanced HTML; text keeps the colour that
    /// earlier chunks set, and an escape sequence cut at the end of this chunk takes effect in
    /// the next one.
    pub fn push(&mut self, text: &str) -> String {
        let mut out = Out {
            html: String::with_capacity(text.len() + 16),
            open: None,
            plain: String::new(),
        };
        for c in text.chars() {
            match self.seq {
                Seq::Text => self.text(c, &mut out),
                Seq::Esc => match c {
                    '[' => {
                        self.seq = Seq::Csi;
                        self.params.clear();
                    }
                    ']' => self.seq = Seq::Osc,
                    '\u{20}'..='\u{2f}' => self.seq = Seq::EscIntermediate,
                    _ => self.end_seq(),
                },
                Seq::Csi => match c {
                    '\u{20}'..='\u{3f}' if self.params.len() < MAX_PARAMS => self.params.push(c),
                    '\u{20}'..='\u{3f}' => self.overflow = true,
                    '\u{40}'..='\u{7e}' => {
                        let sgr = c == 'm'
                            && !self.overflow
                            && self
                                .params
                                .chars()
                                .all(|p| p.is_ascii_digit() || p == ';' || p == ':');
                        if sgr {
                            out.flush(&self.style);
                            self.style.apply(&self.params);
                        }
                        self.end_seq();
                    }
                    // A byte that cannot be part of a control sequence ends it unfinished;
                    // the byte itself is text again.
                    c => {
                        self.end_seq();
                        self.text(c, &mut out);
                    }
                },
                Seq::Osc => match c {
                    '\u{7}' => self.end_seq(),
                    '\u{1b}' => self.seq = Seq::OscEsc,
                    _ => {}
                },
                Seq::OscEsc => match c {
                    '\\' => self.end_seq(),
                    '\u{1b}' => {}
                    _ => self.seq = Seq::Osc,
                },
                Seq::EscIntermediate => match c {
                    '\u{20}'..='\u{2f}' => {}
                    _ => self.end_seq(),
                },
            }
        }
        out.flush(&self.style);
        if out.open.is_some() {
            out.html.push_str("</span>");
        }
        out.html
    }

    /// One character outside any escape sequence.
    fn text(&mut self, c: char, out: &mut Out) {
        match c {
            '\u{1b}' => self.seq = Seq::Esc,
            '\r' => {}
            c => out.plain.push(c),
        }
    }

    fn end_seq(&mut self) {
        self.seq = Seq::Text;
        self.overflow = false;
        self.params.clear();
    }
}

/// One chunk's HTML as it is written.
struct Out {
    html: String,
    /// The classes of the open span.
    open: Option<String>,
    /// Text not yet written, all in the current style.
    plain: String,
}

impl Out {
    /// Writes the pending text in `style`, opening or closing spans only around text.
    fn flush(&mut self, style: &Style) {
        if self.plain.is_empty() {
            return;
        }
        let want = (!style.is_plain()).then(|| style.classes());
        if self.open != want {
            if self.open.is_some() {
                self.html.push_str("</span>");
            }
            if let Some(classes) = &want {
                self.html.push_str("<span class=\"");
                self.html.push_str(classes);
                self.html.push_str("\">");
            }
            self.open = want;
        }
        push_escaped(&mut self.html, &self.plain);
        self.plain.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&str]) -> Vec<String> {
        let mut conv = AnsiHtml::new();
        parts.iter().map(|p| conv.push(p)).collect()
    }

    #[test]
    fn markup_in_logs_stays_text() {
        assert_eq!(
            to_html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn colours_become_spans_and_other_sequences_vanish() {
        assert_eq!(
            to_html("\u{1b}[1;32mok\u{1b}[0m done\u{1b}[2K\r\n"),
            "<span class=\"b f2\">ok</span> done\n"
        );
    }

    #[test]
    fn an_escape_sequence_cannot_smuggle_markup() {
        assert_eq!(
            to_html("\u{1b}[31m<b>\u{1b}[m"),
            "<span class=\"f1\">&lt;b&gt;</span>"
        );
        assert_eq!(to_html("\u{1b}[31;<b>m\u{1b}[1\n<"), "&gt;m\n&lt;");
    }

    #[test]
    fn a_colour_opened_in_one_chunk_is_closed_in_a_later_one() {
        assert_eq!(
            chunks(&["a \u{1b}[31mred", " still red\n", "", "more\u{1b}[0m plain"]),
            [
                "a <span class=\"f1\">red</span>",
                "<span class=\"f1\"> still red\n</span>",
                "",
                "<span class=\"f1\">more</span> plain",
            ]
        );
    }

    #[test]
    fn an_escape_sequence_split_across_chunks_takes_effect() {
        // Cut after ESC, inside the parameters, and just before the final byte.
        assert_eq!(
            chunks(&["x\u{1b}", "[1;3", "2", "mgreen\u{1b}[", "0", "m."]),
            ["x", "", "", "<span class=\"b f2\">green</span>", "", "."]
        );
        // A window title cut in two is dropped whole.
        assert_eq!(
            chunks(&["a\u{1b}]0;ti", "tle\u{7}b\u{1b}]2;t\u{1b}", "\\c"]),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn attributes_add_up_and_are_removed_one_by_one() {
        assert_eq!(
            chunks(&[
                "\u{1b}[1m\u{1b}[34mA",
                "\u{1b}[22mB\u{1b}[39;44mC\u{1b}[49mD"
            ]),
            [
                "<span class=\"b f4\">A</span>",
                "<span class=\"f4\">B</span><span class=\"g4\">C</span>D"
            ]
        );
        assert_eq!(
            to_html("\u{1b}[38;5;9mbright\u{1b}[38;5;200mother\u{1b}[38;2;1;2;3;4mu"),
            "<span class=\"f9\">bright</span>other<span class=\"u\">u</span>"
        );
    }

    #[test]
    fn an_endless_escape_sequence_is_dropped_not_held() {
        let long = "1;".repeat(MAX_PARAMS);
        let mut conv = AnsiHtml::new();
        assert_eq!(conv.push("\u{1b}["), "");
        for _ in 0..100 {
            assert_eq!(conv.push(&long), "");
        }
        assert!(conv.params.len() <= MAX_PARAMS);
        assert_eq!(conv.push("mtext\n"), "text\n");
    }

    /// What a reader sees: each character of text with the classes it is shown in.
    fn rendered(html: &str) -> Vec<(char, String)> {
        let mut out = Vec::new();
        let mut class = String::new();
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            if let Some(tail) = rest.strip_prefix("<span class=\"") {
                let end = tail.find("\">").unwrap();
                class = tail[..end].to_string();
                rest = &tail[end + 2..];
            } else if let Some(tail) = rest.strip_prefix("</span>") {
                class.clear();
                rest = tail;
            } else {
                assert_ne!(c, '<', "unexpected markup in {html}");
                out.push((c, class.clone()));
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    #[test]
    fn chunked_output_matches_the_whole_for_every_cut() {
        let log = "\u{1b}[1;31mERR\u{1b}[0m ok \u{1b}]0;t\u{7}\u{1b}(B<x>\u{1b}[4mund\u{1b}[24m é\u{1b}[32m\r\nnext\u{1b}[m\n";
        let whole = to_html(log);
        assert_eq!(
            whole,
            "<span class=\"b f1\">ERR</span> ok &lt;x&gt;<span class=\"u\">und</span> é<span class=\"f2\">\nnext</span>\n"
        );
        for a in (0..=log.len()).filter(|i| log.is_char_boundary(*i)) {
            for b in (a..=log.len()).filter(|i| log.is_char_boundary(*i)) {
                let parts = chunks(&[&log[..a], &log[a..b], &log[b..]]);
                for p in &parts {
                    assert_eq!(
                        p.matches("<span").count(),
                        p.matches("</span>").count(),
                        "{p}"
                    );
                }
                assert_eq!(
                    rendered(&parts.concat()),
                    rendered(&whole),
                    "cut at {a} and {b}: {parts:?}"
                );
            }
        }
    }
}
