//! `provider: s3`: upload a directory of the build to a bucket (dpl's S3 options).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    IndexDocument, ObjectCannedAcl, ServerSideEncryption, StorageClass, WebsiteConfiguration,
};
use futures::StreamExt;

use crate::Deployer;
use crate::aws::{AwsAuth, api_error, canned_acl};
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error};
use crate::options::Options;
use slipway_runner::DeployLog;

const NAME: &str = "s3";

/// Every option the s3 provider takes.
pub const OPTIONS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "region",
    "endpoint",
    "bucket",
    "local_dir",
    "upload_dir",
    "glob",
    "dot_match",
    "acl",
    "detect_encoding",
    "cache_control",
    "expires",
    "storage_class",
    "server_side_encryption",
    "index_document_suffix",
    "default_text_charset",
    "force_path_style",
    "max_threads",
    "overwrite",
    "verbose",
];

/// Typed s3 options.
#[derive(Debug)]
pub struct S3 {
    auth: AwsAuth,
    bucket: String,
    local_dir: String,
    upload_dir: Option<String>,
    glob: globset::GlobMatcher,
    glob_text: String,
    dot_match: bool,
    acl: Option<String>,
    detect_encoding: bool,
    cache_control: Vec<(String, Option<globset::GlobMatcher>)>,
    expires: Option<String>,
    storage_class: Option<String>,
    server_side_encryption: bool,
    index_document_suffix: Option<String>,
    default_text_charset: Option<String>,
    force_path_style: bool,
    max_threads: usize,
    overwrite: bool,
}

fn glob(option: &str, pattern: &str) -> Result<globset::GlobMatcher, Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| option_error(NAME, option, format!("bad glob `{pattern}`: {e}")))
}

impl S3 {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let auth = AwsAuth::read(&mut o)?;
        let bucket = o.required(&["bucket"])?;
        let local_dir = o.string(&["local_dir"])?.unwrap_or_else(|| ".".into());
        let upload_dir = o
            .string(&["upload_dir"])?
            .map(|d| d.trim_matches('/').to_owned())
            .filter(|d| !d.is_empty());
        let glob_text = o.string(&["glob"])?.unwrap_or_else(|| "**/*".into());
        let matcher = glob("glob", &glob_text)?;
        let dot_match = o.bool(&["dot_match"])?.unwrap_or(false);
        let acl = match o.string(&["acl"])? {
            None => None,
            Some(a) => {
                let Some(canned) = canned_acl(&a) else {
                    return Err(option_error(
                        NAME,
                        "acl",
                        format!(
                            "`{a}` is not one of private, public_read, public_read_write, authenticated_read, bucket_owner_read, bucket_owner_full_control"
                        ),
                    ));
                };
                Some(canned)
            }
        };
        let detect_encoding = o.bool(&["detect_encoding"])?.unwrap_or(false);
        let mut cache_control = Vec::new();
        for entry in o.strings(&["cache_control"])? {
            match entry.split_once(": ") {
                Some((value, pattern)) => {
                    cache_control.push((value.to_owned(), Some(glob("cache_control", pattern)?)));
                }
                None => cache_control.push((entry, None)),
            }
        }
        let expires = o.string(&["expires"])?;
        let storage_class = o.string(&["storage_class"])?;
        let server_side_encryption = o.bool(&["server_side_encryption"])?.unwrap_or(false);
        let index_document_suffix = o.string(&["index_document_suffix"])?;
        let default_text_charset = o.string(&["default_text_charset"])?;
        let force_path_style = o.bool(&["force_path_style"])?.unwrap_or(false);
        let max_threads = o.u64(&["max_threads"])?.unwrap_or(5).clamp(1, 32) as usize;
        let overwrite = o.bool(&["overwrite"])?.unwrap_or(true);
        o.bool(&["verbose"])?;
        o.finish(OPTIONS)?;
        Ok(S3 {
            auth,
            bucket,
            local_dir,
            upload_dir,
            glob: matcher,
            glob_text,
            dot_match,
            acl,
            detect_encoding,
            cache_control,
            expires,
            storage_class,
            server_side_encryption,
            index_document_suffix,
            default_text_charset,
            force_path_style,
            max_threads,
            overwrite,
        })
    }

    /// `local_dir` inside the build dir, symlinks followed.
    fn root(&self, ctx: &DeployContext) -> Result<PathBuf, Error> {
        ctx.input(NAME, "local_dir", &self.local_dir)
    }

    /// The files to upload, relative to `local_dir`, sorted. Only regular files: a symlink is
    /// neither followed nor uploaded, so nothing outside the build dir is read.
    fn files(&self, ctx: &DeployContext) -> Result<Vec<String>, Error> {
        let root = self.root(ctx)?;
        if !root.is_dir() {
            return Err(Error::File {
                provider: NAME,
                path: root,
                message: "local_dir is not a directory".into(),
            });
        }
        let mut out = Vec::new();
        let walk = ignore::WalkBuilder::new(&root)
            .standard_filters(false)
            .hidden(!self.dot_match)
            .build();
        for entry in walk {
            let entry = entry.map_err(|e| Error::File {
                provider: NAME,
                path: root.clone(),
                message: e.to_string(),
            })?;
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let rel = relative(&root, entry.path());
            if self.glob.is_match(&rel) {
                out.push(rel);
            }
        }
        out.sort();
        Ok(out)
    }

    fn key(&self, rel: &str) -> String {
        match &self.upload_dir {
            Some(dir) => format!("{dir}/{rel}"),
            None => rel.to_owned(),
        }
    }

    fn content_type(&self, rel: &str) -> String {
        let ty = content_type(rel);
        match &self.default_text_charset {
            Some(cs)
                if ty.starts_with("text/")
                    || ty.ends_with("javascript")
                    || ty.ends_with("json") =>
            {
                format!("{ty}; charset={cs}")
            }
            _ => ty.to_owned(),
        }
    }

    fn cache_control_for(&self, rel: &str) -> Option<&str> {
        self.cache_control
            .iter()
            .find(|(_, g)| g.as_ref().is_none_or(|g| g.is_match(rel)))
            .map(|(v, _)| v.as_str())
    }

    /// `Content-Encoding` for a file when `detect_encoding` is on and the file is compressed.
    fn content_encoding(&self, root: &Path, rel: &str) -> Option<&'static str> {
        if !self.detect_encoding {
            return None;
        }
        compression(&root.join(rel))
    }

    fn put_call(&self, root: &Path, rel: &str) -> ApiCall {
        let mut call = ApiCall::new(NAME, "PutObject")
            .param("Bucket", &self.bucket)
            .param("Key", self.key(rel))
            .param("ContentType", self.content_type(rel));
        if let Some(encoding) = self.content_encoding(root, rel) {
            call = call.param("ContentEncoding", encoding);
        }
        if let Some(acl) = &self.acl {
            call = call.param("ACL", acl);
        }
        if let Some(cc) = self.cache_control_for(rel) {
            call = call.param("CacheControl", cc);
        }
        if let Some(e) = &self.expires {
            call = call.param("Expires", e);
        }
        if let Some(sc) = &self.storage_class {
            call = call.param("StorageClass", sc);
        }
        if self.server_side_encryption {
            call = call.param("ServerSideEncryption", "AES256");
        }
        call
    }

    async fn client(&self, ctx: &DeployContext) -> Result<aws_sdk_s3::Client, Error> {
        client(NAME, &self.auth, ctx, self.force_path_style).await
    }
}

/// An S3 client for `auth`, pointed at the endpoint override when there is one.
pub(crate) async fn client(
    provider: &'static str,
    auth: &AwsAuth,
    ctx: &DeployContext,
    force_path_style: bool,
) -> Result<aws_sdk_s3::Client, Error> {
    let conf = auth.sdk_config(provider, ctx).await?;
    let mut b = aws_sdk_s3::config::Builder::from(&conf).force_path_style(force_path_style);
    if let Some(ep) = auth.endpoint_or(ctx.endpoints.s3.as_ref()) {
        b = b.endpoint_url(ep).force_path_style(true);
    }
    Ok(aws_sdk_s3::Client::from_conf(b.build()))
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// How a file is compressed, from its first bytes, as dpl's `detect_encoding` tells it from
/// `file`'s answer: gzip (`1f 8b`) or Unix compress (`1f 9d`).
fn compression(path: &Path) -> Option<&'static str> {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .ok()?;
    match magic {
        [0x1f, 0x8b] => Some("gzip"),
        [0x1f, 0x9d] => Some("compress"),
        _ => None,
    }
}

/// The MIME type S3 should serve a file with, from its extension.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("js" | "mjs") => "application/javascript",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

#[async_trait]
impl Deployer for S3 {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        self.auth.describe(ctx)
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls =
            vec![ApiCall::new("aws", "Credentials").param("source", self.auth.describe(ctx))];
        if !self.overwrite {
            calls.push(
                ApiCall::new(NAME, "HeadObject")
                    .param("Bucket", &self.bucket)
                    .note("for each file; existing keys are skipped (overwrite: false)"),
            );
        }
        match self.files(ctx).and_then(|f| Ok((f, self.root(ctx)?))) {
            Ok((files, root)) => calls.extend(files.iter().map(|f| self.put_call(&root, f))),
            Err(e @ Error::OutsideBuildDir { .. }) => calls.push(
                ApiCall::new(NAME, "PutObject")
                    .param("Bucket", &self.bucket)
                    .note(format!("nothing: {}", e.one_line())),
            ),
            Err(_) => calls.push(
                ApiCall::new(NAME, "PutObject")
                    .param("Bucket", &self.bucket)
                    .param("Key", self.key(&self.glob_text))
                    .note(format!(
                        "for each file of {} matching the glob",
                        self.local_dir
                    )),
            ),
        }
        if let Some(suffix) = &self.index_document_suffix {
            calls.push(
                ApiCall::new(NAME, "PutBucketWebsite")
                    .param("Bucket", &self.bucket)
                    .param("IndexDocument.Suffix", suffix),
            );
        }
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let files = self.files(ctx)?;
        log.line(&format!("s3: credentials from {}", self.auth.describe(ctx)));
        let client = self.client(ctx).await?;
        log.line(&format!(
            "s3: uploading {} file(s) from {} to s3://{}/{}",
            files.len(),
            self.local_dir,
            self.bucket,
            self.upload_dir.as_deref().unwrap_or("")
        ));
        let root = self.root(ctx)?;
        let results: Vec<Result<Option<String>, Error>> = futures::stream::iter(files)
            .map(|rel: String| {
                let client = client.clone();
                let root = root.clone();
                async move { self.upload(&client, &root, &rel).await }
            })
            .buffer_unordered(self.max_threads)
            .collect()
            .await;
        let mut uploaded = 0;
        for r in results {
            if let Some(line) = r? {
                log.line(&line);
                uploaded += 1;
            }
        }
        if let Some(suffix) = &self.index_document_suffix {
            client
                .put_bucket_website()
                .bucket(&self.bucket)
                .website_configuration(
                    WebsiteConfiguration::builder()
                        .index_document(IndexDocument::builder().suffix(suffix).build().map_err(
                            |e| option_error(NAME, "index_document_suffix", e.to_string()),
                        )?)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| api_error(NAME, "PutBucketWebsite", &e))?;
            log.line(&format!("s3: index document suffix set to {suffix}"));
        }
        Ok(format!(
            "uploaded {uploaded} file(s) to s3://{}",
            self.bucket
        ))
    }
}

impl S3 {
    async fn upload(
        &self,
        client: &aws_sdk_s3::Client,
        root: &Path,
        rel: &str,
    ) -> Result<Option<String>, Error> {
        let key = self.key(rel);
        if !self.overwrite {
            let head = client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await;
            if head.is_ok() {
                return Ok(None);
            }
        }
        let path = root.join(rel);
        let body = ByteStream::from_path(&path)
            .await
            .map_err(|e| Error::File {
                provider: NAME,
                path: path.clone(),
                message: e.to_string(),
            })?;
        let mut put = client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(self.content_type(rel))
            .set_content_encoding(self.content_encoding(root, rel).map(str::to_owned))
            .body(body);
        if let Some(acl) = &self.acl {
            put = put.acl(ObjectCannedAcl::from(acl.as_str()));
        }
        if let Some(cc) = self.cache_control_for(rel) {
            put = put.cache_control(cc);
        }
        if let Some(e) = &self.expires {
            put = put.expires(
                aws_sdk_s3::primitives::DateTime::from_str(
                    e,
                    aws_sdk_s3::primitives::DateTimeFormat::HttpDate,
                )
                .or_else(|_| {
                    aws_sdk_s3::primitives::DateTime::from_str(
                        e,
                        aws_sdk_s3::primitives::DateTimeFormat::DateTime,
                    )
                })
                .map_err(|_| {
                    option_error(
                        NAME,
                        "expires",
                        format!("`{e}` is not an HTTP or ISO 8601 date"),
                    )
                })?,
            );
        }
        if let Some(sc) = &self.storage_class {
            put = put.storage_class(StorageClass::from(sc.as_str()));
        }
        if self.server_side_encryption {
            put = put.server_side_encryption(ServerSideEncryption::Aes256);
        }
        put.send()
            .await
            .map_err(|e| api_error(NAME, &format!("PutObject s3://{}/{key}", self.bucket), &e))?;
        Ok(Some(format!(
            "s3: uploaded {rel} → s3://{}/{key}",
            self.bucket
        )))
    }
}
