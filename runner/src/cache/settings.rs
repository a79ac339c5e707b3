//! The `[cache]` table: where a server's or worker's runner keeps caches.

use std::sync::Arc;

use serde::Deserialize;

use super::s3::S3Store;
use super::{Archives, CacheBackend, CacheError};

/// Which backend keeps caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Docker volumes on this machine (the default; nothing to set up).
    #[default]
    Volumes,
    /// Archives in an S3-compatible bucket shared by every machine.
    S3,
}

/// `[cache]`: the backend and, for `s3`, the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "snake_case")]
pub struct CacheSettings {
    /// `volumes` or `s3`.
    pub backend: BackendKind,
    /// The bucket (`s3`).
    pub bucket: Option<String>,
    /// Prepended to every object key, e.g. `slipway/caches/`.
    pub prefix: String,
    /// The bucket's region; unset, the SDK's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// The store's address (MinIO, Ceph, …); unset, the SDK's `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`, else the region's own endpoint.
    pub endpoint: Option<String>,
    /// The largest cache in MiB, uncompressed: a larger one is not saved (and an archive that
    /// unpacks larger is not restored). The runner holds one job's archive in memory at a time.
    pub max_size_mib: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            backend: BackendKind::Volumes,
            bucket: None,
            prefix: String::new(),
            region: None,
            endpoint: None,
            max_size_mib: 1024,
        }
    }
}

impl CacheSettings {
    /// The backend these settings name; for `s3`, connected and its bucket checked.
    pub async fn connect(&self) -> Result<CacheBackend, CacheError> {
        if self.backend == BackendKind::Volumes {
            return Ok(CacheBackend::Volumes);
        }
        let bucket = self
            .bucket
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| CacheError::Settings("backend = \"s3\" needs a bucket".into()))?;
        let sdk = S3Store::sdk_config(self.region.as_deref()).await;
        let store = S3Store::new(&sdk, bucket, self.endpoint.as_deref())?;
        store.check().await?;
        Ok(self.archives(Arc::new(store)))
    }

    /// The archive backend over `store` with these settings' prefix and limit.
    pub fn archives(&self, store: Arc<dyn super::ObjectStore>) -> CacheBackend {
        CacheBackend::Archives(Archives {
            store,
            prefix: self.prefix.clone(),
            max_bytes: self.max_size_mib.saturating_mul(1 << 20),
        })
    }
}
