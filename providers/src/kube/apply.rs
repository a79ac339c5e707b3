//! Manifests and server-side apply: reading `kubectl apply -f` files into objects, discovering
//! each kind's resource path, and the secret and `set image` patch bodies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::access::{Cluster, status_message};
use super::{FIELD_MANAGER, Kubernetes, SecretSpec};
use crate::context::DeployContext;
use crate::error::Error;

/// One object from a manifest file.
#[derive(Clone, Debug)]
pub(super) struct Manifest {
    pub(super) file: String,
    pub(super) api_version: String,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) namespace: Option<String>,
    pub(super) body: Value,
}

/// What discovery says about a kind.
#[derive(Clone, Debug)]
pub(super) struct Resource {
    pub(super) plural: String,
    pub(super) namespaced: bool,
}

impl Kubernetes {
    /// Reads every manifest: a directory gives its `.yaml`, `.yml` and `.json` files in name
    /// order (as `kubectl apply -f DIR`), a file gives its documents.
    pub(super) fn load_manifests(&self, ctx: &DeployContext) -> Result<Vec<Manifest>, Error> {
        let build = ctx.build_dir(self.name)?;
        let mut files: Vec<PathBuf> = Vec::new();
        for m in &self.manifests {
            let path = build.resolve(self.name, "manifests", m)?;
            if path.is_dir() {
                let mut in_dir: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|e| self.file_err(&path, e.to_string()))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && matches!(
                                p.extension().and_then(|e| e.to_str()),
                                Some("yaml" | "yml" | "json")
                            )
                    })
                    .collect();
                in_dir.sort();
                for p in in_dir {
                    // A symlink in the directory must not lead out of the build dir either.
                    files.push(build.check(self.name, "manifests", &p)?);
                }
            } else {
                files.push(path);
            }
        }
        let mut out = Vec::new();
        for path in files {
            let text =
                std::fs::read_to_string(&path).map_err(|e| self.file_err(&path, e.to_string()))?;
            let rel = path
                .strip_prefix(build.root())
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            for doc in split_documents(&text) {
                let node = slipway_pipelines::yaml::load(doc.as_bytes(), Default::default())
                    .map_err(|e| self.file_err(&path, e.to_string()))?;
                let Some(node) = node else { continue };
                let value = node.to_json();
                if value.is_null() {
                    continue;
                }
                let items = if value.get("kind").and_then(Value::as_str) == Some("List") {
                    value
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    vec![value]
                };
                for body in items {
                    let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(str::to_owned);
                    let (Some(api_version), Some(kind), Some(name)) =
                        (s("/apiVersion"), s("/kind"), s("/metadata/name"))
                    else {
                        return Err(self.file_err(
                            &path,
                            "a document lacks apiVersion, kind or metadata.name".into(),
                        ));
                    };
                    out.push(Manifest {
                        file: rel.clone(),
                        api_version,
                        kind,
                        name,
                        namespace: s("/metadata/namespace"),
                        body,
                    });
                }
            }
        }
        Ok(out)
    }

    pub(super) fn file_err(&self, path: &Path, message: String) -> Error {
        Error::File {
            provider: self.name,
            path: path.to_path_buf(),
            message,
        }
    }

    /// `kubectl set image` for one deployment, all its containers at once.
    pub(super) fn image_patches(&self) -> Vec<(String, Value)> {
        let mut by_deployment: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        let mut order = Vec::new();
        for i in &self.images {
            if !by_deployment.contains_key(i.deployment.as_str()) {
                order.push(i.deployment.as_str());
            }
            by_deployment
                .entry(&i.deployment)
                .or_default()
                .push(json!({"name": i.container, "image": i.image}));
        }
        order
            .into_iter()
            .map(|d| {
                (
                    d.to_owned(),
                    json!({"spec": {"template": {"spec": {"containers": by_deployment[d]}}}}),
                )
            })
            .collect()
    }

    pub(super) fn secret_body(&self, s: &SecretSpec, namespace: &str) -> Value {
        let data: serde_json::Map<String, Value> = s
            .data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v.expose()))))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": s.name, "namespace": namespace},
            "type": "Opaque",
            "data": data,
        })
    }
}

/// Splits a YAML stream at `---` document markers.
pub(super) fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            docs.push(String::new());
            continue;
        }
        if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

pub(super) fn group_path(api_version: &str) -> String {
    if api_version == "v1" {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{api_version}")
    }
}

pub(super) fn object_path(
    api_version: &str,
    res: &Resource,
    namespace: &str,
    name: &str,
) -> String {
    if res.namespaced {
        format!(
            "{}/namespaces/{namespace}/{}/{name}",
            group_path(api_version),
            res.plural
        )
    } else {
        format!("{}/{}/{name}", group_path(api_version), res.plural)
    }
}

pub(super) fn apply_query() -> String {
    format!("?fieldManager={FIELD_MANAGER}&force=true")
}

impl Kubernetes {
    pub(super) async fn discover(
        &self,
        cluster: &Cluster,
        cache: &mut BTreeMap<String, Value>,
        m: &Manifest,
    ) -> Result<Resource, Error> {
        if !cache.contains_key(&m.api_version) {
            let path = group_path(&m.api_version);
            let r = cluster
                .call("GET", &path, None, None)
                .await
                .map_err(|e| self.api_err(format!("GET {path}"), e))?;
            if r.status == 404 {
                return Err(self.api_err(
                    format!("apply {}", m.file),
                    format!(
                        "the cluster does not serve {} (kind {})",
                        m.api_version, m.kind
                    ),
                ));
            }
            if !r.ok() {
                return Err(self.api_err(format!("GET {path}"), status_message(&r)));
            }
            cache.insert(m.api_version.clone(), r.json());
        }
        let list = &cache[&m.api_version];
        list.get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                r.get("kind").and_then(Value::as_str) == Some(&m.kind)
                    && !r
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("/")
                        .contains('/')
            })
            .map(|r| Resource {
                plural: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                namespaced: r.get("namespaced").and_then(Value::as_bool).unwrap_or(true),
            })
            .ok_or_else(|| {
                self.api_err(
                    format!("apply {}", m.file),
                    format!("{} has no kind {}", m.api_version, m.kind),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_markers() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- \n\n---\nc: 3\n");
        assert_eq!(docs, ["a: 1\n", "b: 2\n", "c: 3\n"]);
    }

    #[test]
    fn object_paths_follow_scope() {
        let ns = Resource {
            plural: "deployments".into(),
            namespaced: true,
        };
        let cl = Resource {
            plural: "clusterissuers".into(),
            namespaced: false,
        };
        assert_eq!(
            object_path("apps/v1", &ns, "prod", "web"),
            "/apis/apps/v1/namespaces/prod/deployments/web"
        );
        assert_eq!(
            object_path("cert-manager.io/v1", &cl, "prod", "le"),
            "/apis/cert-manager.io/v1/clusterissuers/le"
        );
        assert_eq!(
            object_path(
                "v1",
                &Resource {
                    plural: "services".into(),
                    namespaced: true
                },
                "d",
                "s"
            ),
            "/api/v1/namespaces/d/services/s"
        );
    }
}
