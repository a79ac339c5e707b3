//! Checks of particular keys beyond their type: secure values, `if:` conditions, env var
//! assignments, cache settings and deploy providers.

use super::text::{is_canonical_base64, is_env_name, nearest, offset_in_scalar, parse_env_vars};
use super::{Linter, join, shown};
use crate::diagnostic::Severity;
use crate::spec::{self, Support, Ty};
use crate::yaml::{Node, NodeKind, Resolved, Span};

impl Linter<'_> {
    pub(super) fn secure(&mut self, node: &Node, path: &str, strict: bool) {
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

    pub(super) fn condition(&mut self, node: &Node, path: &str) {
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

    pub(super) fn env(&mut self, node: &Node, path: &str) {
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

    pub(super) fn env_vars(&mut self, node: &Node, path: &str) {
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
                            self.secure(v, &child, false);
                        }
                        NodeKind::Map(_) => self.invalid_type(v, &child, "a string or `secure:`"),
                    }
                }
            }
        }
    }

    pub(super) fn cache(&mut self, node: &Node, path: &str) {
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

    pub(super) fn deploy(&mut self, node: &Node, path: &str) {
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
                    let runs: Vec<&str> = spec::PROVIDERS
                        .iter()
                        .filter(|p| p.support == Support::Yes && p.name != "script")
                        .map(|p| p.name)
                        .collect();
                    self.at(
                        Severity::Warning,
                        "unsupported",
                        node,
                        path,
                        format!(
                            "Slipway cannot deploy with `{}` yet; this deploy will be skipped",
                            p.name
                        ),
                        &format!(
                            "use `provider: script` with the provider's own CLI, or one of {}",
                            runs.join(", ")
                        ),
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
