//! Manifests and server-side apply: reading `kubectl apply -f` files into objects, discovering
//! each kind's resource, applying them with kube-rs, and the secret and `set image` patch bodies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};

use super::access::{Cluster, describe, status_code};
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

/// What discovery says about a kind: how kube-rs addresses it, and its scope.
#[derive(Clone, Debug)]
pub(super) struct Resource {
    pub(super) api: ApiResource,
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

/// Server-side apply as `kubectl apply --server-side --force-conflicts` does it: Slipway owns
/// the fields it applies.
pub(super) fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

impl Kubernetes {
    /// How kube-rs addresses `m`'s kind and whether it is namespaced, from the API server's
    /// list of its group version (read once per group version).
    pub(super) async fn discover(
        &self,
        cluster: &Cluster,
        cache: &mut BTreeMap<String, APIResourceList>,
        m: &Manifest,
    ) -> Result<Resource, Error> {
        if !cache.contains_key(&m.api_version) {
            let listed = if m.api_version.contains('/') {
                cluster
                    .client
                    .list_api_group_resources(&m.api_version)
                    .await
            } else {
                cluster.client.list_core_api_resources(&m.api_version).await
            };
            let list = match listed {
                Ok(list) => list,
                Err(e) if status_code(&e) == Some(404) => {
                    return Err(self.api_err(
                        format!("apply {}", m.file),
                        format!(
                            "the cluster does not serve {} (kind {})",
                            m.api_version, m.kind
                        ),
                    ));
                }
                Err(e) => {
                    return Err(
                        self.api_err(format!("GET {}", group_path(&m.api_version)), describe(&e))
                    );
                }
            };
            cache.insert(m.api_version.clone(), list);
        }
        let (group, version) = m
            .api_version
            .split_once('/')
            .unwrap_or(("", &m.api_version));
        cache[&m.api_version]
            .resources
            .iter()
            .find(|r| r.kind == m.kind && !r.name.contains('/'))
            .map(|r| Resource {
                api: ApiResource {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    api_version: m.api_version.clone(),
                    kind: m.kind.clone(),
                    plural: r.name.clone(),
                },
                namespaced: r.namespaced,
            })
            .ok_or_else(|| {
                self.api_err(
                    format!("apply {}", m.file),
                    format!("{} has no kind {}", m.api_version, m.kind),
                )
            })
    }

    /// Applies one object server-side: a request that fails is an error of `action`, one the
    /// API server refuses an error of `refused` with the server's message.
    pub(super) async fn apply(
        &self,
        cluster: &Cluster,
        res: &Resource,
        namespace: &str,
        body: &Value,
        action: &str,
        refused: &str,
    ) -> Result<(), Error> {
        let api: Api<DynamicObject> = if res.namespaced {
            Api::namespaced_with(cluster.client.clone(), namespace, &res.api)
        } else {
            Api::all_with(cluster.client.clone(), &res.api)
        };
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        api.patch(name, &apply_params(), &Patch::Apply(body))
            .await
            .map(drop)
            .map_err(|e| self.kube_err(action, refused, &e))
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
    fn group_paths_follow_the_core_group() {
        assert_eq!(group_path("v1"), "/api/v1");
        assert_eq!(group_path("apps/v1"), "/apis/apps/v1");
    }
}
