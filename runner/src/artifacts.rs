//! `addons.artifacts`: files of the job uploaded to S3 after `after_script`, as Travis's
//! `artifacts` tool did.
//!
//! Travis turned the addon's options into `ARTIFACTS_*` variables and ran its uploader in the
//! job, which read them (and the `AWS_*` fallbacks) from the environment; repository settings
//! could supply any of them. Slipway does the same in two halves: the job exports the variables
//! (secure options decrypted, shown as `[secure]`), dumps its environment owner-only and asks the
//! runner, which reads the listed paths out of the container and hands them to an
//! [`ArtifactsHook`] (S3 through the official SDK, in `slipway-providers`). Uploads happen only
//! for pushes (never pull requests) and, with `branch:`, only for that branch; a failed upload is
//! logged and never changes the job's result.

use async_trait::async_trait;
use serde_json::Value;
use slipway_secrets::Secret;

use crate::runner::DeployLog;
use crate::script::ScriptEnv;

/// Where the job writes its environment for the upload (owner-only, removed right after).
pub const ENV_PATH: &str = "/slipway/artifacts-env";

/// Where and how to upload, read from the job's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactOptions {
    /// `ARTIFACTS_BUCKET` (or `ARTIFACTS_S3_BUCKET`).
    pub bucket: String,
    /// The access key id (`ARTIFACTS_KEY`, `ARTIFACTS_AWS_ACCESS_KEY`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_ACCESS_KEY`); `None` uses the uploader's default credentials.
    pub key: Option<Secret<String>>,
    /// The secret key (`ARTIFACTS_SECRET`, `ARTIFACTS_AWS_SECRET_KEY`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SECRET_KEY`).
    pub secret: Option<Secret<String>>,
    /// `ARTIFACTS_REGION` (or `ARTIFACTS_S3_REGION`); default `us-east-1`.
    pub region: String,
    /// `ARTIFACTS_ENDPOINT`: an S3-compatible endpoint instead of AWS's.
    pub endpoint: Option<String>,
    /// Key prefixes, each file is uploaded under every one (`ARTIFACTS_TARGET_PATHS`, `:`
    /// separated); default `artifacts/BUILD_NUMBER/JOB_NUMBER`.
    pub target_paths: Vec<String>,
    /// The canned ACL (`ARTIFACTS_PERMISSIONS`); default `private`.
    pub permissions: String,
    /// `Cache-Control` of each object (`ARTIFACTS_CACHE_CONTROL`); default `private`.
    pub cache_control: String,
    /// The paths to upload, relative to the build dir or absolute (`ARTIFACTS_PATHS`).
    pub paths: Vec<String>,
}

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    /// Its path relative to the build dir (for absolute paths: without the leading `/`); the
    /// object key is `TARGET/` followed by it.
    pub path: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// Everything an uploader gets.
pub struct ArtifactsRequest<'a> {
    /// The repository built (`owner/name`): on a server, whose credentials may be used.
    pub repo: &'a str,
    /// Where to.
    pub options: ArtifactOptions,
    /// What.
    pub files: Vec<ArtifactFile>,
    /// The job's log, for progress.
    pub log: &'a dyn DeployLog,
}

/// Why artifacts were not uploaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    /// Neither the options nor the repository's settings name a bucket.
    #[error(
        "no bucket: set addons.artifacts.bucket (or ARTIFACTS_BUCKET in the repository settings)"
    )]
    NoBucket,
    /// The archive the engine returned for a path could not be read.
    #[error(transparent)]
    Archive(#[from] std::io::Error),
    /// `permissions` is not a canned ACL.
    #[error("permissions `{given}` is not one of {known}")]
    Permissions {
        /// The permissions asked for.
        given: String,
        /// The canned ACLs, comma-separated.
        known: String,
    },
    /// A server has no credentials for the repository, and never uses its own.
    #[error(
        "no AWS credentials are configured for the repository {repo}: give key and secret (secure) in addons.artifacts, or configure [repos.deploy] for it on the server; the server's own credentials are never used"
    )]
    NoCredentials {
        /// The repository built.
        repo: String,
    },
    /// The storage refused an object.
    #[error(transparent)]
    Upload(Box<dyn std::error::Error + Send + Sync>),
}

/// Uploads artifacts; `slipway-providers` implements it for S3.
#[async_trait]
pub trait ArtifactsHook: Send + Sync {
    /// Uploads every file under every target path; the number of objects written, or why not.
    async fn upload(&self, request: ArtifactsRequest<'_>) -> Result<usize, ArtifactsError>;
}

/// The variable an `addons.artifacts` option becomes, as travis-build named them.
fn variable(option: &str) -> Option<&'static str> {
    Some(match option {
        "bucket" => "ARTIFACTS_BUCKET",
        "endpoint" => "ARTIFACTS_ENDPOINT",
        "key" | "aws_access_key_id" | "aws_access_key" | "access_key_id" | "access_key" => {
            "ARTIFACTS_KEY"
        }
        "secret"
        | "aws_secret_access_key"
        | "aws_secret_key"
        | "secret_access_key"
        | "secret_key" => "ARTIFACTS_SECRET",
        "region" | "s3_region" => "ARTIFACTS_REGION",
        "paths" => "ARTIFACTS_PATHS",
        "target_paths" => "ARTIFACTS_TARGET_PATHS",
        "permissions" => "ARTIFACTS_PERMISSIONS",
        "cache_control" => "ARTIFACTS_CACHE_CONTROL",
        "working_dir" => "ARTIFACTS_WORKING_DIR",
        _ => return None,
    })
}

/// The `export`s the job runs before asking for the upload: each option as its variable, lists
/// joined with `:`; a `secure:` option through `decrypt` (left out when it cannot be, so a
/// repository setting of the same name still applies).
pub fn script_env(
    options: &serde_json::Map<String, Value>,
    decrypt: &dyn Fn(&str) -> Option<Secret<String>>,
) -> Vec<ScriptEnv> {
    let mut out = Vec::new();
    for (option, value) in options {
        let Some(name) = variable(option) else {
            continue;
        };
        let name = name.to_owned();
        match value {
            Value::Object(m) => {
                if let Some(plain) = m.get("secure").and_then(Value::as_str).and_then(decrypt) {
                    out.push(ScriptEnv::Secret { name, value: plain });
                }
            }
            Value::Array(items) => {
                let joined: Vec<String> = items.iter().filter_map(scalar).collect();
                out.push(ScriptEnv::Shell {
                    name,
                    value: crate::script::sh_quote(&joined.join(":")),
                });
            }
            other => {
                if let Some(v) = scalar(other) {
                    // `$VAR` in an option means the variable, as the job's shell reads it.
                    let value = if v.starts_with('$') {
                        format!("\"{v}\"")
                    } else {
                        crate::script::sh_quote(&v)
                    };
                    out.push(ScriptEnv::Shell { name, value });
                }
            }
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The upload's options from the job's environment (the artifacts tool's cascade).
pub fn options_from_env(env: &[(String, String)]) -> Result<ArtifactOptions, ArtifactsError> {
    let get = |names: &[&str]| {
        names.iter().find_map(|n| {
            env.iter()
                .find(|(k, v)| k == n && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_owned())
        })
    };
    let bucket =
        get(&["ARTIFACTS_BUCKET", "ARTIFACTS_S3_BUCKET"]).ok_or(ArtifactsError::NoBucket)?;
    let list = |v: Option<String>| -> Vec<String> {
        v.map(|s| {
            s.split([':', ';'])
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let mut target_paths = list(get(&["ARTIFACTS_TARGET_PATHS"]));
    if target_paths.is_empty() {
        target_paths.push(format!(
            "artifacts/{}/{}",
            get(&["TRAVIS_BUILD_NUMBER"]).unwrap_or_default(),
            get(&["TRAVIS_JOB_NUMBER"]).unwrap_or_default()
        ));
    }
    Ok(ArtifactOptions {
        bucket,
        key: get(&[
            "ARTIFACTS_KEY",
            "ARTIFACTS_AWS_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_ACCESS_KEY",
        ])
        .map(Secret::new),
        secret: get(&[
            "ARTIFACTS_SECRET",
            "ARTIFACTS_AWS_SECRET_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SECRET_KEY",
        ])
        .map(Secret::new),
        region: get(&["ARTIFACTS_REGION", "ARTIFACTS_S3_REGION"])
            .unwrap_or_else(|| "us-east-1".into()),
        endpoint: get(&["ARTIFACTS_ENDPOINT"]),
        target_paths: target_paths
            .into_iter()
            .map(|t| expand(&t, env).trim_matches('/').to_owned())
            .collect(),
        permissions: get(&["ARTIFACTS_PERMISSIONS"]).unwrap_or_else(|| "private".into()),
        cache_control: get(&["ARTIFACTS_CACHE_CONTROL"]).unwrap_or_else(|| "private".into()),
        paths: list(get(&["ARTIFACTS_PATHS"])),
    })
}

/// `$NAME` and `${NAME}` in `text` replaced from `env` (unknown names become empty), as the
/// artifacts tool expanded its target paths.
fn expand(text: &str, env: &[(String, String)]) -> String {
    let value = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.split_once('}') {
                Some((name, tail)) => (name, tail),
                None => ("", after),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(value(name));
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The regular files of the tar the engine returns for `path` (entries are rooted at the path's
/// last component), each named relative to the build dir.
pub fn files_of(path: &str, tar: &[u8]) -> Result<Vec<ArtifactFile>, ArtifactsError> {
    let trimmed = path.trim_end_matches('/');
    let parent = match trimmed.rsplit_once('/') {
        Some((p, _)) => p.trim_start_matches('/'),
        None => "",
    };
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        let rel = if parent.is_empty() {
            name
        } else {
            format!("{parent}/{name}")
        };
        out.push(ArtifactFile {
            path: rel.trim_start_matches("./").to_owned(),
            bytes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_cascade_like_the_artifacts_tool() {
        let o = options_from_env(&env(&[
            ("ARTIFACTS_S3_BUCKET", "b"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("ARTIFACTS_SECRET", "s"),
            ("ARTIFACTS_PATHS", "logs/:out.txt"),
            ("TRAVIS_BUILD_NUMBER", "7"),
            ("TRAVIS_JOB_NUMBER", "7.2"),
        ]))
        .unwrap();
        assert_eq!(o.bucket, "b");
        assert_eq!(o.key.unwrap().expose(), "id");
        assert_eq!(o.region, "us-east-1");
        assert_eq!(o.target_paths, ["artifacts/7/7.2"]);
        assert_eq!(o.paths, ["logs/", "out.txt"]);
        assert_eq!(o.permissions, "private");
        assert!(options_from_env(&env(&[("ARTIFACTS_KEY", "k")])).is_err());
        let o = options_from_env(&env(&[
            ("ARTIFACTS_BUCKET", "b"),
            ("ARTIFACTS_TARGET_PATHS", "ci/$TRAVIS_BRANCH/${N}x:plain"),
            ("TRAVIS_BRANCH", "main"),
            ("N", "7"),
        ]))
        .unwrap();
        assert_eq!(o.target_paths, ["ci/main/7x", "plain"]);
    }

    #[test]
    fn secure_options_are_decrypted_and_lists_joined() {
        let opts = serde_json::json!({
            "bucket": "b", "key": {"secure": "CIPHER"}, "paths": ["a", "b/c"], "debug": true
        });
        let decrypt = |c: &str| (c == "CIPHER").then(|| Secret::new("plain".to_owned()));
        let got = script_env(opts.as_object().unwrap(), &decrypt);
        assert_eq!(
            got,
            [
                ScriptEnv::Shell {
                    name: "ARTIFACTS_BUCKET".into(),
                    value: "'b'".into()
                },
                ScriptEnv::Secret {
                    name: "ARTIFACTS_KEY".into(),
                    value: Secret::new("plain".into())
                },
                ScriptEnv::Shell {
                    name: "ARTIFACTS_PATHS".into(),
                    value: "'a:b/c'".into()
                },
            ]
        );
    }
}
