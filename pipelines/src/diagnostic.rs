//! Problems found in a pipeline file, each pointing at the text to change and saying how.
//!
//! Lint returns every problem at once rather than stopping at the first, and planning reports the
//! same values when a file is too broken to plan, so the CLI and the web UI render one type.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::yaml::{LoadError, Pos, Span};

/// How bad a problem is: errors stop a build, warnings and infos do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational, e.g. a key that has no effect here.
    Info,
    /// Works, but probably not as meant (unknown key, deprecated key, unsupported feature).
    Warning,
    /// The file cannot be run as written.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// A stable machine-readable code, e.g. `unknown_key`, `wrong_type`, `yaml_syntax`
    /// (Travis's own codes where one exists, so results compare with travis-yml's).
    pub code: String,
    /// The file, as the user named it.
    pub file: String,
    /// Where the problem is; `None` only for whole-file problems (too large, empty).
    pub span: Option<Span>,
    /// The key path, e.g. `jobs.include[2].stage`, when the problem belongs to a key.
    pub key: Option<String>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// The start position, for sorting and for the `file:line:column` prefix.
    pub fn pos(&self) -> Option<Pos> {
        self.span.map(|s| s.start)
    }

    /// Turns a YAML loading failure into a diagnostic for `file`.
    pub fn from_load_error(file: &str, err: &LoadError) -> Self {
        let code = match err {
            LoadError::NotUtf8 { .. } => "not_utf8",
            LoadError::TooLarge { .. } => "too_large",
            LoadError::Syntax { .. } => "yaml_syntax",
            LoadError::TooDeep { .. } => "too_deep",
            LoadError::TooManyNodes { .. } => "alias_budget",
            LoadError::UndefinedAlias { .. } => "undefined_alias",
        };
        let message = err.to_string();
        // The error's Display starts with the position; the diagnostic carries it separately.
        let message = match err.pos() {
            Some(pos) => message
                .strip_prefix(&format!("{pos}: "))
                .unwrap_or(&message)
                .to_owned(),
            None => message,
        };
        Diagnostic {
            severity: Severity::Error,
            code: code.to_owned(),
            file: file.to_owned(),
            span: err.pos().map(|p| Span { start: p, end: p }),
            key: None,
            message,
            hint: Some(err.hint().to_owned()),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos() {
            Some(pos) => write!(
                f,
                "{}:{pos}: {}: {}",
                self.file, self.severity, self.message
            )?,
            None => write!(f, "{}: {}: {}", self.file, self.severity, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
