//! Building a Dockerfile and pushing its tags, for pipelines that ship images.
//!
//! Deploy providers need to know exactly what was pushed, so [`push`] reports each tag with the
//! registry digest the engine printed. Builds use the classic builder (present on every engine)
//! and remove their intermediate containers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;
use slipway_secrets::Secret;

use crate::docker::split_reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Tags to give the image, e.g. `registry/app:latest` and `registry/app:<commit>`.
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
}

/// Credentials for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry host (`127.0.0.1:5000`, …).
    pub server: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: Secret<String>,
}

/// One pushed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The full reference pushed.
    pub reference: String,
    /// The registry's content digest (`sha256:…`).
    pub digest: Option<String>,
}

/// Why a build or push failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Packing the context failed.
    #[error("packing the build context {dir}: {source}")]
    Context {
        /// The context dir.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The engine reported a build error.
    #[error("building {tag}: {message}")]
    Build {
        /// First tag.
        tag: String,
        /// The error.
        message: String,
    },
    /// The engine reported a push error.
    #[error("pushing {reference}: {message}")]
    Push {
        reference: String,
        /// The error.
        message: String,
    },
}

fn context_tar(dir: &Path) -> Result<Vec<u8>, std::io::Error> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir)?;
    b.into_inner()
}

/// Builds `spec` and tags it; returns the image id. Build output goes to `progress`.
pub async fn build(
    docker: &Docker,
    spec: &BuildSpec,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, ImageError> {
    let first = spec.tags.first().cloned().unwrap_or_default();
    let tar = context_tar(&spec.context).map_err(|source| ImageError::Context {
        dir: spec.context.clone(),
        source,
    })?;
    let args: HashMap<String, String> = spec.build_args.iter().cloned().collect();
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile(&spec.dockerfile)
        .t(&first)
        .rm(true)
        .forcerm(true)
        .buildargs(&args)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
    let mut id = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ImageError::Build {
            tag: first.clone(),
            message: e.to_string(),
        })?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Build {
                tag: first,
                message: err,
            });
        }
        if let Some(s) = info.stream {
            let s = s.trim_end();
            if !s.is_empty() {
                progress(s);
            }
        }
        if let Some(aux) = info.aux
            && let Some(i) = aux.id
        {
            id = Some(i);
        }
    }
    for tag in spec.tags.iter().skip(1) {
        let (repo, t) = split_reference(tag);
        docker
            .tag_image(
                &first,
                Some(TagImageOptionsBuilder::default().repo(repo).tag(t).build()),
            )
            .await
            .map_err(|e| ImageError::Build {
                tag: tag.clone(),
                message: e.to_string(),
            })?;
    }
    match id {
        Some(id) => Ok(id),
        None => docker
            .inspect_image(&first)
            .await
            .map(|i| i.id.unwrap_or_default())
            .map_err(|e| ImageError::Build {
                tag: first,
                message: e.to_string(),
            }),
    }
}

/// Pushes `reference` and reports its digest.
pub async fn push(
    docker: &Docker,
    reference: &str,
    auth: Option<&RegistryAuth>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<PushedImage, ImageError> {
    let (name, tag) = split_reference(reference);
    let creds = auth.map(|a| DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.expose().clone()),
        serveraddress: Some(a.server.clone()),
        ..Default::default()
    });
    let mut stream = docker.push_image(
        name,
        Some(PushImageOptionsBuilder::default().tag(tag).build()),
        creds,
    );
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ImageError::Push {
            reference: reference.into(),
            message: e.to_string(),
        })?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Push {
                reference: reference.into(),
                message: err,
            });
        }
        if let Some(status) = info.status {
            if let Some(at) = status.find("digest: ") {
                digest = status[at + 8..]
                    .split_whitespace()
                    .next()
                    .map(str::to_string);
            }
            if info.progress_detail.is_none_or(|d| d.total.is_none()) {
                progress(&status);
            }
        }
    }
    Ok(PushedImage {
        reference: reference.into(),
        digest,
    })
}
