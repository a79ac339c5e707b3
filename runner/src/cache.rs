//! Build caches: which directories a job keeps, and the volume they are kept in.
//!
//! A cache belongs to a repository, an owner (a branch, or one pull request: see
//! [`crate::scope`] for who may read and write which) and a job key (image, plain `env:` values
//! and the cached directories), and lives in a Docker volume labelled `dev.slipway.cache=true`
//! that is never swept. A build without a cache of its own starts from the first of its scope's
//! fallbacks that has one, mounted read-only, and saves only into its own. The job script
//! restores before `before_install` and saves after `script` and `before_cache`; a cache failure
//! is logged and never changes the job's result.

use sha2::{Digest, Sha256};
use slipway_pipelines::plan::{EnvValue, Job};

use crate::scope::Owner;

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
    let mut h = Sha256::new();
    h.update(repo.as_bytes());
    h.update([0]);
    h.update(owner.key().as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    format!("slipway-cache-{}", hex::encode(&h.finalize()[..10]))
}
