//! A request-checking stand-in for packagecloud's API (no packagecloud can run here): the token as
//! the Basic user name, `dist` turned into the id of its distributions list, each package a
//! `multipart/form-data` upload whose parts it parses (a distribution id for `.deb`, none for a
//! gem), a file name taken once, and `force` yanking the one already there.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{Reply, StandIn};

/// The token the API accepts.
pub const TOKEN: &str = "pc_token_52ab";

/// One part of a `multipart/form-data` body: (name, file name, bytes).
type Part = (String, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` body.
fn parts(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=")?;
    let text = body;
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let at = find(rest, delimiter.as_bytes())?;
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            return Some(out);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())?;
        let data = rest[..end].to_vec();
        rest = &rest[end + 2..];
        let field = |key: &str| {
            head.split(';')
                .find_map(|p| p.trim().strip_prefix(&format!("{key}=\"")))
                .and_then(|v| v.strip_suffix('"').or(v.split('"').next()))
                .map(str::to_owned)
        };
        out.push((field("name")?, field("filename"), data));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the stand-in holds: the packages uploaded, those yanked, what it refused.
#[derive(Default)]
pub struct Cloud {
    /// (repository, distro id, file name, bytes).
    pub packages: Vec<(String, Option<String>, String, Vec<u8>)>,
    /// File names yanked (`force`).
    pub yanked: Vec<String>,
    /// Why each refused request was refused.
    pub problems: Vec<String>,
}

/// Starts the API: the repository `golang-migrate/migrate`, distributions `ubuntu/xenial` (165),
/// `ubuntu/focal` and `el/7`.
pub fn start() -> (StandIn, Arc<Mutex<Cloud>>) {
    let state = Arc::new(Mutex::new(Cloud::default()));
    let s = state.clone();
    let standin = StandIn::start(move |req| {
        let mut s = s.lock().unwrap();
        // "pc_token_52ab:" in Basic.
        if req.header("authorization").as_deref() != Some("Basic cGNfdG9rZW5fNTJhYjo=") {
            s.problems
                .push(format!("{} {} without the token", req.method, req.path));
            return Reply::json(401, json!({"error": "Unauthenticated"}));
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v1/distributions.json") => Reply::json(
                200,
                json!({"deb": [{"display_name": "Ubuntu", "index_name": "ubuntu",
                                "versions": [{"id": 165, "index_name": "xenial"}, {"id": 190, "index_name": "focal"}]}],
                       "rpm": [{"display_name": "Enterprise Linux", "index_name": "el",
                                "versions": [{"id": 140, "index_name": "7"}]}]}),
            ),
            ("DELETE", path)
                if path.starts_with("/api/v1/repos/golang-migrate/migrate/ubuntu/xenial/") =>
            {
                let file = path.rsplit('/').next().unwrap().to_owned();
                let before = s.packages.len();
                s.packages.retain(|p| p.2 != file);
                if s.packages.len() == before {
                    return Reply::json(404, json!({"error": "not found"}));
                }
                s.yanked.push(file);
                Reply::json(200, json!({}))
            }
            ("POST", "/api/v1/repos/golang-migrate/migrate/packages.json") => {
                let Some(parts) = parts(&req.header("content-type").unwrap_or_default(), &req.body)
                else {
                    s.problems.push("not multipart/form-data".into());
                    return Reply::json(400, json!({"error": "multipart expected"}));
                };
                let distro = parts
                    .iter()
                    .find(|p| p.0 == "package[distro_version_id]")
                    .map(|p| String::from_utf8_lossy(&p.2).into_owned());
                let Some((_, Some(file), bytes)) =
                    parts.into_iter().find(|p| p.0 == "package[package_file]")
                else {
                    s.problems.push("no package[package_file]".into());
                    return Reply::json(422, json!({"package_file": ["can't be blank"]}));
                };
                if file.ends_with(".deb") && distro.as_deref() != Some("165") {
                    s.problems.push(format!("{file} with distro {distro:?}"));
                    return Reply::json(422, json!({"distribution": ["is required"]}));
                }
                if s.packages.iter().any(|p| p.2 == file) {
                    return Reply::json(422, json!({"filename": ["has already been taken"]}));
                }
                s.packages.push(("migrate".into(), distro, file, bytes));
                Reply::json(201, json!({}))
            }
            (m, p) => {
                s.problems.push(format!("{m} {p}"));
                Reply::json(404, json!({"error": "not found"}))
            }
        }
    });
    (standin, state)
}
