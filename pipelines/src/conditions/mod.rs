//! Travis conditions (`if:` on builds, stages and jobs): the v1 language, parsed and evaluated the way
//! Travis's own implementation does it, so an existing `.travis.yml` selects the same jobs here.
//!
//! ```text
//! expr    = and { ("OR" | "||") and }
//! and     = operand-expr { ("AND" | "&&") operand-expr }
//! oprd    = "(" expr ")" | ("NOT" | "!") oprd | term
//! term    = operand "IS" ["NOT"] ("present" | "blank" | "true" | "false")
//!         | operand ["NOT"] "IN" "(" operand { "," operand } ")"
//!         | operand ("=~" | "~=" | "!~") regex
//!         | operand ("=" | "==" | "!=") operand
//!         | operand
//! operand = variable | env(...) | concat(...) | word | 'quoted' | "quoted"
//! regex   = word-without-spaces | /slashed, may contain spaces/ | env(...) | concat(...)
//! ```
//!
//! Keywords, variable and function names are case-insensitive. A backslash at the end of a line
//! continues the condition on the next one.
//!
//! Compatibility goes as far as Travis's quirks where a real condition could depend on them:
//! keywords need no word boundary (`ORtag IS present` is `OR tag IS present`, and a leading
//! `nothing` reads as `NOT hing`), a function name without parentheses is dropped (`environment`
//! reads as `ironment`), a bare regex drops trailing `)` and `/`, and an unterminated `/regex` runs
//! to the end. Values compare after `true`/`false` (any case) become booleans, and a bare
//! operand is true unless it is missing or `false`, so `""` and `0` are true.
//!
//! Deliberate differences, all where Travis raised an error at evaluation time or silently
//! ignored a mistake: variables are case-insensitive as documented (Travis only matched
//! lowercase ones), a literal regex that does not compile, `env()` with more than one argument,
//! `IN` without a list and `=~` without a pattern are parse errors, and a pattern produced at
//! evaluation time (`=~ env(PATTERN)`) that does not compile, or a match that exceeds the
//! backtracking budget, makes the comparison false (both `=~` and `!~`).

mod parser;
mod pattern;

use std::collections::BTreeMap;
use std::fmt;

/// Parses a condition, returning the first syntax error with its column.
///
/// Literal regular expressions are compiled here, so a bad pattern is reported when the file is
/// checked rather than silently skipping a job later.
pub fn parse(src: &str) -> Result<Condition, ConditionError> {
    parser::parse(src)
}

/// A syntax error in a condition, pointing at the character where reading stopped making sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {column})")]
pub struct ConditionError {
    /// 1-based column, counted in characters from the start of the condition string.
    pub column: usize,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it, when the usual cause is known.
    pub hint: Option<String>,
}

/// The values a condition can look at: build attributes and environment variables.
///
/// A trait so the planner can answer from its own context without copying it into a map.
pub trait Variables {
    /// A build attribute such as `branch` or `type`; the name is always lowercase.
    fn var(&self, name: &str) -> Option<String>;
    /// An environment variable from the build configuration or repository settings.
    fn env(&self, name: &str) -> Option<String>;
}

/// [`Variables`] backed by two maps, for callers (and tests) that already have the values at hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticVariables {
    /// Build attributes by lowercase name.
    pub vars: BTreeMap<String, String>,
    /// Environment variables by exact name.
    pub env: BTreeMap<String, String>,
}

impl StaticVariables {
    /// Adds a build attribute.
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }

    /// Adds an environment variable.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }
}

impl Variables for StaticVariables {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

/// A parsed condition. `Display` prints a normalized form that parses back to the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// True when any branch is true (at least two branches).
    Or(Vec<Condition>),
    /// True when every branch is true (at least two branches).
    And(Vec<Condition>),
    /// Negation.
    Not(Box<Condition>),
    /// `left = right` (`negated`: `!=`).
    Compare {
        /// Left-hand side.
        left: Operand,
        /// `!=` instead of `=`.
        negated: bool,
        /// Right-hand side.
        right: Operand,
    },
    /// `left =~ pattern` (`negated`: `!~`).
    Match {
        /// The text to match.
        left: Operand,
        /// `!~` instead of `=~`.
        negated: bool,
        /// The regular expression.
        pattern: Pattern,
    },
    /// `left IN (list)` (`negated`: `NOT IN`).
    In {
        /// The value to look for.
        left: Operand,
        /// `NOT IN` instead of `IN`.
        negated: bool,
        /// The candidates (never empty).
        list: Vec<Operand>,
    },
    /// `left IS predicate` (`negated`: `IS NOT`).
    Is {
        /// The value tested.
        left: Operand,
        /// `IS NOT` instead of `IS`.
        negated: bool,
        /// What is tested.
        predicate: Predicate,
    },
    /// A lone operand: true unless missing or `false`.
    Operand(Operand),
}

/// Something that evaluates to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A build attribute.
    Var(Var),
    /// A literal string (bare word or quoted).
    Value(String),
    /// A function call.
    Call(Call),
}

/// `env(...)` or `concat(...)` with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub function: Function,
    /// The arguments (`env` takes at most one).
    pub args: Vec<Operand>,
}

/// The functions the language knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `env(NAME)`: an environment variable, missing when unset.
    Env,
    /// `concat(a, b, ...)`: the arguments joined, missing ones as empty strings.
    Concat,
}

/// The right-hand side of `=~` / `!~`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A pattern written in the condition, compiled when it was parsed.
    Literal(LiteralPattern),
    /// A pattern computed at evaluation time, compiled then.
    Call(Call),
}

/// A regular expression written in the condition, kept with its source for display.
#[derive(Debug, Clone)]
pub struct LiteralPattern {
    source: String,
    slashed: bool,
    regex: fancy_regex::Regex,
}

impl LiteralPattern {
    /// The pattern text as Travis saw it (without the enclosing slashes).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it was written between slashes.
    pub fn slashed(&self) -> bool {
        self.slashed
    }

    /// Whether the pattern matches anywhere in `text`; `None` when matching gave up because a
    /// look-around or back-reference needed too much backtracking.
    pub fn is_match(&self, text: &str) -> Option<bool> {
        pattern::is_match(&self.regex, text)
    }
}

/// Two patterns are equal when they match the same way: whether slashes were written is
/// presentation (`Display` picks the form that reads back).
impl PartialEq for LiteralPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for LiteralPattern {}

/// What `IS` can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Predicate {
    /// Set and not empty (and not `false`).
    Present,
    /// Not present.
    Blank,
    /// Truthy: set and not `false`.
    True,
    /// Not truthy.
    False,
}

impl Predicate {
    /// The keyword, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Predicate::Present => "present",
            Predicate::Blank => "blank",
            Predicate::True => "true",
            Predicate::False => "false",
        }
    }
}

/// The build attributes a condition can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// Event type: `push`, `pull_request`, `api`, `cron`.
    Type,
    /// Repository slug `owner/name`.
    Repo,
    /// For pull requests: the head repository slug.
    HeadRepo,
    /// Operating system.
    Os,
    /// Distribution.
    Dist,
    /// Image group.
    Group,
    /// Sudo access.
    Sudo,
    /// Build language.
    Language,
    /// Login of the event's sender.
    Sender,
    /// `true` when the repository is a fork.
    Fork,
    /// `true` for draft pull requests.
    Draft,
    /// Branch; for pull requests the base branch.
    Branch,
    /// For pull requests: the head branch.
    HeadBranch,
    /// Tag name.
    Tag,
    CommitMessage,
}

impl Var {
    /// Every variable, in the order the parser tries them.
    pub const ALL: [Var; 15] = [
        Var::Type,
        Var::Repo,
        Var::HeadRepo,
        Var::Os,
        Var::Dist,
        Var::Group,
        Var::Sudo,
        Var::Language,
        Var::Sender,
        Var::Fork,
        Var::Draft,
        Var::Branch,
        Var::HeadBranch,
        Var::Tag,
        Var::CommitMessage,
    ];

    /// The lowercase name, as passed to [`Variables::var`].
    pub fn name(self) -> &'static str {
        match self {
            Var::Type => "type",
            Var::Repo => "repo",
            Var::HeadRepo => "head_repo",
            Var::Os => "os",
            Var::Dist => "dist",
            Var::Group => "group",
            Var::Sudo => "sudo",
            Var::Language => "language",
            Var::Sender => "sender",
            Var::Fork => "fork",
            Var::Draft => "draft",
            Var::Branch => "branch",
            Var::HeadBranch => "head_branch",
            Var::Tag => "tag",
            Var::CommitMessage => "commit_message",
        }
    }
}

/// A value during evaluation. Strings spelled `true`/`false` (any case) become booleans, as in Travis.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Missing,
    Str(String),
    Bool(bool),
}

impl Value {
    fn cast(text: Option<String>) -> Value {
        match text {
            None => Value::Missing,
            Some(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(s) => Value::Str(s),
        }
    }

    fn truthy(&self) -> bool {
        !matches!(self, Value::Missing | Value::Bool(false))
    }

    fn present(&self) -> bool {
        match self {
            Value::Missing => false,
            Value::Str(s) => !s.is_empty(),
            Value::Bool(b) => *b,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Value::Missing => None,
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
        }
    }
}

impl Condition {
    /// Whether the condition holds for these variables.
    pub fn evaluate(&self, vars: &dyn Variables) -> bool {
        match self {
            Condition::Or(branches) => branches.iter().any(|c| c.evaluate(vars)),
            Condition::And(branches) => branches.iter().all(|c| c.evaluate(vars)),
            Condition::Not(inner) => !inner.evaluate(vars),
            Condition::Compare {
                left,
                negated,
                right,
            } => (left.value(vars) == right.value(vars)) != *negated,
            Condition::Match {
                left,
                negated,
                pattern,
            } => {
                let Some(text) = left.value(vars).text() else {
                    return *negated;
                };
                match pattern.matches(&text, vars) {
                    Some(matched) => matched != *negated,
                    // A pattern that cannot be used makes the comparison false either way.
                    None => false,
                }
            }
            Condition::In {
                left,
                negated,
                list,
            } => {
                let value = left.value(vars);
                list.iter().any(|item| item.value(vars) == value) != *negated
            }
            Condition::Is {
                left,
                negated,
                predicate,
            } => {
                let value = left.value(vars);
                let holds = match predicate {
                    Predicate::Present => value.present(),
                    Predicate::Blank => !value.present(),
                    Predicate::True => value.truthy(),
                    Predicate::False => !value.truthy(),
                };
                holds != *negated
            }
            Condition::Operand(operand) => operand.value(vars).truthy(),
        }
    }
}

impl Pattern {
    /// `Some(matched)`, or `None` when a computed pattern does not compile or matching gave up.
    /// A missing computed pattern matches nothing.
    fn matches(&self, text: &str, vars: &dyn Variables) -> Option<bool> {
        match self {
            Pattern::Literal(literal) => literal.is_match(text),
            Pattern::Call(call) => {
                let Some(source) = call.value(vars).text() else {
                    return Some(false);
                };
                pattern::is_match(&pattern::compile(&source).ok()?, text)
            }
        }
    }
}

impl Operand {
    fn value(&self, vars: &dyn Variables) -> Value {
        match self {
            Operand::Var(var) => Value::cast(vars.var(var.name())),
            Operand::Value(text) => Value::cast(Some(text.clone())),
            Operand::Call(call) => call.value(vars),
        }
    }
}

impl Call {
    fn value(&self, vars: &dyn Variables) -> Value {
        match self.function {
            Function::Env => {
                let name = self.args.first().and_then(|arg| arg.value(vars).text());
                Value::cast(name.and_then(|name| vars.env(&name)).map(|v| unquote(&v)))
            }
            Function::Concat => {
                let joined: String = self
                    .args
                    .iter()
                    .filter_map(|arg| arg.value(vars).text())
                    .collect();
                Value::cast(Some(joined))
            }
        }
    }
}

/// Travis strips one pair of matching quotes around an environment value (line by line).
fn unquote(value: &str) -> String {
    value
        .split('\n')
        .map(|line| {
            let mut chars = line.chars();
            match (chars.next(), chars.next_back()) {
                (Some(first), Some(last)) if first == last && (first == '"' || first == '\'') => {
                    chars.as_str()
                }
                _ => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Or(branches) => join(f, branches, " OR ", |c| matches!(c, Condition::Or(_))),
            Condition::And(branches) => join(f, branches, " AND ", |c| {
                matches!(c, Condition::Or(_) | Condition::And(_))
            }),
            Condition::Not(inner) => match **inner {
                Condition::Or(_) | Condition::And(_) => write!(f, "NOT ({inner})"),
                _ => write!(f, "NOT {inner}"),
            },
            Condition::Compare {
                left,
                negated,
                right,
            } => write!(f, "{left} {} {right}", if *negated { "!=" } else { "=" }),
            Condition::Match {
                left,
                negated,
                pattern,
            } => write!(f, "{left} {} {pattern}", if *negated { "!~" } else { "=~" }),
            Condition::In {
                left,
                negated,
                list,
            } => {
                write!(f, "{left} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Condition::Is {
                left,
                negated,
                predicate,
            } => write!(
                f,
                "{left} IS {}{}",
                if *negated { "NOT " } else { "" },
                predicate.as_str()
            ),
            Condition::Operand(operand) => write!(f, "{operand}"),
        }
    }
}

/// Writes `branches` separated by `sep`, parenthesizing those `needs_parens` says would regroup.
fn join(
    f: &mut fmt::Formatter<'_>,
    branches: &[Condition],
    sep: &str,
    needs_parens: impl Fn(&Condition) -> bool,
) -> fmt::Result {
    for (i, branch) in branches.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if needs_parens(branch) {
            write!(f, "({branch})")?;
        } else {
            write!(f, "{branch}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Var(var) => f.write_str(var.name()),
            Operand::Value(text) if parser::reads_back_as_bare_value(text) => f.write_str(text),
            Operand::Value(text) if text.contains('"') => write!(f, "'{text}'"),
            Operand::Value(text) => write!(f, "\"{text}\""),
            Operand::Call(call) => write!(f, "{call}"),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.function {
            Function::Env => "env(",
            Function::Concat => "concat(",
        })?;
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{arg}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Call(call) => write!(f, "{call}"),
            Pattern::Literal(p) => f.write_str(&parser::regex_spelling(&p.source, p.slashed)),
        }
    }
}
