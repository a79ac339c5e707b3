//! Log text to HTML: every character escaped, ANSI SGR colours turned into classed spans, every
//! other escape sequence dropped. This is the only place log bytes become markup.

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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
    out
}

/// Renders one chunk of log text; colour state starts fresh per chunk.
pub fn to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut open = false;
    let mut chars = text.chars().peekable();
    let mut plain = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                out.push_str(&escape(&plain));
                plain.clear();
                if chars.peek() != Some(&'[') {
                    continue;
                }
                chars.next();
                let mut params = String::new();
                let mut fin = None;
                for p in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&p) {
                        fin = Some(p);
                        break;
                    }
                    params.push(p);
                }
                if fin != Some('m') {
                    continue;
                }
                let classes = sgr_classes(&params);
                if open {
                    out.push_str("</span>");
                    open = false;
                }
                if !classes.is_empty() {
                    out.push_str(&format!("<span class=\"{}\">", classes.join(" ")));
                    open = true;
                }
            }
            '\r' => {}
            c => plain.push(c),
        }
    }
    out.push_str(&escape(&plain));
    if open {
        out.push_str("</span>");
    }
    out
}

fn sgr_classes(params: &str) -> Vec<String> {
    let mut classes = Vec::new();
    for p in params.split(';') {
        match p.parse::<u8>().unwrap_or(0) {
            0 => classes.clear(),
            1 => classes.push("b".to_string()),
            3 => classes.push("i".to_string()),
            4 => classes.push("u".to_string()),
            n @ 30..=37 => classes.push(format!("f{}", n - 30)),
            n @ 90..=97 => classes.push(format!("f{}", n - 90 + 8)),
            n @ 40..=47 => classes.push(format!("g{}", n - 40)),
            _ => {}
        }
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
