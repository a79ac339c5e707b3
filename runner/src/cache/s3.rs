//! Cache archives on S3-compatible storage, through the official SDK.
//!
//! The runner's own credentials reach the store: the SDK's usual chain (environment, profile,
//! web identity, instance or pod metadata), never anything of a build's. The endpoint is the
//! operator's (`[cache] endpoint`, or the SDK's `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`); with
//! neither the SDK derives it from the region.

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::{CacheError, ObjectStore};

/// One bucket of an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    /// The SDK's configuration from its usual chain, with `region` when given.
    pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
        Self::loader(region).load().await
    }

    /// The SDK's configuration loader with the HTTPS client every AWS call of Slipway uses
    /// (rustls with ring), and `region` when given.
    pub fn loader(region: Option<&str>) -> aws_config::ConfigLoader {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(slipway_http::aws::client());
        match region {
            Some(region) => loader.region(Region::new(region.to_owned())),
            None => loader,
        }
    }

    /// The store of `bucket` with `sdk`'s credentials and region, at `endpoint` when given
    /// (path-style addressing, as MinIO-like stores expect).
    pub fn new(
        sdk: &SdkConfig,
        bucket: &str,
        endpoint: Option<&str>,
    ) -> Result<S3Store, CacheError> {
        if sdk.region().is_none() {
            return Err(CacheError::Settings(
                "no region: set region, or AWS_REGION for the server".into(),
            ));
        }
        let mut b = aws_sdk_s3::config::Builder::from(sdk);
        if let Some(ep) = endpoint {
            b = b.endpoint_url(ep).force_path_style(true);
        }
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: bucket.to_owned(),
        })
    }

    /// Fails unless the bucket answers: said at start-up rather than in every job's log.
    pub async fn check(&self) -> Result<(), CacheError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err(&format!("reaching bucket {}", self.bucket), &e))
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn size(&self, key: &str) -> Result<Option<u64>, CacheError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(
                o.content_length().unwrap_or(0).try_into().unwrap_or(0),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(store_err("looking the cache up", &e)),
        }
    }

    async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, CacheError> {
        let o = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_err("downloading the cache", &e))?;
        let declared = u64::try_from(o.content_length().unwrap_or(0)).unwrap_or(0);
        if declared > max {
            return Err(CacheError::TooLarge { max });
        }
        let mut body = o.body;
        let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        while let Some(chunk) = body.try_next().await.map_err(|e| CacheError::Store {
            action: "downloading the cache".into(),
            reason: DisplayErrorContext(&e).to_string(),
        })? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(CacheError::TooLarge { max });
            }
        }
        Ok(bytes)
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), CacheError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("uploading the cache", &e))
    }
}

/// One line: the service's code and message, else the transport error.
fn store_err<E, R>(action: &str, err: &SdkError<E, R>) -> CacheError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let reason = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(message)) => message.to_owned(),
        (None, None) => DisplayErrorContext(err).to_string(),
    };
    CacheError::Store {
        action: action.to_owned(),
        reason: reason.replace('\n', " "),
    }
}
