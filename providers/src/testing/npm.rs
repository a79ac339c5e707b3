//! A request-checking stand-in for the npm registry (no registry can run here): the publish
//! document is checked as the registry checks it — the bearer token, the package's path, one
//! version whose `dist` SHA-1 and SHA-512 match the attached tarball, the dist-tag, the
//! attachment's length, `access` — and a version is published once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{Reply, Request, StandIn};

/// The token the registry accepts.
pub const TOKEN: &str = "npm_token_6a0f3e";

/// What the stand-in keeps: versions published per package, and every refused request's reason.
#[derive(Default)]
pub struct Registry {
    /// Per package: (version, dist-tag, access).
    pub published: HashMap<String, Vec<(String, String, Option<String>)>>,
    /// Why each refused request was refused.
    pub problems: Vec<String>,
}

fn check(req: &Request, state: &mut Registry) -> Result<(u16, Value), (u16, String)> {
    if req.header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return Err((401, "unauthorized".into()));
    }
    if req.method != "PUT" || req.header("content-type").as_deref() != Some("application/json") {
        return Err((
            400,
            format!("{} with {:?}", req.method, req.header("content-type")),
        ));
    }
    let body = req.json();
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    if req.path != format!("/{}", name.replace('/', "%2f")) || body["_id"] != name.as_str() {
        return Err((400, format!("{} does not name {name}", req.path)));
    }
    let versions = body["versions"].as_object().cloned().unwrap_or_default();
    let [(version, doc)] = versions
        .into_iter()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| (400, "exactly one version is published at a time".to_owned()))?;
    if doc["_id"] != format!("{name}@{version}") || doc["version"] != version.as_str() {
        return Err((400, format!("version document {doc}")));
    }
    let tags = body["dist-tags"].as_object().cloned().unwrap_or_default();
    let [(tag, tagged)] = tags
        .into_iter()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| (400, "one dist-tag".to_owned()))?;
    if tagged != version.as_str() {
        return Err((400, format!("dist-tag {tag} points at {tagged}")));
    }
    let file = format!(
        "{}-{version}.tgz",
        name.trim_start_matches('@').replace('/', "-")
    );
    let attachment = &body["_attachments"][&file];
    let data = base64::engine::general_purpose::STANDARD
        .decode(attachment["data"].as_str().unwrap_or_default())
        .map_err(|e| (400, format!("attachment {file}: {e}")))?;
    if attachment["length"] != data.len() {
        return Err((400, "attachment length".into()));
    }
    let sha1: String = sha1::Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sha512 = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&data))
    );
    if doc["dist"]["shasum"] != sha1.as_str() || doc["dist"]["integrity"] != sha512.as_str() {
        return Err((
            400,
            format!("dist {} does not match the tarball", doc["dist"]),
        ));
    }
    if !doc["dist"]["tarball"]
        .as_str()
        .is_some_and(|t| t.ends_with(&format!("/{name}/-/{file}")))
    {
        return Err((400, format!("tarball URL {}", doc["dist"]["tarball"])));
    }
    let access = body["access"].as_str().map(str::to_owned);
    if !matches!(access.as_deref(), None | Some("public" | "restricted")) {
        return Err((400, format!("access {access:?}")));
    }
    let versions = state.published.entry(name).or_default();
    if versions.iter().any(|(v, _, _)| *v == version) {
        return Err((
            403,
            format!("You cannot publish over the previously published versions: {version}."),
        ));
    }
    versions.push((version, tag, access));
    Ok((201, json!({"ok": "created new package"})))
}

/// Starts the registry.
pub fn start() -> (StandIn, Arc<Mutex<Registry>>) {
    let state = Arc::new(Mutex::new(Registry::default()));
    let s = state.clone();
    let standin = StandIn::start(move |req| {
        let mut state = s.lock().unwrap();
        match check(req, &mut state) {
            Ok((status, body)) => Reply::json(status, body),
            Err((status, why)) => {
                state.problems.push(why.clone());
                Reply::json(status, json!({"error": why}))
            }
        }
    });
    (standin, state)
}
