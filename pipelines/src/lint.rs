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
use crate::yaml::{self, Limits, Node, NodeKind, Pos, Resolved, Span, Style};

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
                            self.at(
                                Severity::Error,
                                "invalid_type",
                                item,
                                path,
                                format!("`{}` expects strings, but an item is a map", shown(path)),
                                "quote the item: a command containing `: ` reads as a map unless quoted",
                            );
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

    fn secure(&mut self, node: &Node, path: &str, strict: bool) {
        match &node.kind {
            NodeKind::Scalar(s) => {
                let plain = matches!(node.resolve(), Some(Resolved::Str(_)));
                let env_var = s.text.starts_with('$') && !s.text.contains(":$");
                if strict && plain && !env_var {
                    self.at(
                        Severity::Warning,
                        "secure",
                        node,
                        path,
                        format!("`{}` holds a secret in plain text", shown(path)),
                        "encrypt it and write it as `secure: <encrypted>`, or reference a `$VARIABLE` from the repository settings",
                    );
                }
            }
            NodeKind::Seq(_) => self.unexpected_seq(node, path),
            NodeKind::Map(entries) => {
                let Some(value) = node.get("secure") else {
                    self.invalid_type(node, path, "`secure: <encrypted>` or a string");
                    return;
                };
                let secure_path = join(path, "secure");
                for (k, _) in entries {
                    if k.as_str() != Some("secure") {
                        self.at(
                            Severity::Warning,
                            "unknown_key",
                            k,
                            &join(path, k.as_str().unwrap_or("?")),
                            format!(
                                "`{}` holds only `secure:`; other keys are ignored",
                                shown(path)
                            ),
                            "remove the extra key",
                        );
                    }
                }
                match value.as_str() {
                    // An empty string is (trivially) valid base64, as Travis sees it; only a missing value is flagged.
                    _ if value.is_null() => self.at(
                        Severity::Warning,
                        "empty",
                        value,
                        &secure_path,
                        format!("`{secure_path}` is empty"),
                        "put the encrypted value here",
                    ),
                    None => self.invalid_type(value, &secure_path, "an encrypted string"),
                    Some(text) if !is_canonical_base64(text) => self.at(
                        Severity::Warning,
                        "invalid_secure",
                        value,
                        &secure_path,
                        format!("`{secure_path}` is not an encrypted value (not base64)"),
                        "encrypt the secret; to use a repository variable write `$NAME` without `secure:`",
                    ),
                    Some(_) => {}
                }
            }
        }
    }

    fn condition(&mut self, node: &Node, path: &str) {
        let Some(text) = node.as_str() else {
            self.invalid_type(node, path, "a condition string");
            return;
        };
        if let Err(err) = crate::conditions::parse(text) {
            let pos = offset_in_scalar(node, err.column.saturating_sub(1));
            let hint = err.hint.unwrap_or_else(|| {
                "see the condition syntax in docs/pipeline-reference.md".to_owned()
            });
            self.push(
                Severity::Error,
                "invalid_condition",
                Some(Span {
                    start: pos,
                    end: pos,
                }),
                Some(path.to_owned()),
                format!("the condition in `{path}` does not parse: {}", err.message),
                Some(hint),
            );
        }
    }

    fn env(&mut self, node: &Node, path: &str) {
        let is_object = node.as_map().is_some_and(|e| {
            e.iter()
                .any(|(k, _)| matches!(k.as_str(), Some("global" | "jobs" | "matrix")))
        });
        if is_object {
            self.map(node, spec::ENV.groups, path);
        } else {
            self.env_vars(node, path);
        }
    }

    fn env_vars(&mut self, node: &Node, path: &str) {
        match &node.kind {
            NodeKind::Scalar(s) => {
                if matches!(node.resolve(), Some(Resolved::Str(_)))
                    && let Err(why) = parse_env_vars(&s.text)
                {
                    self.at(
                        Severity::Error,
                        "invalid_env_var",
                        node,
                        path,
                        format!("`{}` is not a valid variable definition: {why}", s.text),
                        "write `NAME=value`, with no spaces around `=`; quote values that contain spaces",
                    );
                }
            }
            NodeKind::Seq(items) => {
                for item in items {
                    self.env_vars(item, path);
                }
            }
            NodeKind::Map(entries) => {
                if node.get("secure").is_some() {
                    self.secure(node, path, false);
                    return;
                }
                for (k, v) in entries {
                    let name = k.as_str().unwrap_or("?");
                    let child = join(path, name);
                    if !is_env_name(name) {
                        self.at(
                            Severity::Error,
                            "invalid_env_var",
                            k,
                            &child,
                            format!("`{name}` is not a valid variable name"),
                            "use letters, digits and `_`, not starting with a digit",
                        );
                    }
                    match &v.kind {
                        NodeKind::Scalar(_) => {}
                        NodeKind::Seq(_) => self.unexpected_seq(v, &child),
                        NodeKind::Map(_) if v.get("secure").is_some() => {
                            self.secure(v, &child, false)
                        }
                        NodeKind::Map(_) => self.invalid_type(v, &child, "a string or `secure:`"),
                    }
                }
            }
        }
    }

    fn cache(&mut self, node: &Node, path: &str) {
        match &node.kind {
            NodeKind::Scalar(_) => {
                if let Some(Resolved::Str(name)) = node.resolve() {
                    self.cache_name(node, name, path);
                }
            }
            NodeKind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        NodeKind::Scalar(_) => {
                            if let Some(name) = item.as_str() {
                                self.cache_name(item, name, path);
                            }
                        }
                        NodeKind::Map(_) => self.map(item, spec::CACHE.groups, path),
                        NodeKind::Seq(_) => self.invalid_type(item, path, "a cache name or a map"),
                    }
                }
            }
            NodeKind::Map(_) => self.map(node, spec::CACHE.groups, path),
        }
    }

    fn cache_name(&mut self, node: &Node, name: &str, path: &str) {
        let known = spec::CACHE
            .keys()
            .any(|k| k.name == name && k.ty == Ty::Bool);
        if !known {
            self.at(
                Severity::Error,
                "unknown_value",
                node,
                path,
                format!("`{name}` is not a known cache"),
                "use one of bundler, pip, npm, yarn, cargo, ccache, cocoapods, packages, apt, or `directories:`",
            );
        }
    }

    fn deploy(&mut self, node: &Node, path: &str) {
        match &node.kind {
            NodeKind::Scalar(_) => {
                if let Some(name) = node.as_str() {
                    self.provider_known(node, name, path);
                }
            }
            NodeKind::Seq(_) => self.invalid_type(node, path, "a deploy provider map"),
            NodeKind::Map(_) => {
                let Some(provider_node) = node.get("provider") else {
                    self.at(
                        Severity::Error,
                        "required",
                        node,
                        path,
                        format!("`{}` has no `provider:`", shown(path)),
                        "name the provider, e.g. `provider: elasticbeanstalk`",
                    );
                    return;
                };
                let Some(name) = provider_node.as_str() else {
                    self.invalid_type(provider_node, &join(path, "provider"), "a provider name");
                    return;
                };
                let Some(provider) =
                    self.provider_known(provider_node, name, &join(path, "provider"))
                else {
                    return;
                };
                self.map(node, &[spec::DEPLOY_COMMON, provider.options], path);
                for required in provider.required {
                    let aliases = provider
                        .options
                        .iter()
                        .find(|k| k.name == *required)
                        .map_or(&[][..], |k| k.aliases);
                    let given = std::iter::once(required)
                        .chain(aliases)
                        .any(|name| node.get(name).is_some());
                    if !given {
                        self.at(
                            Severity::Error,
                            "required",
                            node,
                            path,
                            format!("the `{}` provider needs `{required}:`", provider.name),
                            &format!("add `{required}:` to this deploy"),
                        );
                    }
                }
            }
        }
    }

    fn provider_known(
        &mut self,
        node: &Node,
        name: &str,
        path: &str,
    ) -> Option<&'static spec::Provider> {
        match spec::provider(name) {
            Some(p) => {
                if p.support == Support::NotYet {
                    self.at(
                        Severity::Warning,
                        "unsupported",
                        node,
                        path,
                        format!("Slipway cannot deploy with `{}` yet; this deploy will be skipped", p.name),
                        "use `provider: script` with the provider's own CLI, or one of elasticbeanstalk, ecs, gke, kubernetes, s3",
                    );
                }
                Some(p)
            }
            None => {
                let hint = match nearest(name, spec::PROVIDERS.iter().map(|p| p.name)) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "see docs/pipeline-reference.md for the provider list".to_owned(),
                };
                self.at(
                    Severity::Error,
                    "unknown_value",
                    node,
                    path,
                    format!("`{name}` is not a known deploy provider"),
                    &hint,
                );
                None
            }
        }
    }
}

fn where_(path: &str) -> String {
    if path.is_empty() {
        "the root".to_owned()
    } else {
        format!("`{path}`")
    }
}

/// Travis's `clean` repair: dashes and spaces become underscores, other punctuation goes.
fn clean_key(key: &str) -> String {
    let key: String = key
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let key = key.trim_start_matches("__").trim_end_matches('_');
    key.replace("__", "_")
}

/// The known key Travis would read a misspelled key as: Levenshtein distance below half of the
/// shorter name (at most 4); ties go to the name sharing more letters, then the longer name.
pub fn travis_match<'k>(name: &str, candidates: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let len = name.chars().count();
    if len < 3 {
        return None;
    }
    let mut pairs: Vec<(usize, &str)> = candidates
        .filter_map(|other| {
            let d = strsim::levenshtein(name, other);
            let max = (len as f64 / 2.0)
                .min(other.chars().count() as f64 / 2.0)
                .min(4.0);
            ((d as f64) < max).then_some((d, other))
        })
        .collect();
    pairs.sort_by_key(|(d, _)| *d);
    if pairs.len() > 1 && pairs[0].0 == pairs[1].0 {
        let best = pairs[0].0;
        let shared = |other: &str| {
            let mut cs: Vec<char> = name.chars().filter(|c| other.contains(*c)).collect();
            cs.sort_unstable();
            cs.dedup();
            cs.len()
        };
        pairs.retain(|(d, _)| *d == best);
        pairs.sort_by_key(|(_, other)| {
            (
                std::cmp::Reverse(shared(other)),
                std::cmp::Reverse(other.len()),
            )
        });
    }
    pairs.first().map(|(_, other)| *other)
}

/// The closest name for a "did you mean" hint; looser than [`travis_match`].
fn nearest<'k>(name: &str, candidates: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// True when `s` is base64 that decodes and re-encodes to itself (what Travis calls encoded).
pub fn is_canonical_base64(s: &str) -> bool {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if s.len() % 4 != 0 {
        return false;
    }
    let pad = s.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return false;
    }
    let body = &s[..s.len() - pad];
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    if body.iter().any(|b| value(*b).is_none()) {
        return false;
    }
    // The unused low bits of the last character must be zero, or re-encoding changes it.
    match (pad, body.last().and_then(|b| value(*b))) {
        (1, Some(v)) => v & 0b11 == 0,
        (2, Some(v)) => v & 0b1111 == 0,
        _ => true,
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `A=1 B="two words" C=$(cmd)` the way Travis reads variable definitions (shell-like
/// words separated by spaces; a bare `NAME` means an empty value); `Err` says what is wrong.
pub fn parse_env_vars(text: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let mut vars = Vec::new();
    while i < chars.len() {
        if chars[i] == '"' {
            // A whole `"NAME=value"` in double quotes.
            let start = i + 1;
            i = skip_quoted(&chars, i, '"')?;
            let inner: String = chars[start..i - 1].iter().collect();
            let (name, value) = inner.split_once('=').unwrap_or((inner.as_str(), ""));
            vars.push((name.to_owned(), value.to_owned()));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
                i += 1;
            }
            if i == start {
                return Err(format!(
                    "expected a variable name at character {}",
                    start + 1
                ));
            }
            let name: String = chars[start..i].iter().collect();
            let mut value = String::new();
            if chars.get(i) == Some(&'=') {
                i += 1;
                let value_start = i;
                i = skip_value(&chars, i)?;
                value = chars[value_start..i].iter().collect();
            }
            vars.push((name, value));
        }
        if i < chars.len() && !chars[i].is_whitespace() {
            return Err(format!("unexpected `{}` at character {}", chars[i], i + 1));
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
    }
    Ok(vars)
}

/// Skips a quoted run starting at `chars[i] == quote`; returns the index after the closing quote.
fn skip_quoted(chars: &[char], mut i: usize, quote: char) -> Result<usize, String> {
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '\'' {
            i += 1;
        }
        i += 1;
    }
    if i >= chars.len() {
        return Err(format!("a `{quote}` is not closed"));
    }
    Ok(i + 1)
}

/// Skips one variable value (quotes, `$(…)`, `${…}` and backquotes may hold spaces).
fn skip_value(chars: &[char], mut i: usize) -> Result<usize, String> {
    while i < chars.len() && !chars[i].is_whitespace() {
        match chars[i] {
            '\\' => i += 2,
            q @ ('\'' | '"' | '`') => i = skip_quoted(chars, i, q)?,
            '$' if matches!(chars.get(i + 1), Some('(' | '{')) => {
                let close = if chars[i + 1] == '(' { ')' } else { '}' };
                let open = chars[i + 1];
                let mut depth = 0usize;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("a `${open}` is not closed")),
                        Some(c) if *c == open => depth += 1,
                        Some(c) if *c == close => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        Some(q @ ('\'' | '"' | '`')) => {
                            i = skip_quoted(chars, i, *q)?;
                            continue;
                        }
                        Some(_) => {}
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(i.min(chars.len()))
}

/// Position of a character offset inside a scalar, for pointing into `if:` conditions.
pub fn offset_in_scalar(node: &Node, offset: usize) -> Pos {
    let start = node.span.start;
    let quoted = node
        .as_scalar()
        .is_some_and(|s| matches!(s.style, Style::SingleQuoted | Style::DoubleQuoted));
    match node.as_scalar().map(|s| s.style) {
        Some(Style::Literal | Style::Folded) => Pos {
            line: start.line + 1,
            column: offset + 1,
        },
        _ => Pos {
            line: start.line,
            column: start.column + offset + usize::from(quoted),
        },
    }
}
