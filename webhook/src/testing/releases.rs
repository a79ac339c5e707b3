//! GitHub's Releases API as [`super::FakeGitHub`] plays it once [`super::FakeGitHub::releases`]
//! is called: releases and their assets kept per repository, each request checked the way GitHub
//! checks it, and every mismatch answered as GitHub would (401, 403, 404, 422) and listed in
//! `problems`.
//!
//! What is checked: a `User-Agent` (GitHub answers 403 without one); `Authorization` as `token T`
//! or `Bearer T` with a token in `tokens`, or Basic with a pair in `passwords`; the repository
//! in `repos`; JSON bodies whose fields have GitHub's types (`tag_name` a non-empty string,
//! `draft`/`prerelease` booleans, `name`/`body`/`target_commitish` strings, nothing else); one
//! release per tag (422 `already_exists`); asset uploads at the release's `upload_url` with a
//! `name` query, a `Content-Type` and a body of its `Content-Length`, one asset per name (422
//! `already_exists`). Drafts are listed but not found by tag, as on GitHub.

use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use serde_json::{Value, json};

/// One asset of a release.
#[derive(Debug, Clone)]
pub struct FakeAsset {
    pub id: u64,
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One release.
#[derive(Debug, Clone)]
pub struct FakeRelease {
    pub id: u64,
    pub repo: String,
    pub tag_name: String,
    pub target_commitish: String,
    pub name: Option<String>,
    pub body: Option<String>,
    pub draft: bool,
    pub prerelease: bool,
    pub assets: Vec<FakeAsset>,
}

impl FakeRelease {
    /// Each asset's name and bytes, in upload order.
    pub fn files(&self) -> Vec<(&str, &[u8])> {
        self.assets
            .iter()
            .map(|a| (a.name.as_str(), a.bytes.as_slice()))
            .collect()
    }
}

/// The releases side of the stand-in.
#[derive(Debug, Clone, Default)]
pub struct FakeReleases {
    /// Tokens accepted (`Authorization: token T` or `Bearer T`).
    pub tokens: Vec<String>,
    /// `(user, password)` pairs accepted as Basic credentials.
    pub passwords: Vec<(String, String)>,
    /// Repositories (`owner/name`) that exist.
    pub repos: Vec<String>,
    pub releases: Vec<FakeRelease>,
    /// Every request that GitHub would have refused, and why.
    pub problems: Vec<String>,
}

type Answer = (u16, Value);

fn error(status: u16, message: &str) -> Answer {
    (status, json!({"message": message}))
}

fn invalid(resource: &str, field: &str, code: &str) -> Answer {
    (
        422,
        json!({"message": "Validation Failed",
               "errors": [{"resource": resource, "field": field, "code": code}]}),
    )
}

impl FakeReleases {
    /// An id no release or asset has yet.
    fn next_id(&self) -> u64 {
        self.releases
            .iter()
            .flat_map(|r| std::iter::once(r.id).chain(r.assets.iter().map(|a| a.id)))
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Whether this side answers `path`.
    pub(super) fn owns(path: &str) -> bool {
        path.starts_with("/uploads/")
            || (path.starts_with("/repos/") && path.split('/').nth(4) == Some("releases"))
    }

    fn release_json(&self, r: &FakeRelease, host: &str) -> Value {
        json!({
            "id": r.id,
            "tag_name": r.tag_name,
            "target_commitish": r.target_commitish,
            "name": r.name,
            "body": r.body,
            "draft": r.draft,
            "prerelease": r.prerelease,
            "html_url": format!("http://{host}/{}/releases/tag/{}", r.repo, r.tag_name),
            "upload_url": format!("http://{host}/uploads/repos/{}/releases/{}/assets{{?name,label}}", r.repo, r.id),
            "assets": r.assets.iter().map(asset_json).collect::<Vec<_>>(),
        })
    }

    fn authorized(&self, headers: &HeaderMap) -> Result<(), Answer> {
        let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        if get("user-agent").is_none_or(str::is_empty) {
            return Err(error(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            ));
        }
        let auth = get("authorization").unwrap_or_default();
        let token = auth
            .strip_prefix("token ")
            .or_else(|| auth.strip_prefix("Bearer "));
        let ok = match token {
            Some(t) => self.tokens.iter().any(|k| k == t),
            None => auth
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|pair| {
                    let (u, p) = pair.split_once(':')?;
                    Some(self.passwords.iter().any(|(a, b)| a == u && b == p))
                })
                .unwrap_or(false),
        };
        if ok {
            Ok(())
        } else {
            Err(error(401, "Bad credentials"))
        }
    }

    /// The answer to a request this side owns; a refused one is also listed in `problems`.
    pub(super) fn answer(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        let answer = self.route(method, uri, headers, body);
        if answer.0 >= 400 {
            self.problems.push(format!(
                "{method} {}: {} {}",
                uri.path(),
                answer.0,
                answer.1
            ));
        }
        answer
    }

    fn route(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Answer {
        if let Err(refused) = self.authorized(headers) {
            return refused;
        }
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string();
        let path = uri.path();
        let upload = path.strip_prefix("/uploads");
        let s: Vec<&str> = upload
            .unwrap_or(path)
            .trim_start_matches('/')
            .split('/')
            .collect();
        if s.len() < 4 || s[0] != "repos" || s[3] != "releases" {
            return error(404, "Not Found");
        }
        let repo = format!("{}/{}", s[1], s[2]);
        if !self.repos.iter().any(|r| r.eq_ignore_ascii_case(&repo)) {
            return error(404, "Not Found");
        }
        let rest = &s[4..];
        let query = super::form(uri.query().unwrap_or(""));
        match (method.as_str(), upload.is_some(), rest) {
            ("GET", false, []) => {
                let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let per: usize = query
                    .get("per_page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(30)
                    .min(100);
                let mine: Vec<Value> = self
                    .releases
                    .iter()
                    .rev()
                    .filter(|r| r.repo.eq_ignore_ascii_case(&repo))
                    .skip((page.max(1) - 1) * per)
                    .take(per)
                    .map(|r| self.release_json(r, &host))
                    .collect();
                (200, Value::Array(mine))
            }
            ("POST", false, []) => self.create(&repo, body, &host),
            ("GET", false, ["tags", tag]) => match self
                .releases
                .iter()
                .find(|r| r.repo.eq_ignore_ascii_case(&repo) && r.tag_name == *tag && !r.draft)
            {
                Some(r) => (200, self.release_json(r, &host)),
                None => error(404, "Not Found"),
            },
            ("DELETE", false, ["assets", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                for r in &mut self.releases {
                    if let Some(i) = r.assets.iter().position(|a| a.id == id) {
                        r.assets.remove(i);
                        return (204, Value::Null);
                    }
                }
                error(404, "Not Found")
            }
            (m, upload, [id, more @ ..]) => {
                let id: u64 = id.parse().unwrap_or(0);
                let Some(i) = self
                    .releases
                    .iter()
                    .position(|r| r.id == id && r.repo.eq_ignore_ascii_case(&repo))
                else {
                    return error(404, "Not Found");
                };
                match (m, upload, more) {
                    ("GET", false, []) => (200, self.release_json(&self.releases[i], &host)),
                    ("PATCH", false, []) => self.update(i, body, &host),
                    ("GET", false, ["assets"]) => {
                        let page: usize =
                            query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                        let assets: Vec<Value> = if page <= 1 {
                            self.releases[i].assets.iter().map(asset_json).collect()
                        } else {
                            Vec::new()
                        };
                        (200, Value::Array(assets))
                    }
                    ("POST", true, ["assets"]) => self.upload(i, &query, headers, body),
                    _ => error(404, "Not Found"),
                }
            }
            _ => error(404, "Not Found"),
        }
    }

    /// Checks a release body's fields as GitHub types them.
    fn fields(body: &[u8]) -> Result<serde_json::Map<String, Value>, Answer> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Err(error(400, "Problems parsing JSON"));
        };
        for (k, v) in &map {
            let ok = match k.as_str() {
                "tag_name" => v.as_str().is_some_and(|t| !t.is_empty()),
                "name" | "body" | "target_commitish" => v.is_string() || v.is_null(),
                "draft" | "prerelease" => v.is_boolean(),
                _ => false,
            };
            if !ok {
                return Err(invalid("Release", k, "invalid"));
            }
        }
        Ok(map)
    }

    fn create(&mut self, repo: &str, body: &[u8], host: &str) -> Answer {
        let map = match Self::fields(body) {
            Ok(m) => m,
            Err(a) => return a,
        };
        let Some(tag) = map.get("tag_name").and_then(Value::as_str) else {
            return invalid("Release", "tag_name", "missing_field");
        };
        if self
            .releases
            .iter()
            .any(|r| r.repo.eq_ignore_ascii_case(repo) && r.tag_name == tag)
        {
            return invalid("Release", "tag_name", "already_exists");
        }
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        let release = FakeRelease {
            id: self.next_id(),
            repo: repo.to_string(),
            tag_name: tag.to_string(),
            target_commitish: text("target_commitish").unwrap_or_else(|| "master".into()),
            name: text("name"),
            body: text("body"),
            draft: map.get("draft").and_then(Value::as_bool).unwrap_or(false),
            prerelease: map
                .get("prerelease")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            assets: Vec::new(),
        };
        let answer = self.release_json(&release, host);
        self.releases.push(release);
        (201, answer)
    }

    fn update(&mut self, i: usize, body: &[u8], host: &str) -> Answer {
        let map = match Self::fields(body) {
            Ok(m) => m,
            Err(a) => return a,
        };
        let repo = self.releases[i].repo.clone();
        if let Some(tag) = map.get("tag_name").and_then(Value::as_str)
            && self
                .releases
                .iter()
                .enumerate()
                .any(|(j, r)| j != i && r.repo == repo && r.tag_name == tag)
        {
            return invalid("Release", "tag_name", "already_exists");
        }
        let r = &mut self.releases[i];
        for (k, v) in map {
            match k.as_str() {
                "tag_name" => r.tag_name = v.as_str().unwrap_or_default().to_string(),
                "target_commitish" => {
                    r.target_commitish = v.as_str().unwrap_or_default().to_string();
                }
                "name" => r.name = v.as_str().map(str::to_string),
                "body" => r.body = v.as_str().map(str::to_string),
                "draft" => r.draft = v.as_bool().unwrap_or(r.draft),
                "prerelease" => r.prerelease = v.as_bool().unwrap_or(r.prerelease),
                _ => {}
            }
        }
        (200, self.release_json(&self.releases[i], host))
    }

    fn upload(
        &mut self,
        i: usize,
        query: &std::collections::HashMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        let Some(name) = query.get("name").filter(|n| !n.is_empty()) else {
            return error(400, "name is required");
        };
        let Some(content_type) = get("content-type").filter(|t| !t.is_empty()) else {
            return invalid("ReleaseAsset", "content_type", "missing_field");
        };
        if get("content-length").and_then(|l| l.parse::<usize>().ok()) != Some(body.len()) {
            return error(400, "Content-Length must give the asset's size");
        }
        if self.releases[i].assets.iter().any(|a| &a.name == name) {
            return invalid("ReleaseAsset", "name", "already_exists");
        }
        let asset = FakeAsset {
            id: self.next_id(),
            name: name.clone(),
            content_type: content_type.to_string(),
            bytes: body.to_vec(),
        };
        let answer = asset_json(&asset);
        self.releases[i].assets.push(asset);
        (201, answer)
    }
}

fn asset_json(a: &FakeAsset) -> Value {
    json!({"id": a.id, "name": a.name, "content_type": a.content_type, "size": a.bytes.len(),
           "state": "uploaded"})
}
