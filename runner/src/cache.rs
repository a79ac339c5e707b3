//! Build caches: which directories a job keeps, and where they are kept.
//!
//! A cache belongs to a repository, an owner (a branch, or one pull request: see
//! [`crate::scope`] for who may read and write which) and a job key (image, plain `env:` values
//! and the cached directories). A build without a cache of its own starts from the first of its
//! scope's fallbacks that has one, read-only, and saves only into its own. The job script
//! restores before `before_install` and saves after `script` and `before_cache`; a cache failure
//! is logged and never changes the job's result.
//!
//! Where caches live is the [`CacheBackend`]: Docker volumes of one machine (labelled
//! `dev.slipway.cache=true`, never swept, mounted into the job), or archives in an object store
//! shared by every machine ([`s3`]), which the runner moves in and out of the job over the
//! executor's streams so that the job never holds the store's credentials ([`transfer`]).

pub mod archive;
pub mod s3;
pub mod settings;
pub(crate) mod transfer;

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use slipway_pipelines::plan::{EnvValue, Job};

use crate::scope::Owner;

pub use settings::{BackendKind, CacheSettings};

/// Where a runner keeps caches between builds.
#[derive(Clone, Default)]
pub enum CacheBackend {
    /// Volumes of the executor's engine, mounted into the job: one machine's caches.
    #[default]
    Volumes,
    /// Compressed archives in an object store, restored and saved by the runner: caches shared
    /// by every runner that reaches the store.
    Archives(Archives),
}

impl CacheBackend {
    /// The archive store, when caches are archives.
    pub fn archives(&self) -> Option<&Archives> {
        match self {
            CacheBackend::Volumes => None,
            CacheBackend::Archives(a) => Some(a),
        }
    }
}

impl std::fmt::Debug for CacheBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheBackend::Volumes => f.write_str("Volumes"),
            CacheBackend::Archives(a) => f
                .debug_struct("Archives")
                .field("prefix", &a.prefix)
                .field("max_bytes", &a.max_bytes)
                .finish_non_exhaustive(),
        }
    }
}

/// Caches kept as one archive per (repository, owner, job key) in an [`ObjectStore`].
#[derive(Clone)]
pub struct Archives {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Prepended to every object key (the operator's, never a build's).
    pub prefix: String,
    /// The largest cache, uncompressed and compressed: a larger one is neither saved nor
    /// restored. The runner holds one archive of a job in memory at a time.
    pub max_bytes: u64,
}

impl Archives {
    /// The object holding `repo`'s cache of `owner` for job key `key`: hashes only, so no
    /// branch, repository or pull request name can steer it to another object or outside the
    /// prefix.
    pub fn key(&self, repo: &str, owner: &Owner, key: &str) -> String {
        archive_key(&self.prefix, repo, owner, key)
    }
}

/// See [`Archives::key`].
pub fn archive_key(prefix: &str, repo: &str, owner: &Owner, key: &str) -> String {
    let repo_hash = Sha256::digest(repo.as_bytes());
    format!(
        "{prefix}{}/{}.tar.gz",
        hex::encode(&repo_hash[..16]),
        hex::encode(&cache_digest(repo, owner, key)[..16])
    )
}

/// What tells one cache from every other: the repository, the owner and the job key, NUL
/// between them so that no two triples hash alike.
fn cache_digest(repo: &str, owner: &Owner, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(repo.as_bytes());
    h.update([0]);
    h.update(owner.key().as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.finalize().into()
}

/// An object store holding cache archives (S3 and compatible stores in [`s3`]).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The size of object `key`, or `None` when there is none.
    async fn size(&self, key: &str) -> Result<Option<u64>, CacheError>;
    /// The bytes of object `key`; [`CacheError::TooLarge`] rather than reading more than `max`.
    async fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, CacheError>;
    /// Stores `body` as object `key`, replacing any earlier one.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), CacheError>;
}

/// Why a cache could not be restored or saved (logged; the job goes on).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The store refused or could not be reached.
    #[error("{action}: {reason}")]
    Store {
        /// What was being done.
        action: String,
        /// The store's answer.
        reason: String,
    },
    /// The cache is larger than the configured limit.
    #[error("it is larger than the limit of {}", human_bytes(*max))]
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// The archive cannot be read, or holds something a cache may not.
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
    /// The settings cannot work.
    #[error("[cache]: {0}")]
    Settings(String),
}

/// `n` bytes for people: `512 KiB`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    // Shown rounded: precision beyond 2^53 bytes does not matter.
    let f = n as f64;
    if n < 1 << 10 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", f / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.1} MiB", f / f64::from(1u32 << 20))
    } else {
        format!("{:.1} GiB", f / f64::from(1u32 << 30))
    }
}

/// Directories each language cache keeps (Travis's `cache: npm` etc.).
pub const LANGUAGE_DIRS: &[(&str, &[&str])] = &[
    ("npm", &["$HOME/.npm"]),
    ("yarn", &["$HOME/.cache/yarn"]),
    ("pip", &["$HOME/.cache/pip"]),
    ("bundler", &["vendor/bundle"]),
    ("cargo", &["$HOME/.cargo/registry", "target"]),
    ("ccache", &["$HOME/.ccache"]),
    ("go", &["$HOME/go/pkg/mod", "$HOME/.cache/go-build"]),
    ("gradle", &["$HOME/.gradle/caches", "$HOME/.gradle/wrapper"]),
    ("maven", &["$HOME/.m2"]),
    ("composer", &["$HOME/.composer/cache"]),
];

/// Every directory the job caches, in order, without duplicates.
pub fn directories(job: &Job) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    let lang = job.cache.languages.iter().flat_map(|l| {
        LANGUAGE_DIRS
            .iter()
            .filter(move |(name, _)| name == l)
            .flat_map(|(_, d)| d.iter().map(|s| s.to_string()))
    });
    for d in job.cache.directories.iter().cloned().chain(lang) {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// The job key: what makes two jobs' caches interchangeable.
pub fn job_key(job: &Job) -> String {
    let mut h = Sha256::new();
    h.update(job.image.name.as_bytes());
    for v in &job.env {
        if let EnvValue::Plain(value) = &v.value {
            h.update([0]);
            h.update(v.name.as_bytes());
            h.update([b'=']);
            h.update(value.as_bytes());
        }
    }
    for d in directories(job) {
        h.update([1]);
        h.update(d.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// The cache volume for `repo`, an owner and a job key.
pub fn volume_name(repo: &str, owner: &Owner, key: &str) -> String {
    format!(
        "slipway-cache-{}",
        hex::encode(&cache_digest(repo, owner, key)[..10])
    )
}
