//! Lint: every problem in a pipeline file at once, each with its position, a code and a hint.
//!
//! The checks are driven by the tables in [`crate::spec`]; this module only walks the loaded YAML
//! tree against them. Codes are Travis's own (`unknown_key`, `deprecated_key`, `duplicate_key`,
//! `unexpected_seq`, `invalid_type`, `unknown_value`, `invalid_secure`, `secure`, `empty`,
//! `invalid_env_var`, `overwrite`, `find_key`, `clean_key`, `underscore_key`, `required`) where
//! Travis has one, so results compare with travis-yml's; Slipway adds codes for problems Travis
//! has no word for (YAML load failures, `invalid_condition`, `unsupported`, `no_effect`,
//! `empty_file`, `invalid_root`). See `docs/pipeline-reference.md` for the list.

use crate::diagnostic::{Diagnostic, Severity};
use crate::spec::{self, Key, Obj, Support, Ty};
use crate::yaml::{self, Limits, Node, NodeKind, Resolved, Span};

mod checks;
mod notify;
mod text;

pub use text::{EnvVarsError, is_canonical_base64, offset_in_scalar, parse_env_vars, travis_match};
use text::{clean_key, nearest, where_};

/// Codes Travis's own config processor (travis-yml) also reports; every other code is Slipway's.
pub const TRAVIS_CODES: &[&str] = &[
    "unknown_key",
    "deprecated_key",
    "duplicate_key",
    "unexpected_seq",
    "invalid_type",
    "unknown_value",
    "invalid_secure",
    "secure",
    "empty",
    "invalid_env_var",
    "overwrite",
    "find_key",
    "clean_key",
    "underscore_key",
    "required",
];

/// Lints a pipeline file, returning every problem found, sorted by position.
///
/// Never panics, whatever the bytes: input that cannot be loaded (not UTF-8, YAML syntax errors,
/// alias bombs, nesting too deep, too large) yields one error naming the problem and where it is.
pub fn lint(file_name: &str, bytes: &[u8]) -> Vec<Diagnostic> {
    lint_with(file_name, bytes, &LintOptions::default())
}

/// What lint checks against that the file does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LintOptions {
    /// The most jobs a build may have (`--max-jobs`, the server's `[limits] max_jobs`).
    pub max_jobs: u64,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            max_jobs: crate::planner::DEFAULT_MAX_JOBS,
        }
    }
}

/// [`lint`] with options.
pub fn lint_with(file_name: &str, bytes: &[u8], options: &LintOptions) -> Vec<Diagnostic> {
    let root = match yaml::load(bytes, Limits::default()) {
        Ok(root) => root,
        Err(err) => return vec![Diagnostic::from_load_error(file_name, &err)],
    };
    // `load` succeeded, so the bytes are UTF-8.
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    let mut linter = Linter {
        file: file_name,
        lines: text.split('\n').collect(),
        diags: Vec::new(),
    };
    match root {
        None => linter.push(
            Severity::Error,
            "empty_file",
            None,
            None,
            "the file holds no configuration".into(),
            Some("add at least `language:` and `script:` (or `image:` and `script:`)".into()),
        ),
        Some(root) if root.is_null() => linter.push(
            Severity::Error,
            "empty_file",
            Some(root.span),
            None,
            "the file holds no configuration".into(),
            Some("add at least `language:` and `script:` (or `image:` and `script:`)".into()),
        ),
        Some(root) if root.as_map().is_none() => linter.push(
            Severity::Error,
            "invalid_root",
            Some(root.span),
            None,
            format!(
                "the file must be a map of keys, but it holds {}",
                root.type_name()
            ),
            Some("start the file with keys such as `language: node_js`".into()),
        ),
        Some(root) => {
            linter.map(&root, spec::ROOT.groups, "");
            linter
                .diags
                .extend(job_cap(file_name, &root, options.max_jobs));
        }
    }
    let mut diags = linter.diags;
    diags.sort_by_key(|d| (d.pos().unwrap_or_default(), std::cmp::Reverse(d.severity)));
    // A YAML alias repeats the anchored node with its original spans: report each problem once.
    diags.dedup_by(|a, b| a.span == b.span && a.code == b.code && a.message == b.message);
    diags
}

/// The build-size error, pointing at the line of the matrix's largest axis.
fn job_cap(file_name: &str, root: &Node, max_jobs: u64) -> Option<Diagnostic> {
    let config = crate::config::Config::from_node(root).ok()?;
    let size = crate::expand::matrix_size(&config);
    if size.jobs <= max_jobs {
        return None;
    }
    fn key_span<'n>(map: &'n Node, names: &[&str]) -> Option<(Span, &'n Node)> {
        map.as_map()?
            .iter()
            .find(|(k, _)| k.as_str().is_some_and(|k| names.contains(&k)))
            .map(|(k, v)| (k.span, v))
    }
    let span = match size.largest_axis() {
        Some(("env", _)) => key_span(root, &["env"])
            .map(|(span, env)| key_span(env, &["jobs", "matrix"]).map_or(span, |(inner, _)| inner)),
        Some((axis, _)) => key_span(root, &[axis]).map(|(span, _)| span),
        None => key_span(root, &["jobs", "matrix"]).map(|(span, _)| span),
    };
    crate::planner::job_cap(file_name, &size, max_jobs, span)
}

/// True when the diagnostics hold at least one error (the CLI's exit status).
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

struct Linter<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    diags: Vec<Diagnostic>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "the root" } else { path }
}

/// The known keys of one map, as groups of key tables.
type Groups<'g> = &'g [&'static [Key]];

fn find_in(groups: Groups<'_>, name: &str) -> Option<&'static Key> {
    let all = || groups.iter().flat_map(|g| g.iter());
    all()
        .find(|k| k.name == name)
        .or_else(|| all().find(|k| k.aliases.contains(&name)))
}

fn all_keys<'g>(groups: Groups<'g>) -> impl Iterator<Item = &'static Key> + 'g {
    groups.iter().flat_map(|g| g.iter())
}

impl Linter<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &str,
        span: Option<Span>,
        key: Option<String>,
        message: String,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            code: code.to_owned(),
            file: self.file.to_owned(),
            span,
            key,
            message,
            hint,
        });
    }

    fn at(
        &mut self,
        severity: Severity,
        code: &str,
        node: &Node,
        path: &str,
        message: String,
        hint: &str,
    ) {
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        let key = (!path.is_empty()).then(|| path.to_owned());
        self.push(severity, code, Some(node.span), key, message, hint);
    }

    /// A list item such as `- echo Done: 100%`, which YAML reads as the map `{echo Done: 100%}`.
    /// Travis's processor drops it from the job (and so does the plan), so the warning shows the
    /// command as it was meant and the quoted line that keeps it.
    fn command_read_as_map(&mut self, item: &Node, path: &str) {
        let meant = match item.as_map() {
            Some([(k, v)]) => k.as_str().and_then(|k| match v.as_str() {
                _ if v.is_null() => Some(format!("{k}:")),
                Some(v) => Some(format!("{k}: {v}")),
                None => None,
            }),
            _ => None,
        };
        let (message, hint) = match meant {
            Some(command) => (
                format!(
                    "`{}`: the item `{command}` was read as a map (a plain item is split at `: `), \
                     so it is left out of the job",
                    shown(path)
                ),
                format!("quote the command: `- '{}'`", command.replace('\'', "''")),
            ),
            None => (
                format!(
                    "`{}` expects commands, but an item is a map, so it is left out of the job",
                    shown(path)
                ),
                "quote the item: a command containing `: ` reads as a map unless quoted".to_owned(),
            ),
        };
        self.at(
            Severity::Warning,
            "invalid_type",
            item,
            path,
            message,
            &hint,
        );
    }

    fn invalid_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.at(
            Severity::Error,
            "invalid_type",
            node,
            path,
            format!(
                "`{}` expects {expected}, but it holds {}",
                shown(path),
                node.type_name()
            ),
            &format!("write {expected} here"),
        );
    }

    fn unexpected_seq(&mut self, node: &Node, path: &str) {
        self.at(
            Severity::Warning,
            "unexpected_seq",
            node,
            path,
            format!(
                "`{}` takes one value, but it holds a list; only the first item is used",
                shown(path)
            ),
            "write a single value instead of a list",
        );
    }

    /// Checks `node` against the expected shape `ty`; `path` names it in messages.
    fn check(&mut self, node: &Node, ty: &Ty, path: &str) {
        if node.is_null() {
            return;
        }
        match ty {
            Ty::Any => {}
            Ty::Str | Ty::Bool | Ty::Num => self.scalar(node, ty, path),
            Ty::Enum(e) => match &node.kind {
                NodeKind::Scalar(_) => self.enum_value(node, e, path),
                NodeKind::Seq(items) => {
                    self.unexpected_seq(node, path);
                    if let Some(first) = items.first() {
                        self.check(first, ty, path);
                    }
                }
                NodeKind::Map(_) => self.invalid_type(node, path, "one value"),
            },
            Ty::Enums(e) => match &node.kind {
                NodeKind::Scalar(_) => self.enum_value(node, e, path),
                NodeKind::Seq(items) => {
                    for item in items {
                        match &item.kind {
                            NodeKind::Scalar(_) => self.enum_value(item, e, path),
                            _ if item.is_null() => {}
                            _ => self.invalid_type(item, path, "a value or a list of values"),
                        }
                    }
                }
                NodeKind::Map(_) => self.invalid_type(node, path, "a value or a list of values"),
            },
            Ty::Strs => match &node.kind {
                NodeKind::Scalar(_) => {}
                NodeKind::Seq(items) => {
                    for item in items {
                        if let NodeKind::Map(_) = item.kind {
                            self.command_read_as_map(item, path);
                        }
                    }
                }
                NodeKind::Map(_) => self.invalid_type(node, path, "a string or a list of strings"),
            },
            Ty::Secure => self.secure(node, path, true),
            Ty::SecureLax => self.secure(node, path, false),
            Ty::Secures => match &node.kind {
                NodeKind::Seq(items) => {
                    for item in items {
                        self.secure(item, path, true);
                    }
                }
                _ => self.secure(node, path, true),
            },
            Ty::Condition => self.condition(node, path),
            Ty::StrOrMap => match &node.kind {
                NodeKind::Scalar(_) => {}
                NodeKind::Map(entries) => {
                    for (k, v) in entries {
                        let child = join(path, k.as_str().unwrap_or("?"));
                        self.scalar(v, &Ty::Str, &child);
                    }
                }
                NodeKind::Seq(_) => self.unexpected_seq(node, path),
            },
            Ty::Map => {
                if node.as_map().is_none() {
                    self.invalid_type(node, path, "a map");
                }
            }
            Ty::Env => self.env(node, path),
            Ty::EnvVars => self.env_vars(node, path),
            Ty::Cache => self.cache(node, path),
            Ty::Object(obj) => self.object(node, obj, path),
            Ty::OneOrMany(inner) => match &node.kind {
                NodeKind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, inner, &format!("{path}[{i}]"));
                    }
                }
                _ => self.check(node, inner, path),
            },
            Ty::Jobs => match &node.kind {
                NodeKind::Map(_) => self.map(node, spec::JOBS.groups, path),
                NodeKind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, &spec::JOB_ENTRY_TY, &format!("{path}[{i}]"));
                    }
                }
                NodeKind::Scalar(_) => self.invalid_type(node, path, "a map or a list of jobs"),
            },
            Ty::Deploys => match &node.kind {
                NodeKind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.deploy(item, &format!("{path}[{i}]"));
                    }
                }
                _ => self.deploy(node, path),
            },
            Ty::Targets(target) => self.targets(node, *target, path),
            Ty::Template => self.template(node, path),
        }
    }

    fn scalar(&mut self, node: &Node, ty: &Ty, path: &str) {
        match &node.kind {
            NodeKind::Seq(items) => {
                self.unexpected_seq(node, path);
                if let Some(first) = items.first() {
                    self.scalar(first, ty, path);
                }
            }
            NodeKind::Map(_) => {
                let expected = match ty {
                    Ty::Bool => "a boolean",
                    Ty::Num => "a number",
                    _ => "a string",
                };
                self.invalid_type(node, path, expected);
            }
            NodeKind::Scalar(s) => {
                let ok = match ty {
                    Ty::Bool => {
                        matches!(node.resolve(), Some(Resolved::Bool(_)))
                            || matches!(
                                s.text.to_ascii_lowercase().as_str(),
                                "true" | "false" | "yes" | "no" | "on" | "off"
                            )
                    }
                    Ty::Num => s.text.trim().parse::<f64>().is_ok(),
                    _ => true,
                };
                if !ok {
                    let expected = if *ty == Ty::Bool {
                        "a boolean"
                    } else {
                        "a number"
                    };
                    self.invalid_type(node, path, expected);
                }
            }
        }
    }

    fn enum_value(&mut self, node: &Node, e: &spec::EnumSpec, path: &str) {
        // Booleans and numbers are cast by Travis (`on_start: false` means never); only names are checked.
        let Some(Resolved::Str(value)) = node.resolve() else {
            return;
        };
        if e.accepts(value) {
            return;
        }
        let known = e.values.join(", ");
        let hint = match nearest(value, e.values.iter().copied()) {
            Some(near) => format!("did you mean `{near}`? Known values: {known}"),
            None => format!("known values: {known}"),
        };
        self.at(
            Severity::Error,
            "unknown_value",
            node,
            path,
            format!("`{value}` is not a known value for `{}`", shown(path)),
            &hint,
        );
    }

    fn object(&mut self, node: &Node, obj: &'static Obj, path: &str) {
        match &node.kind {
            // `slack: {secure: …}` is the encrypted form of the prefix key (`rooms`); the
            // other keys of that map are the object's own.
            NodeKind::Map(entries) if node.get("secure").is_some() && obj.prefix.is_some() => {
                if let Some(prefix) = obj.prefix.and_then(|p| obj.find(p)) {
                    let (secure, rest): (Vec<_>, Vec<_>) = entries
                        .iter()
                        .cloned()
                        .partition(|(k, _)| k.as_str() == Some("secure"));
                    let secure = Node {
                        kind: NodeKind::Map(secure),
                        span: node.span,
                    };
                    self.check(&secure, &prefix.ty, &join(path, prefix.name));
                    let rest = Node {
                        kind: NodeKind::Map(rest),
                        span: node.span,
                    };
                    self.map(&rest, obj.groups, path);
                }
            }
            NodeKind::Map(_) => self.map(node, obj.groups, path),
            _ if obj.toggle && matches!(node.resolve(), Some(Resolved::Bool(_))) => {}
            _ => match obj.prefix.and_then(|p| obj.find(p)) {
                Some(prefix) => self.check(node, &prefix.ty, &join(path, prefix.name)),
                None => self.invalid_type(node, path, "a map"),
            },
        }
    }

    /// Checks a map's keys against the known keys of `groups`; every key is reported, never just the first.
    fn map(&mut self, node: &Node, groups: Groups<'_>, path: &str) {
        let Some(entries) = node.as_map() else {
            self.invalid_type(node, path, "a map");
            return;
        };
        let mut seen: Vec<(&str, &'static str, &Node)> = Vec::new();
        let mut literal: Vec<&str> = Vec::new();
        for (k, v) in entries {
            let Some(name) = k.as_str() else {
                self.at(
                    Severity::Error,
                    "invalid_type",
                    k,
                    path,
                    format!(
                        "a key in `{}` is {}, not a name",
                        shown(path),
                        k.type_name()
                    ),
                    "keys must be plain names",
                );
                continue;
            };
            if literal.contains(&name) {
                self.at(
                    Severity::Error,
                    "duplicate_key",
                    k,
                    &join(path, name),
                    format!(
                        "`{name}` is given more than once in {}; only the last one counts",
                        where_(path)
                    ),
                    "merge the two entries into one",
                );
                continue;
            }
            literal.push(name);
            if name.starts_with('_') {
                // Private keys hold anchors for reuse; Travis and Slipway ignore them.
                continue;
            }
            let child = join(path, name);
            let found = find_in(groups, name).or_else(|| self.fixed_key(k, name, groups, path));
            let Some(key) = found else {
                self.unknown_key(k, v, name, groups, path);
                continue;
            };
            if let Some((other, _, _)) =
                seen.iter().find(|(_, canonical, _)| *canonical == key.name)
            {
                self.at(
                    Severity::Error,
                    "overwrite",
                    k,
                    &child,
                    format!(
                        "`{name}` and `{other}` are the same key (`{}`); one overwrites the other",
                        key.name
                    ),
                    &format!("keep only `{}`", key.name),
                );
                continue;
            }
            seen.push((name, key.name, k));
            if let Some(why) = key.deprecated {
                self.at(
                    Severity::Warning,
                    "deprecated_key",
                    k,
                    &child,
                    format!("`{name}` is deprecated: {why}"),
                    "remove it or use the replacement the message names",
                );
            }
            match key.support {
                Support::Yes => {}
                Support::NotYet => self.at(
                    Severity::Warning,
                    "unsupported",
                    k,
                    &child,
                    format!("Slipway does not support `{name}` yet; it will be ignored"),
                    "remove it, or keep it for Travis and expect no effect under Slipway",
                ),
                Support::Cannot { why, instead } => self.at(
                    Severity::Warning,
                    "unsupported",
                    k,
                    &child,
                    format!("`{name}` cannot be honoured in a container: {why}; it is skipped"),
                    &format!("instead, {instead}"),
                ),
                Support::NoEffect(why) => self.at(
                    Severity::Info,
                    "no_effect",
                    k,
                    &child,
                    format!("`{name}` has no effect under Slipway: {why}"),
                    "",
                ),
            }
            let child = join(path, key.name);
            self.check(v, &key.ty, &child);
        }
    }

    /// Travis's key repair: `before-install` and `Script ` still mean known keys, and a close
    /// misspelling (`scripts`) is read as the key it resembles. Returns the key it resolves to.
    fn fixed_key(
        &mut self,
        k: &Node,
        name: &str,
        groups: Groups<'_>,
        path: &str,
    ) -> Option<&'static Key> {
        let underscored = name.replace('-', "_");
        if let Some(key) = find_in(groups, &underscored) {
            self.at(
                Severity::Info,
                "underscore_key",
                k,
                &join(path, name),
                format!("`{name}` is read as `{}`", key.name),
                &format!("write `{}`", key.name),
            );
            return Some(key);
        }
        let cleaned = clean_key(name);
        if cleaned != name
            && let Some(key) = find_in(groups, &cleaned)
        {
            self.at(
                Severity::Warning,
                "clean_key",
                k,
                &join(path, name),
                format!("`{name}` is read as `{}`", key.name),
                &format!("write `{}`", key.name),
            );
            return Some(key);
        }
        let candidates = all_keys(groups)
            .map(|k| k.name)
            .filter(|n| !spec::R_KEYS.contains(n));
        let near = travis_match(name, candidates)?;
        let key = find_in(groups, near)?;
        self.at(
            Severity::Warning,
            "find_key",
            k,
            &join(path, name),
            format!(
                "unknown key `{name}` in {}; it is read as `{}`",
                where_(path),
                key.name
            ),
            &format!("rename it to `{}`", key.name),
        );
        Some(key)
    }

    fn unknown_key(&mut self, k: &Node, v: &Node, name: &str, groups: Groups<'_>, path: &str) {
        let child = join(path, name);
        if self.has_anchor(k) {
            self.at(
                Severity::Warning,
                "deprecated_key",
                k,
                &child,
                format!("`{name}` is not a known key; it only holds an anchor (anchor on a non-private key)"),
                &format!("rename it to `_{name}`: keys starting with `_` are private and ignored"),
            );
            return;
        }
        let hint = match nearest(name, all_keys(groups).map(|k| k.name)) {
            Some(near) => format!("did you mean `{near}`?"),
            None => {
                "remove it, or check the spelling against docs/pipeline-reference.md".to_owned()
            }
        };
        let _ = v;
        self.at(
            Severity::Warning,
            "unknown_key",
            k,
            &child,
            format!("unknown key `{name}` in {}; it is ignored", where_(path)),
            &hint,
        );
    }

    /// Whether the value after key `k` carries an anchor (`key: &name ...`), read from the source.
    fn has_anchor(&self, k: &Node) -> bool {
        let Some(line) = self.lines.get(k.span.end.line.wrapping_sub(1)) else {
            return false;
        };
        let rest: String = line
            .chars()
            .skip(k.span.end.column.saturating_sub(1))
            .collect();
        let rest = rest.trim_start_matches(['"', '\'']).trim_start();
        let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
        rest.starts_with('&')
    }
}
