//! `env:` in all its Travis forms: a string of assignments, a list, `global`/`jobs`, and
//! `secure:` entries, normalised to one JSON form and read back as typed [`EnvEntry`]s.

use serde_json::{Map, Value};

use super::{canonical_key, entries, text};
use crate::plan::EnvValue;
use crate::yaml::{Node, NodeKind};

/// One `env` entry, typed: `NAME=value` pairs (possibly several from one string) or a whole
/// encrypted `secure:` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvEntry {
    /// Variables in order; a value may itself be `{secure: …}`.
    Vars(Vec<(String, EnvValue)>),
    /// `- secure: …`: the encrypted `NAME=value` text, never decoded here.
    Secure(String),
}

impl EnvEntry {
    /// Reads an entry back from its normalised JSON form (`{"A": "1"}` or `{"secure": "…"}`).
    pub fn from_json(value: &Value) -> Option<EnvEntry> {
        let map = value.as_object()?;
        if map.len() == 1
            && let Some(Value::String(s)) = map.get("secure")
        {
            return Some(EnvEntry::Secure(s.clone()));
        }
        let vars = map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::Object(o) => match o.get("secure") {
                        Some(Value::String(s)) => EnvValue::Secure(s.clone()),
                        _ => EnvValue::Plain(v.to_string()),
                    },
                    Value::String(s) => EnvValue::Plain(s.clone()),
                    Value::Null => EnvValue::Plain(String::new()),
                    other => EnvValue::Plain(other.to_string()),
                };
                (k.clone(), value)
            })
            .collect();
        Some(EnvEntry::Vars(vars))
    }
}

/// Splits `A=1 B="two words" C=$(cmd arg)` into assignments, keeping each value's text verbatim
/// (quotes, `$(…)` and backticks included) for the job's shell to evaluate. `None` when a word is
/// not an assignment (Travis reports `invalid_env_var` and keeps an empty entry). Like Travis, a
/// bare word `NAME` means `NAME=` and names are not checked beyond having no quotes.
pub fn parse_env_string(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        if name.is_empty() || name.contains(['"', '\'', '$', '`']) {
            return None;
        }
        if i >= chars.len() || chars[i] != '=' {
            // A bare word declares the variable with an empty value, as Travis reads it.
            out.push((name, String::new()));
            continue;
        }
        i += 1;
        let vstart = i;
        let mut depth = 0usize;
        while i < chars.len() {
            match chars[i] {
                '\\' => i += 1,
                '\'' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                }
                '"' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                '`' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '`' {
                        i += 1;
                    }
                }
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                c if c.is_whitespace() && depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let end = i.min(chars.len());
        out.push((name, chars[vstart..end].iter().collect()));
    }
    Some(out)
}

/// One env entry in Travis's normalised form: `{"A": "1", "B": "2"}` or `{"secure": "…"}`.
fn env_entry(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Map(_) => {
            let mut map = Map::new();
            for (k, v) in entries(node) {
                let value = match &v.kind {
                    NodeKind::Map(_) => v.to_json(),
                    _ => Value::String(text(v).unwrap_or_default()),
                };
                map.insert(k, value);
            }
            Value::Object(map)
        }
        _ => {
            let s = text(node).unwrap_or_default();
            let mut map = Map::new();
            if let Some(pairs) = parse_env_string(&s) {
                for (k, v) in pairs {
                    map.insert(k, Value::String(v));
                }
            }
            Value::Object(map)
        }
    }
}

/// A list of env entries from a string, a map or a list of either.
fn env_list(node: &Node) -> Vec<Value> {
    match &node.kind {
        NodeKind::Seq(items) => items
            .iter()
            .flat_map(|item| match &item.kind {
                NodeKind::Seq(_) => env_list(item),
                _ if item.is_null() => Vec::new(),
                _ => vec![env_entry(item)],
            })
            .collect(),
        _ if node.is_null() => Vec::new(),
        _ => vec![env_entry(node)],
    }
}

/// `env:` at the root: `{global: [...], jobs: [...]}`; a plain list or string means `jobs`.
pub(super) fn root_env(node: &Node) -> (Vec<Value>, Option<Vec<Value>>) {
    let is_env_map = node.as_map().is_some()
        && entries(node)
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "global" | "jobs" | "matrix"));
    if !is_env_map {
        return (Vec::new(), Some(env_list(node)).filter(|l| !l.is_empty()));
    }
    let mut global = Vec::new();
    let mut jobs = None;
    for (k, v) in entries(node) {
        match canonical_key(&k) {
            "global" => global = env_list(v),
            "jobs" => jobs = Some(env_list(v)),
            _ => {}
        }
    }
    (global, jobs.filter(|l| !l.is_empty()))
}
