//! The condition parser: a cursor over the condition's characters that reads them in the same order,
//! and with the same appetite, as Travis's scanner, so the same text yields the same tree.

use super::{
    Call, Condition, ConditionError, Function, LiteralPattern, Operand, Pattern, Predicate, Var,
    pattern,
};

/// Parentheses, `NOT`s and nested calls deeper than this are refused, which keeps the recursive
/// parser, evaluator and `Display` within a small stack on any input.
const MAX_DEPTH: usize = 64;

const PREDICATES: [Predicate; 4] = [
    Predicate::Present,
    Predicate::Blank,
    Predicate::True,
    Predicate::False,
];

type Result<T> = std::result::Result<T, ConditionError>;

pub(super) fn parse(src: &str) -> Result<Condition> {
    let mut parser = Parser::new(src);
    let condition = parser.expr()?;
    parser.skip_space();
    if parser.pos < parser.chars.len() {
        return Err(parser.trailing_error());
    }
    Ok(condition)
}

/// Whitespace as Travis's scanner counts it (ASCII only).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Characters an unquoted value may contain.
fn is_word_char(c: char) -> bool {
    !is_space(c) && !matches!(c, '(' | ')' | '"' | '\'' | ',' | '=' | '!')
}

/// Whether `text` printed without quotes parses back as the same value (used by `Display`).
pub(super) fn reads_back_as_bare_value(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    !text.is_empty()
        && text.chars().all(|c| is_word_char(c) && c != '|')
        && !text.starts_with('$')
        && !["env", "concat", "not"]
            .iter()
            .any(|p| lower.starts_with(p))
        && !Var::ALL.iter().any(|v| v.name() == lower)
}

/// How a literal pattern is printed so that it parses back to the same source (used by `Display`).
///
/// Slashes when the author used them and they are safe; otherwise bare, with one extra `/` when
/// the pattern ends in `/`, `)` or NUL (the scanner drops exactly one trailing `/`, and would drop
/// a trailing `)` or NUL), and with Travis's swallowed `env` prefix when it starts like a call.
pub(super) fn regex_spelling(source: &str, written_slashed: bool) -> String {
    // Between slashes every `/` must be escaped, and a final `\` would escape the closing one.
    let chars: Vec<char> = source.chars().collect();
    let slashed = !source.ends_with('\\')
        && chars
            .iter()
            .enumerate()
            .all(|(i, &c)| c != '/' || (i > 0 && chars[i - 1] == '\\'));
    let lower = source.to_ascii_lowercase();
    let looks_like_call = ["env", "concat"].iter().any(|p| lower.starts_with(p));
    let bare = !source.is_empty() && !source.chars().any(is_space) && !source.starts_with('/');
    let bare_text = || {
        let mut text = source.to_string();
        if source.ends_with(['/', ')', '\0']) {
            text.push('/');
        }
        text
    };
    if written_slashed && slashed {
        format!("/{source}/")
    } else if bare && !looks_like_call {
        bare_text()
    } else if slashed {
        format!("/{source}/")
    } else if bare {
        format!("env{}", bare_text())
    } else {
        // Not reachable from parsed text: whitespace and an unescaped `/` in one pattern.
        format!("/{source}/")
    }
}

struct Parser {
    /// The condition after joining continued lines (`\` at a line end).
    chars: Vec<char>,
    /// For each entry of `chars`, and one past the end, the 1-based column in the original text.
    columns: Vec<usize>,
    pos: usize,
    depth: usize,
    /// Where reading stood after an `IS` that was not followed by a predicate.
    dangling_is: Option<usize>,
}

impl Parser {
    fn new(src: &str) -> Self {
        let original: Vec<char> = src.chars().collect();
        let mut chars = Vec::with_capacity(original.len());
        let mut columns = Vec::with_capacity(original.len() + 1);
        let mut i = 0;
        while i < original.len() {
            if original[i] == '\\' {
                // A backslash, then whitespace up to the last line break in that whitespace, is a space.
                let mut j = i + 1;
                let mut last_break = None;
                while j < original.len() && is_space(original[j]) {
                    if matches!(original[j], '\n' | '\r') {
                        last_break = Some(j);
                    }
                    j += 1;
                }
                if let Some(end) = last_break {
                    chars.push(' ');
                    columns.push(i + 1);
                    i = end + 1;
                    continue;
                }
            }
            chars.push(original[i]);
            columns.push(i + 1);
            i += 1;
        }
        columns.push(original.len() + 1);
        Parser {
            chars,
            columns,
            pos: 0,
            depth: 0,
            dangling_is: None,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// Whether the text at the cursor starts with `word`, ignoring ASCII case.
    fn looking_at(&self, word: &str) -> bool {
        let mut at = self.pos;
        for expected in word.chars() {
            match self.chars.get(at) {
                Some(c) if c.eq_ignore_ascii_case(&expected) => at += 1,
                _ => return false,
            }
        }
        true
    }

    /// Skips whitespace, then the first of `options` found (ignoring case), then whitespace.
    /// Keywords need no word boundary, as in Travis (`ORtag` reads as `OR tag`).
    fn keyword(&mut self, options: &[&str]) -> Option<usize> {
        self.skip_space();
        let found = options.iter().position(|word| self.looking_at(word));
        if let Some(index) = found {
            self.pos += options[index].chars().count();
            self.skip_space();
        }
        found
    }

    fn error(&self, pos: usize, message: impl Into<String>, hint: Option<&str>) -> ConditionError {
        ConditionError {
            column: self.columns[pos.min(self.chars.len())],
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    /// The next few characters, for error messages.
    fn token_at(&self, pos: usize) -> String {
        let token: String = self.chars[pos.min(self.chars.len())..]
            .iter()
            .take_while(|c| !is_space(**c))
            .take(24)
            .collect();
        token
    }

    fn enter(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                at,
                format!("the condition nests more than {MAX_DEPTH} levels deep"),
                Some("split it into simpler conditions"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn trailing_error(&self) -> ConditionError {
        let token = self.token_at(self.pos);
        if self.dangling_is == Some(self.pos) {
            return self.error(
                self.pos,
                format!("expected present, blank, true or false after IS, found `{token}`"),
                Some("IS only tests a predicate; compare with = instead (branch = master)"),
            );
        }
        let hint = if token.starts_with(')') {
            "this `)` has no matching `(`"
        } else {
            "join conditions with AND or OR, and quote values that contain spaces or special characters"
        };
        self.error(self.pos, format!("unexpected `{token}`"), Some(hint))
    }

    /// `expr = and { OR and }`
    fn expr(&mut self) -> Result<Condition> {
        let mut branches = vec![self.and_expr()?];
        while self.keyword(&["or", "||"]).is_some() {
            branches.push(self.and_expr()?);
        }
        Ok(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Condition::Or(branches)
        })
    }

    /// `and = oprd { AND oprd }`
    fn and_expr(&mut self) -> Result<Condition> {
        let mut branches = vec![self.oprd()?];
        while self.keyword(&["and", "&&"]).is_some() {
            branches.push(self.oprd()?);
        }
        Ok(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Condition::And(branches)
        })
    }

    /// `oprd = "(" expr ")" | NOT oprd | term`
    fn oprd(&mut self) -> Result<Condition> {
        self.skip_space();
        let start = self.pos;
        if self.peek() == Some('(') {
            self.pos += 1;
            self.enter(start)?;
            self.skip_space();
            let inner = self.expr()?;
            self.skip_space();
            if self.peek() != Some(')') {
                return Err(self.error(
                    self.pos,
                    format!(
                        "expected `)` to close the `(` at column {}",
                        self.columns[start]
                    ),
                    Some("join conditions with AND or OR, and quote values that contain spaces"),
                ));
            }
            self.pos += 1;
            self.leave();
            return Ok(inner);
        }
        let not_len = if self.looking_at("not") {
            3
        } else {
            usize::from(self.peek() == Some('!'))
        };
        if not_len > 0 {
            self.pos += not_len;
            self.skip_space();
            self.enter(start)?;
            let inner = self.oprd()?;
            self.leave();
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.term()
    }

    /// `term = operand [IS pred | IN list | re regex | eq operand]`
    fn term(&mut self) -> Result<Condition> {
        let left = self.operand()?;
        if let Some((negated, list)) = self.in_list()? {
            return Ok(Condition::In {
                left,
                negated,
                list,
            });
        }
        if let Some((negated, predicate)) = self.is_pred() {
            return Ok(Condition::Is {
                left,
                negated,
                predicate,
            });
        }
        if let Some(op) = self.keyword(&["=~", "~=", "!~"]) {
            let pattern = self.regex()?;
            return Ok(Condition::Match {
                left,
                negated: op == 2,
                pattern,
            });
        }
        if let Some(op) = self.keyword(&["==", "=", "!="]) {
            let right = self.operand()?;
            return Ok(Condition::Compare {
                left,
                negated: op == 2,
                right,
            });
        }
        Ok(Condition::Operand(left))
    }

    fn operand(&mut self) -> Result<Operand> {
        self.skip_space();
        let found = self.item()?;
        self.skip_space();
        found.ok_or_else(|| {
            let message = if self.pos >= self.chars.len() {
                "expected a value, variable or function call at the end of the condition"
                    .to_string()
            } else {
                format!(
                    "expected a value, variable or function call, found `{}`",
                    self.token_at(self.pos)
                )
            };
            self.error(
                self.pos,
                message,
                Some("quote values that contain spaces or special characters"),
            )
        })
    }

    /// `var | call | val`, or nothing.
    fn item(&mut self) -> Result<Option<Operand>> {
        if let Some(var) = self.var() {
            return Ok(Some(Operand::Var(var)));
        }
        if let Some(call) = self.call()? {
            return Ok(Some(Operand::Call(call)));
        }
        Ok(self.val()?.map(Operand::Value))
    }

    /// A variable name, only when followed by whitespace, `,`, `=`, `)`, `|` or the end.
    fn var(&mut self) -> Option<Var> {
        let var = Var::ALL.into_iter().find(|v| self.looking_at(v.name()))?;
        let after = self.pos + var.name().len();
        let boundary = match self.chars.get(after) {
            None => true,
            Some(&c) => is_space(c) || matches!(c, ',' | '=' | ')' | '|'),
        };
        if boundary {
            self.pos = after;
            Some(var)
        } else {
            None
        }
    }

    /// `env(...)` / `concat(...)`. A function name without `(` is consumed and yields nothing,
    /// exactly as in Travis.
    fn call(&mut self) -> Result<Option<Call>> {
        self.skip_space();
        let start = self.pos;
        let function = if self.looking_at("env") {
            self.pos += 3;
            Function::Env
        } else if self.looking_at("concat") {
            self.pos += 6;
            Function::Concat
        } else {
            return Ok(None);
        };
        self.skip_space();
        if self.peek() != Some('(') {
            return Ok(None);
        }
        self.pos += 1;
        self.enter(start)?;
        self.skip_space();
        let args = self.list()?;
        self.skip_space();
        if self.peek() != Some(')') {
            return Err(self.error(
                self.pos,
                format!(
                    "expected `)` to close the call at column {}",
                    self.columns[start]
                ),
                Some("separate arguments with commas and quote values that contain spaces"),
            ));
        }
        self.pos += 1;
        self.leave();
        if function == Function::Env && args.len() > 1 {
            return Err(self.error(
                start,
                "env() takes one argument, the variable's name",
                Some("use concat(...) to join values"),
            ));
        }
        Ok(Some(Call { function, args }))
    }

    /// A comma-separated list of operands, possibly empty, with Travis's tolerance for
    /// trailing commas.
    fn list(&mut self) -> Result<Vec<Operand>> {
        let mut items = Vec::new();
        loop {
            match self.item()? {
                Some(item) => {
                    items.push(item);
                    if self.keyword(&[","]).is_none() {
                        break;
                    }
                }
                None => {
                    // After `a, b,` Travis skips up to one more comma per item read.
                    for _ in 0..items.len() {
                        if self.peek() == Some(',') {
                            self.pos += 1;
                        }
                    }
                    break;
                }
            }
        }
        Ok(items)
    }

    /// A quoted string (no escapes; it may contain the other quote) or a bare word.
    fn val(&mut self) -> Result<Option<String>> {
        if let Some(quote) = self.peek().filter(|c| matches!(c, '"' | '\'')) {
            let open = self.pos;
            let start = open + 1;
            let Some(len) = self.chars[start..].iter().position(|&c| c == quote) else {
                return Err(self.error(
                    open,
                    format!("this string has no closing {quote}"),
                    Some("quotes cannot be escaped; use the other kind of quote around a value that contains one"),
                ));
            };
            self.pos = start + len + 1;
            return Ok(Some(self.chars[start..start + len].iter().collect()));
        }
        self.skip_space();
        let start = self.pos;
        while self.peek().is_some_and(is_word_char) {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        self.skip_space();
        if word.is_empty() {
            return Ok(None);
        }
        if let Some(name) = word.strip_prefix('$') {
            let name = name.trim_start_matches('{').trim_end_matches('}');
            return Err(self.error(
                start,
                format!("`{word}` looks like a shell variable, but conditions are not evaluated by a shell"),
                Some(&format!(
                    "use env({name}) for an environment variable, or quote the string if it really starts with $"
                )),
            ));
        }
        Ok(Some(word))
    }

    /// `[NOT] IN ( list )`
    fn in_list(&mut self) -> Result<Option<(bool, Vec<Operand>)>> {
        let Some(keyword) = self.keyword(&["in", "not in"]) else {
            return Ok(None);
        };
        if self.peek() != Some('(') {
            return Err(self.error(
                self.pos,
                "expected `(` and a list of values after IN",
                Some("write the list in parentheses: branch IN (master, dev)"),
            ));
        }
        let open = self.pos;
        self.pos += 1;
        self.skip_space();
        let list = self.list()?;
        if list.is_empty() {
            return Err(self.error(
                self.pos,
                "expected a list of values",
                Some("write at least one value: branch IN (master, dev)"),
            ));
        }
        self.skip_space();
        if self.peek() != Some(')') {
            return Err(self.error(
                self.pos,
                format!(
                    "expected `)` to close the list at column {}",
                    self.columns[open]
                ),
                Some("separate values with commas and quote values that contain spaces"),
            ));
        }
        self.pos += 1;
        Ok(Some((keyword == 1, list)))
    }

    /// `IS [NOT] predicate`. Like Travis, an `IS` without a predicate is consumed anyway.
    fn is_pred(&mut self) -> Option<(bool, Predicate)> {
        let keyword = self.keyword(&["is not", "is"])?;
        match self.keyword(&["present", "blank", "true", "false"]) {
            Some(index) => Some((keyword == 0, PREDICATES[index])),
            None => {
                self.dangling_is = Some(self.pos);
                None
            }
        }
    }

    /// The right-hand side of `=~`: a call, a `/slashed/` pattern or a bare one.
    fn regex(&mut self) -> Result<Pattern> {
        if let Some(call) = self.call()? {
            return Ok(Pattern::Call(call));
        }
        self.skip_space();
        let start = self.pos;
        let Some((raw, slashed)) = self.scan_regex() else {
            return Err(self.error(
                start,
                "expected a regular expression",
                Some("write the pattern after the operator (tag =~ ^v[0-9]), between slashes if it contains spaces or ends in `)`"),
            ));
        };
        self.pos += raw.chars().count();
        let source = strip_slashes(&raw);
        let regex = pattern::compile(&source).map_err(|why| {
            self.error(
                start,
                format!("invalid regular expression /{source}/: {why}"),
                Some("patterns use Ruby syntax; put them between slashes if they contain spaces or end in `)`"),
            )
        })?;
        Ok(Pattern::Literal(LiteralPattern {
            source,
            slashed,
            regex,
        }))
    }

    /// The pattern text at the cursor (with its slashes, if any) as Travis's regex scanner reads
    /// it: a bare pattern runs to the next whitespace minus trailing `)`; a slashed one to the next
    /// unescaped `/`, or to the end (trailing whitespace excluded) if there is none.
    fn scan_regex(&self) -> Option<(String, bool)> {
        let mut end = self.chars.len();
        while end > self.pos && (is_space(self.chars[end - 1]) || self.chars[end - 1] == '\0') {
            end -= 1;
        }
        let rest = &self.chars[self.pos..end];
        if rest.first() == Some(&'/') {
            let mut raw = String::from("/");
            let mut escaped = false;
            for &c in &rest[1..] {
                if c == '/' && !escaped {
                    raw.push('/');
                    return Some((raw, true));
                }
                escaped = c == '\\';
                raw.push(c);
            }
            return Some((raw, true));
        }
        let mut len = rest.iter().take_while(|c| !is_space(**c)).count();
        while len > 0 && rest[len - 1] == ')' {
            len -= 1;
        }
        (len > 0).then(|| (rest[..len].iter().collect(), false))
    }
}

/// Drops every `/` at the start or end of a line, as Travis does to remove a pattern's slashes
/// (so `^release/` means `^release`).
fn strip_slashes(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let last = chars.len().saturating_sub(1);
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            let at_line_start = i == 0 || chars[i - 1] == '\n';
            let at_line_end = i == last || chars[i + 1] == '\n';
            !(c == '/' && (at_line_start || at_line_end))
        })
        .map(|(_, &c)| c)
        .collect()
}
