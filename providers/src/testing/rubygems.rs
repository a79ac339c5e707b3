//! A request-checking stand-in for a gem host's push API (no gem host can run here):
//! `POST /api/v1/gems` with the key as `Authorization`, the gem as an octet stream whose
//! `metadata.gz` names it, a version pushed once; `GET /api/v1/api_key` with the account's Basic
//! credentials gives the key.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use super::{Reply, StandIn};

/// The API key the host accepts (also what the account `octo:hunter2-gems` fetches).
pub const KEY: &str = "rubygems_key_91d2";

/// A `.gem`: a tar holding `metadata.gz` (the gemspec as YAML, gzipped) and `data.tar.gz`.
pub fn gem_bytes(name: &str, version: &str) -> Vec<u8> {
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let metadata = gz(format!(
        "--- !ruby/object:Gem::Specification\nname: {name}\nversion: !ruby/object:Gem::Version\n  version: {version}\nplatform: ruby\n"
    )
    .as_bytes());
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in [("metadata.gz", metadata), ("data.tar.gz", gz(b""))] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap()
}

/// Name and version from a pushed gem's `metadata.gz`.
fn spec_of(gem: &[u8]) -> Option<(String, String)> {
    let mut archive = tar::Archive::new(gem);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        if entry.path().ok()?.to_str()? != "metadata.gz" {
            continue;
        }
        let mut yaml = String::new();
        flate2::read::GzDecoder::new(entry)
            .read_to_string(&mut yaml)
            .ok()?;
        let name = yaml
            .lines()
            .find_map(|l| l.strip_prefix("name: "))?
            .to_owned();
        let version = yaml
            .lines()
            .find_map(|l| l.strip_prefix("  version: "))?
            .to_owned();
        return Some((name, version));
    }
    None
}

/// Gems pushed (name, version), and every refused request's reason.
pub type Pushed = Arc<Mutex<(Vec<(String, String)>, Vec<String>)>>;

/// Starts the gem host.
pub fn start() -> (StandIn, Pushed) {
    let state = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let s = state.clone();
    let standin = StandIn::start(move |req| {
        let mut s = s.lock().unwrap();
        let text = |status: u16, body: &str| Reply::Respond {
            status,
            content_type: "text/plain",
            body: body.to_owned(),
        };
        if req.path == "/api/v1/api_key" {
            // "octo:hunter2-gems" in Basic.
            return if req.header("authorization").as_deref()
                == Some("Basic b2N0bzpodW50ZXIyLWdlbXM=")
            {
                text(200, KEY)
            } else {
                s.1.push("api_key without the account's credentials".into());
                text(401, "HTTP Basic: Access denied.")
            };
        }
        if req.method != "POST" || req.path != "/api/v1/gems" {
            s.1.push(format!("{} {}", req.method, req.path));
            return text(404, "Not Found");
        }
        if req.header("authorization").as_deref() != Some(KEY) {
            s.1.push("a push without the key".into());
            return text(401, "Access Denied. Please sign up for an account");
        }
        if req.header("content-type").as_deref() != Some("application/octet-stream") {
            s.1.push(format!("content type {:?}", req.header("content-type")));
            return text(415, "Unsupported Media Type");
        }
        let Some((name, version)) = spec_of(&req.body) else {
            s.1.push("not a gem".into());
            return text(422, "RubyGems.org cannot process this gem.");
        };
        if s.0.contains(&(name.clone(), version.clone())) {
            return text(409, "Repushing of gem versions is not allowed.");
        }
        s.0.push((name.clone(), version.clone()));
        text(
            200,
            &format!("Successfully registered gem: {name} ({version})"),
        )
    });
    (standin, state)
}
