//! `deploy:` entries: normalised JSON at load time (`on:` made canonical), read back as typed
//! [`DeploySpec`]s with their [`DeployOn`] conditions and the dpl v1/v2 cleanup rule.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::{bool_of, canonical_key, entries, json_strs, scalar_string, str_list, strings, text};
use crate::spec;
use crate::yaml::{Node, NodeKind};

/// One deploy entry with its `on:` conditions separated from the provider's options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploySpec {
    /// `provider:` as written.
    pub provider: String,
    /// The provider's options, JSON, `{secure: …}` objects intact.
    pub options: IndexMap<String, Value>,
    /// `on:`, normalised.
    pub on: DeployOn,
    /// Keep the working tree as the job left it: dpl v1 (the default) only with
    /// `skip_cleanup: true` or `cleanup: false`; dpl v2 (`edge`) unless `cleanup: true`.
    pub skip_cleanup: bool,
    /// `edge:` as written.
    pub edge: Option<Value>,
    /// `allow_failure: true`: a failing deploy does not error the job.
    pub allow_failure: bool,
}

/// A deploy's `on:` conditions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeployOn {
    /// `branch:` names or `/regex/` (none: the default branch only).
    pub branch: Vec<String>,
    /// `tags: true` deploys only tag builds, `false` never tag builds; unset: tags do not matter
    /// beyond the branch rule.
    pub tags: Option<bool>,
    /// `all_branches: true`.
    pub all_branches: bool,
    /// `condition:` shell tests, evaluated by the job's shell at deploy time.
    pub condition: Vec<String>,
    /// `repo:` owner/name that must match the built repository.
    pub repo: Option<String>,
    /// Other keys (`node_js: 8`, `jdk: …`, `os: linux`): the job's value of that key must match.
    pub matrix: IndexMap<String, String>,
}

/// `deploy:` one map or a list of maps, each in normalised JSON with `on` canonical and each
/// option under the name its provider reads it by (`api_key` → `token` for `releases`), as
/// Travis's processor normalises them; an option given under both names keeps the canonical one.
pub(super) fn deploy_list(node: &Node) -> Vec<Value> {
    node.one_or_many()
        .into_iter()
        .filter(|n| n.as_map().is_some())
        .map(|n| {
            let provider = n
                .get("provider")
                .and_then(text)
                .and_then(|p| spec::provider(&p));
            let written = entries(n);
            let mut map = Map::new();
            for (k, v) in &written {
                let name = provider.map_or(k.as_str(), |p| p.canonical_option(k));
                if name != k && written.iter().any(|(other, _)| other == name) {
                    continue;
                }
                let value = if k == "on" {
                    deploy_on_json(v)
                } else {
                    v.to_json()
                };
                map.insert(name.to_owned(), value);
            }
            Value::Object(map)
        })
        .collect()
}

fn deploy_on_json(node: &Node) -> Value {
    let mut map = Map::new();
    match &node.kind {
        NodeKind::Map(_) => {
            for (k, v) in entries(node) {
                let key = match k.as_str() {
                    "branches" => "branch".to_owned(),
                    _ => k,
                };
                let value = match key.as_str() {
                    "branch" => match &v.kind {
                        NodeKind::Map(_) => strings(
                            // `branch: {only: [...]}` was accepted too.
                            v.get("only").map(str_list).unwrap_or_default(),
                        ),
                        _ => strings(str_list(v)),
                    },
                    "condition" => strings(str_list(v)),
                    "tags" | "all_branches" => match bool_of(v) {
                        Some(b) => Value::Bool(b),
                        None => v.to_json(),
                    },
                    _ => match &v.kind {
                        NodeKind::Scalar(_) => Value::String(text(v).unwrap_or_default()),
                        _ => v.to_json(),
                    },
                };
                map.insert(key, value);
            }
        }
        // `on: master` means the branch.
        NodeKind::Scalar(_) | NodeKind::Seq(_) => {
            let branches = str_list(node);
            if !branches.is_empty() {
                map.insert("branch".to_owned(), strings(branches));
            }
        }
    }
    Value::Object(map)
}

impl DeploySpec {
    /// Reads a deploy entry from its normalised JSON form.
    pub fn from_json(value: &Value) -> Option<DeploySpec> {
        let map = value.as_object()?;
        let mut spec = DeploySpec {
            provider: map
                .get("provider")
                .and_then(scalar_string)
                .unwrap_or_default(),
            ..DeploySpec::default()
        };
        let (mut skip_cleanup, mut cleanup) = (None, None);
        for (k, v) in map {
            match k.as_str() {
                "provider" => {}
                "on" => spec.on = DeployOn::from_json(v),
                "skip_cleanup" => skip_cleanup = v.as_bool(),
                "cleanup" => cleanup = v.as_bool(),
                "edge" => spec.edge = Some(v.clone()),
                // It picked the version of Travis's deploy tool, which Travis's own lint does not
                // know either (`unknown_key`, "it is ignored"); Slipway's providers have one.
                "dpl_version" => {}
                "allow_failure" => spec.allow_failure = v.as_bool() == Some(true),
                _ => {
                    spec.options.insert(k.clone(), v.clone());
                }
            }
        }
        // dpl v1 (the default) cleans the working tree unless told not to; dpl v2 (`edge`)
        // leaves it alone unless told to clean.
        spec.skip_cleanup = if is_edge(spec.edge.as_ref()) {
            cleanup != Some(true)
        } else {
            skip_cleanup == Some(true) || cleanup == Some(false)
        };
        Some(spec)
    }
}

/// Whether `edge:` asks for dpl v2: any value but `false` (`true`, `{branch: …}`, `local`).
fn is_edge(edge: Option<&Value>) -> bool {
    !matches!(edge, None | Some(Value::Null | Value::Bool(false)))
}

impl DeployOn {
    fn from_json(v: &Value) -> DeployOn {
        let mut on = DeployOn::default();
        let Some(map) = v.as_object() else {
            return on;
        };
        for (k, v) in map {
            match k.as_str() {
                "branch" => on.branch = json_strs(v),
                "tags" => on.tags = v.as_bool(),
                "all_branches" => on.all_branches = v.as_bool() == Some(true),
                "condition" => on.condition = json_strs(v),
                "repo" => on.repo = scalar_string(v),
                other => {
                    if let Some(s) = scalar_string(v) {
                        on.matrix.insert(canonical_key(other).to_owned(), s);
                    }
                }
            }
        }
        on
    }
}
