//! `import:`: shared configuration merged into a pipeline file before it is planned.
//!
//! Planning stays pure: the caller passes a [`Fetch`] that returns an imported file's bytes (from
//! the same repository at the build's commit, or from another repository it serves, with the
//! build's credentials); this module only parses, evaluates `if:`, detects cycles and merges.
//! Merging follows Travis's config processor (travis-yml): the importing file wins, and the mode
//! of each import entry says how: `merge` (top-level keys only), `deep_merge` (maps merged
//! recursively, lists of the importing file win), `deep_merge_append` (the default: lists
//! concatenated, imported items first) and `deep_merge_prepend` (importing items first).

use crate::diagnostic::{Diagnostic, Severity};
use crate::expand::{self, CondOutcome};
use crate::plan::Context;
use crate::yaml::{self, Node, NodeKind, Span};

/// Most imports one build may load, nested ones included (Travis's limit).
pub const MAX_IMPORTS: usize = 25;

/// Where an imported file lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    /// `owner/name` of another repository; `None` for the repository being built.
    pub repo: Option<String>,
    /// The file's path from the repository's root.
    pub path: String,
    /// A branch, tag or commit (`@ref`); `None`: the build's commit for the repository being
    /// built, the default branch for another repository.
    pub git_ref: Option<String>,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(repo) = &self.repo {
            write!(f, "{repo}:")?;
        }
        f.write_str(&self.path)?;
        if let Some(r) = &self.git_ref {
            write!(f, "@{r}")?;
        }
        Ok(())
    }
}

/// How an imported file is merged into the one importing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Top-level keys of the importing file win; the imported file adds the others.
    Merge,
    /// Maps merged recursively; where both have a list or a scalar, the importing file's wins.
    DeepMerge,
    /// Like `DeepMerge`, but lists are concatenated with the imported items first.
    DeepMergeAppend,
    /// Like `DeepMerge`, but lists are concatenated with the importing file's items first.
    DeepMergePrepend,
}

/// Why an imported file could not be read: the caller's own error (git, the file system),
/// shown with the import's position.
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

/// Gives the bytes of an imported file; the caller's I/O, with the build's credentials and trust.
pub trait Fetch {
    /// The file at `source`, or why it cannot be read.
    fn fetch(&mut self, source: &Source) -> Result<Vec<u8>, FetchError>;
}

impl<F, E> Fetch for F
where
    F: FnMut(&Source) -> Result<Vec<u8>, E>,
    E: Into<FetchError>,
{
    fn fetch(&mut self, source: &Source) -> Result<Vec<u8>, FetchError> {
        self(source).map_err(Into::into)
    }
}

/// Why an import source cannot be used, as written in the importing file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The part before `:` is not `owner/name`.
    #[error("`{text}` names the repository `{repo}`, which is not owner/name")]
    NotOwnerName {
        /// The source as written.
        text: String,
        /// The repository part.
        repo: String,
    },
    /// No path after the repository (or before the `@ref`).
    #[error("`{0}` names no file")]
    NoFile(String),
    /// A relative path climbs above the repository's root.
    #[error("`{0}` points outside the repository")]
    Outside(String),
}

/// Parses an import source as written in `importing` (`owner/name:path@ref`, `./path`, `path`).
/// A path starting with `./` or `../` is relative to the importing file's directory; any other
/// same-repository path is from the repository's root.
pub fn parse_source(text: &str, importing: &Source) -> Result<Source, SourceError> {
    let text = text.trim();
    let (repo, rest) = match text.split_once(':') {
        Some((repo, rest)) => {
            let mut parts = repo.split('/');
            let valid = parts.clone().count() == 2 && parts.all(|p| !p.is_empty());
            if !valid {
                return Err(SourceError::NotOwnerName {
                    text: text.to_owned(),
                    repo: repo.to_owned(),
                });
            }
            (Some(repo.to_owned()), rest)
        }
        None => (None, text),
    };
    let (path, git_ref) = match rest.rsplit_once('@') {
        Some((path, r)) if !r.is_empty() => (path, Some(r.to_owned())),
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err(SourceError::NoFile(text.to_owned()));
    }
    let outside = || SourceError::Outside(text.to_owned());
    if repo.is_some() {
        return Ok(Source {
            repo,
            path: normalize(path).ok_or_else(outside)?,
            git_ref,
        });
    }
    // A path in the importing file's own repository (and at its ref).
    let path = if path.starts_with("./") || path.starts_with("../") {
        let dir = importing
            .path
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or("");
        normalize(&format!("{dir}/{path}"))
    } else {
        normalize(path)
    }
    .ok_or_else(outside)?;
    Ok(Source {
        repo: importing.repo.clone(),
        path,
        git_ref: git_ref.or_else(|| importing.git_ref.clone()),
    })
}

/// `a/./b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn mode_of(text: &str) -> Option<Mode> {
    Some(match text {
        "merge" => Mode::Merge,
        "deep_merge" => Mode::DeepMerge,
        "deep_merge_append" => Mode::DeepMergeAppend,
        "deep_merge_prepend" => Mode::DeepMergePrepend,
        _ => return None,
    })
}

/// One `import:` entry as written.
struct Entry {
    source: String,
    mode: Option<String>,
    condition: Option<String>,
    span: Span,
}

fn entries(node: &Node) -> Vec<Entry> {
    node.one_or_many()
        .into_iter()
        .filter_map(|item| match &item.kind {
            NodeKind::Scalar(s) => Some(Entry {
                source: s.text.clone(),
                mode: None,
                condition: None,
                span: item.span,
            }),
            NodeKind::Map(_) => Some(Entry {
                source: item.get("source")?.as_str()?.to_owned(),
                mode: item.get("mode").and_then(Node::as_str).map(str::to_owned),
                condition: item.get("if").and_then(Node::as_str).map(str::to_owned),
                span: item.span,
            }),
            NodeKind::Seq(_) => None,
        })
        .collect()
}

/// Resolves the imports of a loaded pipeline file: the merged tree, without `import:`.
struct Resolver<'a, F: Fetch> {
    fetch: &'a mut F,
    ctx: &'a Context,
    loaded: usize,
}

fn error(
    file: &str,
    span: Option<Span>,
    code: &str,
    message: String,
    hint: &str,
) -> Box<Diagnostic> {
    Box::new(Diagnostic {
        severity: Severity::Error,
        code: code.to_owned(),
        file: file.to_owned(),
        span,
        key: Some("import".to_owned()),
        message,
        hint: Some(hint.to_owned()),
    })
}

impl<F: Fetch> Resolver<'_, F> {
    /// `root` with its imports merged in; `chain` holds the files importing it, outermost first.
    fn resolve(
        &mut self,
        file: &Source,
        shown: &str,
        root: Node,
        chain: &mut Vec<Source>,
    ) -> Result<Node, Box<Diagnostic>> {
        let NodeKind::Map(pairs) = root.kind else {
            return Ok(root);
        };
        let (imports, rest): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| k.as_str() == Some("import"));
        let mut acc = Node {
            kind: NodeKind::Map(rest),
            span: root.span,
        };
        chain.push(file.clone());
        for (_, value) in imports {
            for entry in entries(&value) {
                let here = Some(entry.span);
                let mode = match entry.mode.as_deref() {
                    None => Mode::DeepMergeAppend,
                    Some(m) => mode_of(m).ok_or_else(|| {
                        error(
                            shown,
                            here,
                            "invalid_import",
                            format!("import mode `{m}` is not known"),
                            "use merge, deep_merge, deep_merge_append (the default) or deep_merge_prepend",
                        )
                    })?,
                };
                if let Some(cond) = &entry.condition {
                    match expand::evaluate(Some(cond), &Default::default(), self.ctx) {
                        CondOutcome::Accepted => {}
                        CondOutcome::Rejected => continue,
                        CondOutcome::Invalid(e) => {
                            return Err(error(
                                shown,
                                here,
                                "invalid_condition",
                                format!("the import's if: {cond} is invalid: {e}"),
                                "see docs/pipeline-reference.md for the condition syntax",
                            ));
                        }
                    }
                }
                let source = parse_source(&entry.source, file).map_err(|e| {
                    error(
                        shown,
                        here,
                        "invalid_import",
                        format!("import source {e}"),
                        "write owner/name:path/file.yml@ref for another repository, or a path in this one",
                    )
                })?;
                if let Some(at) = chain.iter().position(|s| *s == source) {
                    let cycle: Vec<String> = chain[at..]
                        .iter()
                        .chain(std::iter::once(&source))
                        .map(ToString::to_string)
                        .collect();
                    return Err(error(
                        shown,
                        here,
                        "import_cycle",
                        format!("imports form a cycle: {}", cycle.join(" → ")),
                        "remove one of the imports in the cycle",
                    ));
                }
                self.loaded += 1;
                if self.loaded > MAX_IMPORTS {
                    return Err(error(
                        shown,
                        here,
                        "too_many_imports",
                        format!(
                            "importing {source} would load more than {MAX_IMPORTS} files, Travis's limit (nested imports count)"
                        ),
                        "merge shared snippets into fewer files",
                    ));
                }
                let bytes = self.fetch.fetch(&source).map_err(|e| {
                    error(
                        shown,
                        here,
                        "import_unavailable",
                        format!("cannot import {source}: {e}"),
                        "check the path and ref, and that this server serves the repository",
                    )
                })?;
                let name = source.to_string();
                let node = match yaml::load(&bytes, yaml::Limits::default()) {
                    Ok(Some(n)) if n.as_map().is_some() => n,
                    Ok(_) => continue,
                    Err(e) => return Err(Box::new(Diagnostic::from_load_error(&name, &e))),
                };
                let imported = self.resolve(&source, &name, node, chain)?;
                acc = merge(acc, imported, mode);
            }
        }
        chain.pop();
        Ok(acc)
    }
}

/// The pipeline file's tree with its imports merged in (and `import:` removed); `path` is the
/// file as shown in diagnostics.
pub fn resolve(
    path: &str,
    root: Node,
    ctx: &Context,
    fetch: &mut impl Fetch,
) -> Result<Node, Box<Diagnostic>> {
    // A pipeline file lives at the repository's root, whatever path the caller shows it by.
    let file = Source {
        repo: None,
        path: path.rsplit('/').next().unwrap_or(path).to_owned(),
        git_ref: None,
    };
    let mut resolver = Resolver {
        fetch,
        ctx,
        loaded: 0,
    };
    resolver.resolve(&file, path, root, &mut Vec::new())
}

fn key_of(node: &Node) -> Option<&str> {
    node.as_scalar().map(|s| s.text.as_str())
}

/// Merges `imported` under `importing` (the importing file wins), Travis's way for `mode`.
pub fn merge(importing: Node, imported: Node, mode: Mode) -> Node {
    match (importing.kind, imported.kind) {
        (NodeKind::Map(mut left), NodeKind::Map(right)) => {
            for (k, v) in right {
                let Some(name) = key_of(&k) else { continue };
                match left.iter().position(|(lk, _)| key_of(lk) == Some(name)) {
                    None => left.push((k, v)),
                    Some(_) if mode == Mode::Merge => {}
                    Some(i) => {
                        let (lk, lv) = left.remove(i);
                        left.insert(i, (lk, merge(lv, v, mode)));
                    }
                }
            }
            Node {
                kind: NodeKind::Map(left),
                span: importing.span,
            }
        }
        (NodeKind::Seq(left), NodeKind::Seq(right)) => {
            let items = match mode {
                Mode::DeepMergeAppend => right.into_iter().chain(left).collect(),
                Mode::DeepMergePrepend => left.into_iter().chain(right).collect(),
                Mode::Merge | Mode::DeepMerge => left,
            };
            Node {
                kind: NodeKind::Seq(items),
                span: importing.span,
            }
        }
        (kind, _) => Node {
            kind,
            span: importing.span,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(path: &str) -> Source {
        Source {
            repo: None,
            path: path.into(),
            git_ref: None,
        }
    }

    #[test]
    fn sources() {
        let root = here(".travis.yml");
        assert_eq!(
            parse_source("acme/shared:ci/node.yml@v1", &root).unwrap(),
            Source {
                repo: Some("acme/shared".into()),
                path: "ci/node.yml".into(),
                git_ref: Some("v1".into())
            }
        );
        assert_eq!(parse_source("ci/a.yml", &root).unwrap(), here("ci/a.yml"));
        let nested = here("ci/a.yml");
        assert_eq!(parse_source("./b.yml", &nested).unwrap(), here("ci/b.yml"));
        assert_eq!(parse_source("b.yml", &nested).unwrap(), here("b.yml"));
        let other = parse_source("acme/shared:ci/node.yml@v1", &root).unwrap();
        assert_eq!(
            parse_source("./more.yml", &other).unwrap(),
            Source {
                repo: Some("acme/shared".into()),
                path: "ci/more.yml".into(),
                git_ref: Some("v1".into())
            }
        );
        assert!(parse_source("../../x.yml", &nested).is_err());
        assert!(parse_source("acme:x.yml", &root).is_err());
    }
}
