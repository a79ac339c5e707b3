//! `provider: releases`: create or update the GitHub Release of the tag and upload files to it, as
//! dpl does.
//!
//! The release of the tag is looked up among the repository's releases (drafts included, which
//! GitHub's by-tag lookup does not return). A missing one is created as a draft, the files are
//! uploaded (an asset of the same name is kept, or with `overwrite: true` replaced), and the
//! release is then updated with the options and `draft` (default false), so a release is never
//! public before its assets are there.

use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error};
use crate::github::{self, Api, GitHubAuth, repo_path};
use crate::options::Options;
use slipway_runner::DeployLog;

const NAME: &str = "releases";

/// Every option the releases provider takes.
pub const OPTIONS: &[&str] = &[
    "token",
    "username",
    "password",
    "repo",
    "file",
    "file_glob",
    "overwrite",
    "draft",
    "name",
    "prerelease",
    "release_number",
    "release_notes",
    "release_notes_file",
    "tag_name",
    "target_commitish",
];

/// Where the release notes come from.
#[derive(Debug)]
enum Notes {
    /// `release_notes` / `body`.
    Text(String),
    /// `release_notes_file`: a file of the build dir.
    File(String),
}

/// Typed releases options.
#[derive(Debug)]
pub struct Releases {
    auth: GitHubAuth,
    repo: String,
    files: Vec<String>,
    file_glob: bool,
    overwrite: bool,
    draft: bool,
    name: Option<String>,
    prerelease: Option<bool>,
    release_number: Option<u64>,
    notes: Option<Notes>,
    tag_name: Option<String>,
    target_commitish: Option<String>,
}

impl Releases {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let ctx = o.ctx();
        let auth = GitHubAuth::read(&mut o, NAME, &["token"], true, true)?;
        let repo = o.string(&["repo"])?.unwrap_or_else(|| ctx.repo.clone());
        github::check_repo(NAME, "repo", &repo)?;
        let files = o.strings(&["file"])?;
        let file_glob = o.bool(&["file_glob"])?.unwrap_or(false);
        let overwrite = o.bool(&["overwrite"])?.unwrap_or(false);
        let draft = o.bool(&["draft"])?.unwrap_or(false);
        let name = o.string(&["name"])?;
        let prerelease = o.bool(&["prerelease"])?;
        let release_number = match o.string(&["release_number"])? {
            None => None,
            Some(n) => Some(n.trim().parse::<u64>().map_err(|_| {
                option_error(NAME, "release_number", format!("`{n}` is not a release id"))
            })?),
        };
        let text = o.string(&["release_notes"])?;
        let file = o.string(&["release_notes_file"])?;
        let notes = match (text, file) {
            (Some(_), Some(_)) => {
                return Err(option_error(
                    NAME,
                    "release_notes_file",
                    "give release_notes or release_notes_file, not both",
                ));
            }
            (Some(t), None) => Some(Notes::Text(t)),
            (None, Some(f)) => Some(Notes::File(f)),
            (None, None) => None,
        };
        let tag_name = o.string(&["tag_name"])?.filter(|t| !t.is_empty());
        let target_commitish = o.string(&["target_commitish"])?;
        o.finish(OPTIONS)?;
        Ok(Releases {
            auth,
            repo,
            files,
            file_glob,
            overwrite,
            draft,
            name,
            prerelease,
            release_number,
            notes,
            tag_name,
            target_commitish,
        })
    }

    /// The tag: `tag_name`, else the job's `TRAVIS_TAG`, else the build's tag.
    fn tag(&self, ctx: &DeployContext) -> Option<String> {
        self.tag_name
            .clone()
            .or_else(|| {
                ctx.env
                    .get("TRAVIS_TAG")
                    .map(|v| v.expose().to_owned())
                    .filter(|t| !t.is_empty())
            })
            .or_else(|| ctx.tag.clone())
    }

    fn require_tag(&self, ctx: &DeployContext) -> Result<String, Error> {
        self.tag(ctx).ok_or_else(|| {
            option_error(
                NAME,
                "tag_name",
                "this build is not for a tag: deploy on tags (on: tags: true) or give tag_name",
            )
        })
    }

    /// The files to upload, in option order, each once; `missing` gets the entries that name
    /// no file (dpl warns and goes on).
    fn files(&self, ctx: &DeployContext, missing: &mut Vec<String>) -> Result<Vec<PathBuf>, Error> {
        let build = ctx.build_dir(NAME)?;
        let mut out: Vec<PathBuf> = Vec::new();
        for entry in &self.files {
            let found = if self.file_glob {
                build.glob(NAME, "file", entry)?
            } else {
                let path = build.resolve(NAME, "file", entry)?;
                if path.is_file() {
                    vec![path]
                } else {
                    Vec::new()
                }
            };
            if found.is_empty() {
                missing.push(entry.clone());
            }
            for f in found {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// The release's fields for GitHub, with `draft` and the notes read by [`Releases::body`].
    fn fields(&self, ctx: &DeployContext, tag: &str, draft: bool, body: Option<&str>) -> Value {
        let mut m = Map::new();
        if self.release_number.is_none() {
            m.insert("tag_name".into(), json!(tag));
        }
        let commitish = self.target_commitish.clone().or_else(|| {
            // dpl points a new tag at the commit built, for the built repository only.
            (self.repo.eq_ignore_ascii_case(&ctx.repo) && !ctx.commit.is_empty())
                .then(|| ctx.commit.clone())
        });
        if let Some(c) = commitish {
            m.insert("target_commitish".into(), json!(c));
        }
        if let Some(n) = &self.name {
            m.insert("name".into(), json!(n));
        }
        if let Some(body) = body {
            m.insert("body".into(), json!(body));
        }
        if let Some(p) = self.prerelease {
            m.insert("prerelease".into(), json!(p));
        }
        m.insert("draft".into(), json!(draft));
        Value::Object(m)
    }

    fn body(&self, ctx: &DeployContext) -> Result<Option<String>, Error> {
        match &self.notes {
            None => Ok(None),
            Some(Notes::Text(t)) => Ok(Some(t.clone())),
            Some(Notes::File(f)) => {
                let path = ctx.input(NAME, "release_notes_file", f)?;
                std::fs::read_to_string(&path)
                    .map(Some)
                    .map_err(|e| Error::File {
                        provider: NAME,
                        path,
                        message: format!("release_notes_file: {e}"),
                    })
            }
        }
    }

    fn releases_path(&self) -> String {
        format!("/repos/{}/releases", repo_path(&self.repo))
    }

    /// The release to upload to: `release_number`'s, or the tag's (created as a draft when
    /// missing).
    async fn release(
        &self,
        api: &Api,
        ctx: &DeployContext,
        tag: &str,
        body: Option<&str>,
        log: &dyn DeployLog,
    ) -> Result<Value, Error> {
        if let Some(n) = self.release_number {
            let path = format!("{}/{n}", self.releases_path());
            return api.find(&path).await?.ok_or_else(|| {
                option_error(
                    NAME,
                    "release_number",
                    format!("{} has no release {n}", self.repo),
                )
            });
        }
        let all = api.list(&self.releases_path()).await?;
        if let Some(r) = all.into_iter().find(|r| r["tag_name"] == tag) {
            log.line(&format!(
                "releases: the release of {tag} exists (id {})",
                r["id"]
            ));
            return Ok(r);
        }
        log.line(&format!("releases: creating a draft release for {tag}"));
        let fields = self.fields(ctx, tag, true, body);
        api.json("POST", &self.releases_path(), Some(&fields)).await
    }
}

/// The MIME type of an asset, from its name.
fn asset_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    let ends = |s: &str| lower.ends_with(s);
    if ends(".tar.gz") || ends(".tgz") || ends(".gz") {
        "application/gzip"
    } else if ends(".tar") {
        "application/x-tar"
    } else if ends(".xz") {
        "application/x-xz"
    } else if ends(".bz2") {
        "application/x-bzip2"
    } else if ends(".deb") {
        "application/vnd.debian.binary-package"
    } else if ends(".rpm") {
        "application/x-rpm"
    } else if ends(".exe") || ends(".msi") || ends(".dll") {
        "application/x-msdownload"
    } else if ends(".sha256") || ends(".sha") || ends(".md5") || ends(".asc") || ends(".sig") {
        "text/plain"
    } else {
        crate::s3::content_type(name)
    }
}

/// The asset name of a file: its base name, as dpl names it.
fn asset_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The upload URL of a release, without its `{?name,label}` template.
fn upload_base(release: &Value) -> Option<String> {
    let url = release["upload_url"].as_str()?;
    Some(url.split('{').next().unwrap_or(url).to_owned())
}

#[async_trait]
impl Deployer for Releases {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        self.auth.describe(ctx, &self.repo)
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let base = format!("{}{}", github::api_base(ctx), self.releases_path());
        let tag = match (self.tag(ctx), self.release_number) {
            (_, Some(_)) => String::new(),
            (Some(t), None) => t,
            (None, None) => {
                return vec![ApiCall::new("github", format!("POST {base}")).note(
                    "nothing: this build is not for a tag (deploy on tags, or give tag_name)",
                )];
            }
        };
        let body = match self.body(ctx) {
            Ok(b) => b,
            Err(e @ Error::OutsideBuildDir { .. }) => {
                return vec![
                    ApiCall::new("github", format!("POST {base}"))
                        .note(format!("nothing: {}", e.one_line())),
                ];
            }
            Err(_) => match &self.notes {
                Some(Notes::File(f)) => Some(format!("(from {f})")),
                _ => None,
            },
        };
        let mut calls = Vec::new();
        match self.release_number {
            Some(n) => calls.push(ApiCall::new("github", format!("GET {base}/{n}"))),
            None => {
                calls.push(
                    ApiCall::new("github", format!("GET {base}"))
                        .param("tag_name", &tag)
                        .note("find the release of the tag, drafts included"),
                );
                let mut create = ApiCall::new("github", format!("POST {base}"));
                if let Value::Object(fields) = self.fields(ctx, &tag, true, body.as_deref()) {
                    for (k, v) in fields {
                        create = create.param(&k, shown(&k, &v));
                    }
                }
                calls.push(create.note("only when the tag has no release yet"));
            }
        }
        let mut missing = Vec::new();
        match self.files(ctx, &mut missing) {
            Ok(files) => {
                for f in &files {
                    let name = asset_name(f);
                    let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                    let mut call = ApiCall::new("github", "POST {upload_url}/assets")
                        .param("name", &name)
                        .param("Content-Type", asset_type(&name))
                        .param("size", size.to_string());
                    call = if self.overwrite {
                        call.note("an asset of that name is deleted first (overwrite: true)")
                    } else {
                        call.note("skipped when the release has an asset of that name")
                    };
                    calls.push(call);
                }
                for m in missing {
                    calls.push(
                        ApiCall::new("github", "POST {upload_url}/assets")
                            .param("file", &m)
                            .note("no such file yet: uploaded if the job makes it"),
                    );
                }
            }
            Err(e) => calls.push(
                ApiCall::new("github", "POST {upload_url}/assets")
                    .note(format!("nothing: {}", e.one_line())),
            ),
        }
        let mut update = ApiCall::new("github", format!("PATCH {base}/{{id}}"));
        if let Value::Object(fields) = self.fields(ctx, &tag, self.draft, body.as_deref()) {
            for (k, v) in fields {
                update = update.param(&k, shown(&k, &v));
            }
        }
        calls.push(update);
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let tag = match self.release_number {
            Some(_) => self.tag(ctx).unwrap_or_default(),
            None => self.require_tag(ctx)?,
        };
        let body = self.body(ctx)?;
        let mut missing = Vec::new();
        let files = self.files(ctx, &mut missing)?;
        for m in &missing {
            log.line(&format!("releases: no file matches {m}; skipping it"));
        }
        let credential = self.auth.resolve(ctx, &self.repo).await?;
        github::log_source(NAME, &credential, log);
        let api = Api::new(NAME, ctx, &credential)?;
        let release = self.release(&api, ctx, &tag, body.as_deref(), log).await?;
        let id = release["id"].as_u64().ok_or_else(|| Error::Failed {
            provider: NAME,
            message: format!("GitHub answered a release without an id: {release}"),
        })?;
        let upload = upload_base(&release).ok_or_else(|| Error::Failed {
            provider: NAME,
            message: format!("release {id} has no upload_url"),
        })?;
        let assets = api
            .list(&format!("{}/{id}/assets", self.releases_path()))
            .await?;
        let mut uploaded = 0;
        for file in &files {
            let name = asset_name(file);
            if let Some(existing) = assets.iter().find(|a| a["name"] == name.as_str()) {
                if !self.overwrite {
                    log.line(&format!(
                        "releases: {name} is already an asset of the release; skipping it (overwrite: true replaces it)"
                    ));
                    continue;
                }
                log.line(&format!("releases: replacing the asset {name}"));
                api.delete(&format!(
                    "/repos/{}/releases/assets/{}",
                    repo_path(&self.repo),
                    existing["id"]
                ))
                .await?;
            }
            let bytes = std::fs::read(file).map_err(|e| Error::File {
                provider: NAME,
                path: file.clone(),
                message: e.to_string(),
            })?;
            log.line(&format!(
                "releases: uploading {name} ({} bytes)",
                bytes.len()
            ));
            let query = percent_encoding::utf8_percent_encode(&name, github::PATH);
            api.upload(&format!("{upload}?name={query}"), asset_type(&name), bytes)
                .await?;
            uploaded += 1;
        }
        let fields = self.fields(ctx, &tag, self.draft, body.as_deref());
        let updated = api
            .json(
                "PATCH",
                &format!("{}/{id}", self.releases_path()),
                Some(&fields),
            )
            .await?;
        let url = updated["html_url"].as_str().unwrap_or_default();
        Ok(format!(
            "release {} of {}{}: {uploaded} asset(s) uploaded{}",
            updated["tag_name"].as_str().unwrap_or(&tag),
            self.repo,
            if self.draft { " (draft)" } else { "" },
            if url.is_empty() {
                String::new()
            } else {
                format!(", {url}")
            }
        ))
    }
}

/// A field's value as a dry run shows it (the notes by length only).
fn shown(key: &str, v: &Value) -> String {
    match (key, v) {
        ("body", Value::String(s)) => format!("({} characters)", s.chars().count()),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}
