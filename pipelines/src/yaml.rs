//! A YAML loader that keeps where every node came from.
//!
//! Pipeline files are read with `saphyr-parser` (the maintained successor of `yaml-rust`, see
//! `docs/yaml.md`), whose event stream carries a span for every scalar and collection. This module
//! turns that stream into a [`Node`] tree and does the parts the event stream leaves to its user:
//! anchors and aliases, merge keys (`<<: *defaults`), and a resource budget so that a hostile file
//! (alias bombs, deep nesting, huge inputs) is rejected quickly with a clear error instead of
//! exhausting memory or the stack.
//!
//! Scalars are kept as the text the author wrote plus its quoting style; deciding whether `on` is
//! the boolean `true` (YAML 1.1, which Travis used) or a string is left to the caller, who knows
//! which key it is reading.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as RawSpan};

/// A position in a pipeline file, as editors count: line and column both start at 1.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The source range of a node, so diagnostics can point at the exact text to fix.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    /// Where the node starts.
    pub start: Pos,
    /// Where the node ends (exclusive).
    pub end: Pos,
}

impl Span {
    fn from_raw(raw: RawSpan) -> Self {
        Span {
            start: Pos {
                line: raw.start.line(),
                column: raw.start.col() + 1,
            },
            end: Pos {
                line: raw.end.line(),
                column: raw.end.col() + 1,
            },
        }
    }
}

/// How a scalar was written; plain scalars are the only ones YAML resolves to booleans, numbers or null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Style {
    /// Unquoted text.
    Plain,
    /// `'single quoted'`.
    SingleQuoted,
    /// `"double quoted"`.
    DoubleQuoted,
    /// `|` block scalar.
    Literal,
    /// `>` block scalar.
    Folded,
}

/// A scalar exactly as written (after YAML unescaping), with its style and tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scalar {
    /// The scalar's text.
    pub text: String,
    /// How it was quoted.
    pub style: Style,
    /// An explicit tag such as `!!str`, if any.
    pub tag: Option<String>,
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A string, number, boolean or null, still unresolved.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order; duplicate keys are kept so lint can report them.
    Map(Vec<(Node, Node)>),
}

/// One YAML node with its source span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it was written (for an alias: where the anchored node was written).
    pub span: Span,
}

/// What a scalar resolves to under the YAML 1.1 rules Travis's Ruby loader applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    /// `~`, `null`, or nothing at all.
    Null,
    /// `true`/`false`, and YAML 1.1's `yes`/`no`/`on`/`off`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// Anything else.
    Str(&'a str),
}

impl Node {
    /// The scalar, if this node is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar's text, whatever it would resolve to (`3.10` stays `"3.10"`).
    pub fn as_str(&self) -> Option<&str> {
        self.as_scalar().map(|s| s.text.as_str())
    }

    /// The sequence's items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// Travis's "one or a list": a sequence's items, any other node as the only item.
    pub fn one_or_many(&self) -> Vec<&Node> {
        match &self.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![self],
        }
    }

    /// The mapping's entries, if this node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Looks a key up in a mapping; like Ruby's YAML loader, the last of duplicate keys wins.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// True for an explicit or implicit null (`key:` with nothing after it).
    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Some(Resolved::Null))
    }

    /// Resolves a scalar with YAML 1.1 rules (what Travis's Ruby loader did); `None` for collections.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        let s = self.as_scalar()?;
        if s.style != Style::Plain || s.tag.as_deref().is_some_and(|t| t.ends_with("str")) {
            return Some(Resolved::Str(&s.text));
        }
        Some(resolve_plain(&s.text))
    }

    /// A short name for the node's type, for "expected a list, found a map" messages.
    pub fn type_name(&self) -> &'static str {
        match self.resolve() {
            None => match self.kind {
                NodeKind::Seq(_) => "a list",
                _ => "a map",
            },
            Some(Resolved::Null) => "nothing (null)",
            Some(Resolved::Bool(_)) => "a boolean",
            Some(Resolved::Int(_) | Resolved::Float(_)) => "a number",
            Some(Resolved::Str(_)) => "a string",
        }
    }

    /// Converts the node to JSON with YAML 1.1 scalar resolution, for options kept verbatim.
    ///
    /// Map keys are stringified (`on` stays `"on"` as a key: keys are names, not values).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            NodeKind::Scalar(_) => match self.resolve().unwrap_or(Resolved::Null) {
                Resolved::Null => J::Null,
                Resolved::Bool(b) => J::Bool(b),
                Resolved::Int(i) => J::from(i),
                Resolved::Float(f) => serde_json::Number::from_f64(f)
                    .map(J::Number)
                    .unwrap_or_else(|| J::String(self.as_str().unwrap_or_default().to_owned())),
                Resolved::Str(s) => J::String(s.to_owned()),
            },
            NodeKind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match &k.kind {
                        NodeKind::Scalar(s) => s.text.clone(),
                        _ => k.to_json().to_string(),
                    };
                    map.insert(key, v.to_json());
                }
                J::Object(map)
            }
        }
    }

    fn count(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar(_) => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// Resolves a plain scalar under YAML 1.1's core rules.
pub fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
            return Resolved::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => {
            return Resolved::Bool(false);
        }
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        let clean: String = text.chars().filter(|c| *c != '_').collect();
        if let Ok(i) = clean.parse::<i64>() {
            return Resolved::Int(i);
        }
    }
    let is_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+' | b'_'))
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && (digits.contains('.') || digits.contains(['e', 'E']));
    if is_float && let Ok(f) = text.replace('_', "").parse::<f64>() {
        return Resolved::Float(f);
    }
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        _ => Resolved::Str(text),
    }
}

/// Resource limits for loading one file; the defaults are far above any real pipeline file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes the loaded tree may hold, counting every copy an alias makes.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            max_nodes: 100_000,
        }
    }
}

/// Why a file could not be loaded as YAML; each variant carries where and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not UTF-8.
    #[error("{pos}: the file is not valid UTF-8 (byte offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        pos: Pos,
        /// Its byte offset.
        offset: usize,
    },
    /// The input is larger than [`Limits::max_bytes`].
    #[error("the file is {size} bytes, more than the {limit} bytes a pipeline file may have")]
    TooLarge {
        /// The input size.
        size: usize,
        limit: usize,
    },
    /// A YAML syntax error.
    #[error("{pos}: YAML syntax error: {message}")]
    Syntax {
        /// Where the parser stopped.
        pos: Pos,
        /// The parser's explanation.
        message: String,
    },
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("{pos}: nesting is deeper than {limit} levels")]
    TooDeep {
        /// The collection that went too deep.
        pos: Pos,
        limit: usize,
    },
    /// Aliases would expand the document past [`Limits::max_nodes`] (an "alias bomb").
    #[error("{pos}: the document expands to more than {limit} nodes (aliases repeat too much)")]
    TooManyNodes {
        /// The node at which the budget ran out.
        pos: Pos,
        limit: usize,
    },
    /// `*name` with no `&name` before it.
    #[error("{pos}: alias refers to an anchor that was not defined before it")]
    UndefinedAlias {
        /// Where the alias is.
        pos: Pos,
    },
}

impl LoadError {
    /// Where the problem is, when it has a place.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            LoadError::NotUtf8 { pos, .. }
            | LoadError::Syntax { pos, .. }
            | LoadError::TooDeep { pos, .. }
            | LoadError::TooManyNodes { pos, .. }
            | LoadError::UndefinedAlias { pos } => Some(*pos),
            LoadError::TooLarge { .. } => None,
        }
    }

    /// What the author can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            LoadError::NotUtf8 { .. } => "save the file as UTF-8",
            LoadError::TooLarge { .. } => "split the file or move data out of it",
            LoadError::Syntax { .. } => {
                "check indentation and quoting around this position; strings with `: ` or starting with `*`, `&`, `!` or `%` need quotes"
            }
            LoadError::TooDeep { .. } => "flatten the structure",
            LoadError::TooManyNodes { .. } => "use fewer nested aliases",
            LoadError::UndefinedAlias { .. } => {
                "define the anchor (`&name`) before using the alias (`*name`), or quote the value if `*` is meant literally"
            }
        }
    }
}

/// Loads the first YAML document of `bytes`; `Ok(None)` when the file holds no document at all.
pub fn load(bytes: &[u8], limits: Limits) -> Result<Option<Node>, LoadError> {
    if bytes.len() > limits.max_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        LoadError::NotUtf8 {
            pos: pos_of_offset(bytes, offset),
            offset,
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut result = Builder::new(limits).run(text);
    // libyaml (which Travis's loader used) accepts a multi-line quoted scalar whose continuation
    // lines are indented no deeper than its key; the YAML spec and saphyr do not. Such lines'
    // leading spaces are folded away, so indenting them changes no value and no line number.
    // The text is copied only when it needs repairing.
    let mut repaired: Option<String> = None;
    for _ in 0..16 {
        let Err(LoadError::Syntax { pos, message }) = &result else {
            break;
        };
        if !message.contains("indentation in quoted scalar") {
            break;
        }
        match reindent_quoted_scalar(repaired.as_deref().unwrap_or(text), *pos) {
            Some(fixed) => {
                result = Builder::new(limits).run(&fixed);
                repaired = Some(fixed);
            }
            None => break,
        }
    }
    result
}

/// Indents the continuation lines of the quoted scalar starting at `pos` one column deeper than
/// the line it starts on; `None` when there is nothing to change.
fn reindent_quoted_scalar(text: &str, pos: Pos) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let first = lines.get(pos.line.checked_sub(1)?)?;
    let quote_col = first.char_indices().nth(pos.column.checked_sub(1)?)?;
    let quote = quote_col.1;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let need = indent_of(first) + 1;
    // Find where the scalar ends.
    let rest = &first[quote_col.0 + 1..];
    let mut end_line = pos.line - 1;
    let mut closed = scan_closing(rest, quote);
    while !closed {
        end_line += 1;
        closed = scan_closing(lines.get(end_line)?, quote);
    }
    let mut changed = false;
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    for line in out.iter_mut().take(end_line + 1).skip(pos.line) {
        if !line.trim().is_empty() && indent_of(line) < need {
            *line = format!("{}{line}", " ".repeat(need - indent_of(line)));
            changed = true;
        }
    }
    changed.then(|| out.join("\n"))
}

/// True when `segment` contains the closing `quote` of a scalar (escapes and `''` respected).
fn scan_closing(segment: &str, quote: char) -> bool {
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                return true;
            }
        }
    }
    false
}

fn pos_of_offset(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos { line, column }
}

enum Frame {
    Seq {
        anchor: usize,
        span: Span,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        span: Span,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            root: None,
        }
    }

    fn run(mut self, text: &str) -> Result<Option<Node>, LoadError> {
        let mut documents = 0;
        for item in Parser::new_from_str(text) {
            let (event, raw) = item.map_err(|e| {
                let pos = Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                };
                if e.info().contains("recursion limit") {
                    // The scanner has its own nesting guard for flow collections.
                    LoadError::TooDeep {
                        pos,
                        limit: self.limits.max_depth,
                    }
                } else {
                    LoadError::Syntax {
                        pos,
                        message: e.info().to_owned(),
                    }
                }
            })?;
            let span = Span::from_raw(raw);
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        // Like Travis's loader, only the first document counts.
                        break;
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let scalar = Scalar {
                        text: text.into_owned(),
                        style: match style {
                            ScalarStyle::Plain => Style::Plain,
                            ScalarStyle::SingleQuoted => Style::SingleQuoted,
                            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                            ScalarStyle::Literal => Style::Literal,
                            ScalarStyle::Folded => Style::Folded,
                        },
                        tag: tag.map(|t| format!("{}{}", t.handle, t.suffix)),
                    };
                    self.spend(1, span.start)?;
                    let node = Node {
                        kind: NodeKind::Scalar(scalar),
                        span,
                    };
                    self.finish(node, anchor);
                }
                Event::Alias(id) => {
                    let node = self
                        .anchors
                        .get(&id)
                        .ok_or(LoadError::UndefinedAlias { pos: span.start })?;
                    let cost = node.count();
                    self.spend(cost, span.start)?;
                    let node = self.anchors[&id].clone();
                    self.finish(node, 0);
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(span)?;
                    self.stack.push(Frame::Seq {
                        anchor,
                        span,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.open(span)?;
                    self.stack.push(Frame::Map {
                        anchor,
                        span,
                        entries: Vec::new(),
                        key: None,
                    });
                }
                Event::SequenceEnd => {
                    if let Some(Frame::Seq {
                        anchor,
                        span: start,
                        items,
                    }) = self.stack.pop()
                    {
                        let node = Node {
                            kind: NodeKind::Seq(items),
                            span: Span {
                                start: start.start,
                                end: span.end,
                            },
                        };
                        self.finish(node, anchor);
                    }
                }
                Event::MappingEnd => {
                    if let Some(Frame::Map {
                        anchor,
                        span: start,
                        entries,
                        ..
                    }) = self.stack.pop()
                    {
                        let entries = self.merge_keys(entries)?;
                        let node = Node {
                            kind: NodeKind::Map(entries),
                            span: Span {
                                start: start.start,
                                end: span.end,
                            },
                        };
                        self.finish(node, anchor);
                    }
                }
                Event::DocumentEnd => {
                    if self.root.is_some() {
                        break;
                    }
                }
                Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            }
        }
        Ok(self.root)
    }

    fn open(&mut self, span: Span) -> Result<(), LoadError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(LoadError::TooDeep {
                pos: span.start,
                limit: self.limits.max_depth,
            });
        }
        self.spend(1, span.start)
    }

    fn spend(&mut self, cost: usize, pos: Pos) -> Result<(), LoadError> {
        self.nodes = self.nodes.saturating_add(cost);
        if self.nodes > self.limits.max_nodes {
            return Err(LoadError::TooManyNodes {
                pos,
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    /// Places a completed node into its parent (or as the root) and records its anchor.
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }

    /// Applies YAML merge keys: `<<: *map` or `<<: [*a, *b]` adds the entries the mapping does not
    /// set itself, at the position of the `<<` key (earlier sources win over later ones).
    fn merge_keys(&mut self, entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, LoadError> {
        let is_merge = |k: &Node| matches!(k.as_scalar(), Some(s) if s.text == "<<" && s.style == Style::Plain);
        if !entries.iter().any(|(k, _)| is_merge(k)) {
            return Ok(entries);
        }
        let explicit: Vec<String> = entries
            .iter()
            .filter(|(k, _)| !is_merge(k))
            .filter_map(|(k, _)| k.as_str().map(str::to_owned))
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        let mut added: Vec<String> = Vec::new();
        for (k, v) in entries {
            if !is_merge(&k) {
                out.push((k, v));
                continue;
            }
            let sources: Vec<Node> = match v.kind {
                NodeKind::Map(_) => vec![v],
                NodeKind::Seq(items) => items,
                // `<<: ~` or a scalar: nothing to merge; keep it so lint can point at it.
                NodeKind::Scalar(_) => {
                    out.push((k, v));
                    continue;
                }
            };
            for source in sources {
                let NodeKind::Map(src_entries) = source.kind else {
                    continue;
                };
                for (sk, sv) in src_entries {
                    let name = sk.as_str().map(str::to_owned);
                    if let Some(name) = name {
                        if explicit.contains(&name) || added.contains(&name) {
                            continue;
                        }
                        added.push(name);
                    }
                    out.push((sk, sv));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &str) -> Node {
        load(s.as_bytes(), Limits::default()).unwrap().unwrap()
    }

    #[test]
    fn spans_are_one_based() {
        let n = load_str("language: node_js\nscript:\n  - npm test\n");
        let script = n.get("script").unwrap();
        assert_eq!(
            script.as_seq().unwrap()[0].span.start,
            Pos { line: 3, column: 5 }
        );
    }

    #[test]
    fn merge_keys_fill_in_but_do_not_override() {
        let n = load_str("base: &b\n  a: 1\n  b: 2\njob:\n  <<: *b\n  b: 3\n");
        let job = n.get("job").unwrap();
        assert_eq!(job.get("a").unwrap().as_str(), Some("1"));
        assert_eq!(job.get("b").unwrap().as_str(), Some("3"));
        assert_eq!(job.as_map().unwrap().len(), 2);
    }

    #[test]
    fn merge_key_list() {
        let n = load_str("x: &x {a: 1}\ny: &y {a: 2, b: 2}\nz:\n  <<: [*x, *y]\n");
        let z = n.get("z").unwrap();
        assert_eq!(z.get("a").unwrap().as_str(), Some("1"));
        assert_eq!(z.get("b").unwrap().as_str(), Some("2"));
    }

    #[test]
    fn bare_on_resolves_to_true_as_yaml_1_1_does() {
        let n = load_str("on: x\n");
        let (k, _) = &n.as_map().unwrap()[0];
        assert_eq!(k.resolve(), Some(Resolved::Bool(true)));
        assert_eq!(n.get("on").unwrap().as_str(), Some("x"));
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let n = load_str("a: 'true'\nb: 3.10\nc: '3.10'\nd:\n");
        assert_eq!(n.get("a").unwrap().resolve(), Some(Resolved::Str("true")));
        assert_eq!(n.get("b").unwrap().resolve(), Some(Resolved::Float(3.1)));
        assert_eq!(n.get("b").unwrap().as_str(), Some("3.10"));
        assert!(n.get("d").unwrap().is_null());
    }

    #[test]
    fn undefined_alias_is_an_error_with_position() {
        let e = load(b"a: 1\nb: *nope\n", Limits::default()).unwrap_err();
        assert!(
            matches!(
                e,
                LoadError::UndefinedAlias { .. } | LoadError::Syntax { .. }
            ),
            "{e:?}"
        );
        assert_eq!(e.pos().unwrap().line, 2);
    }

    #[test]
    fn alias_bomb_is_rejected() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = load(s.as_bytes(), Limits::default()).unwrap_err();
        assert!(matches!(e, LoadError::TooManyNodes { .. }), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let s = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = load(s.as_bytes(), Limits::default()).unwrap_err();
        assert!(matches!(e, LoadError::TooDeep { .. }), "{e:?}");
    }

    #[test]
    fn non_utf8_names_the_position() {
        let e = load(b"a: 1\nb: \xff\n", Limits::default()).unwrap_err();
        assert_eq!(
            e,
            LoadError::NotUtf8 {
                pos: Pos { line: 2, column: 4 },
                offset: 8
            }
        );
    }

    #[test]
    fn empty_file_has_no_document() {
        assert_eq!(load(b"", Limits::default()).unwrap(), None);
        assert_eq!(
            load(b"# only a comment\n", Limits::default()).unwrap(),
            None
        );
    }

    #[test]
    fn quoted_scalar_continuation_at_key_indent_loads_as_libyaml_does() {
        let s = "a:\n  b:\n    secure: \"\\\n      abc\\\n      def\\\n    \"\n  c: 1\n";
        let n = load_str(s);
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!(b.get("secure").unwrap().as_str(), Some("abcdef"));
        assert_eq!(n.get("a").unwrap().get("c").unwrap().span.start.line, 7);
    }

    #[test]
    fn too_large_is_rejected_before_parsing() {
        let big = vec![b'a'; 2 * 1024 * 1024];
        assert!(matches!(
            load(&big, Limits::default()),
            Err(LoadError::TooLarge { .. })
        ));
    }
}
