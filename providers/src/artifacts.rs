//! `addons.artifacts` uploads to S3 (the official SDK), for the runner's [`ArtifactsHook`].
//!
//! Each file goes to `TARGET/PATH` for every target path, with the canned ACL of `permissions`
//! and the `Cache-Control` asked for; credentials come from the options (never logged), else the
//! repository's own on a server (`[repos.deploy]`) or the SDK's default chain with `slipway run`. `SLIPWAY_S3_ENDPOINT` (the hook's endpoint overrides) applies when the
//! options name no endpoint, as for the s3 deploy provider.

use async_trait::async_trait;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use slipway_runner::artifacts::{ArtifactOptions, ArtifactsError, ArtifactsHook, ArtifactsRequest};

use crate::ProviderHook;
use crate::aws::{CANNED_ACLS, api_error, canned_acl, sdk_loader, server_credentials};

/// An S3 client with the options' key, else (see [`crate::Credentials`]) the repository's keys
/// configured on the server or, on one's own machine, the SDK's default chain; on a server with
/// neither, an error before anything is sent.
async fn client(
    options: &ArtifactOptions,
    fallback_endpoint: Option<&str>,
    repo: &str,
    fallback: &crate::Credentials,
) -> Result<aws_sdk_s3::Client, ArtifactsError> {
    let mut loader = sdk_loader(&options.region);
    if let (Some(key), Some(secret)) = (&options.key, &options.secret) {
        loader = loader.credentials_provider(Credentials::new(
            key.expose(),
            secret.expose(),
            None,
            None,
            "slipway-artifacts-options",
        ));
    } else if let Some(keys) = fallback.aws() {
        loader = loader.credentials_provider(server_credentials(keys));
    } else if !fallback.ambient() {
        return Err(ArtifactsError::NoCredentials {
            repo: repo.to_owned(),
        });
    }
    let conf = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&conf);
    if let Some(ep) = options.endpoint.as_deref().or(fallback_endpoint) {
        b = b.endpoint_url(ep).force_path_style(true);
    }
    Ok(aws_sdk_s3::Client::from_conf(b.build()))
}

#[async_trait]
impl ArtifactsHook for ProviderHook {
    async fn upload(&self, request: ArtifactsRequest<'_>) -> Result<usize, ArtifactsError> {
        let o = &request.options;
        let Some(acl) = canned_acl(&o.permissions) else {
            return Err(ArtifactsError::Permissions {
                given: o.permissions.clone(),
                known: CANNED_ACLS.join(", "),
            });
        };
        if request.files.is_empty() {
            request.log.line(&format!(
                "addons.artifacts: no files found in {}",
                o.paths.join(", ")
            ));
            return Ok(0);
        }
        let fallback = self.credentials_for(request.repo);
        let s3 = client(o, self.endpoints.s3.as_deref(), request.repo, &fallback).await?;
        let mut written = 0;
        for target in &o.target_paths {
            for file in &request.files {
                let key = if target.is_empty() {
                    file.path.clone()
                } else {
                    format!("{target}/{}", file.path)
                };
                s3.put_object()
                    .bucket(&o.bucket)
                    .key(&key)
                    .acl(ObjectCannedAcl::from(acl.as_str()))
                    .cache_control(&o.cache_control)
                    .content_type(crate::s3::content_type(&file.path))
                    .body(ByteStream::from(file.bytes.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        ArtifactsError::Upload(api_error("artifacts", "PutObject", &e).into())
                    })?;
                request.log.line(&format!(
                    "addons.artifacts: s3://{}/{key} ({} bytes)",
                    o.bucket,
                    file.bytes.len()
                ));
                written += 1;
            }
        }
        Ok(written)
    }
}
