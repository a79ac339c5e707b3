//! `kubernetes`: which kubeconfig a deploy reads and what it may do. A kubeconfig of the build
//! (the `kubeconfig` option, the job's `KUBECONFIG`) is the build's input like any other: the
//! files it names must be files of the build, and it may not run commands on this machine (exec
//! and auth-provider plugins). The server's kubeconfig for the repository and, with `slipway
//! run`, one's own are the operator's: kube-rs reads them as kubectl would, plugins included.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::Kubeconfig;

use super::Kubernetes;
use super::access::Target;
use crate::context::DeployContext;
use crate::error::Error;
use crate::inputs::BuildDir;
use slipway_runner::DeployLog;

impl Kubernetes {
    /// The kubeconfig and context to connect with, its server replaced by the machine's
    /// `kubernetes` endpoint when one is set.
    pub(super) fn kubeconfig_target(
        &self,
        ctx: &DeployContext,
        path: Option<&str>,
        context: Option<&str>,
        log: &dyn DeployLog,
    ) -> Result<Target, Error> {
        let (path, build) = self.kubeconfig_path(ctx, path)?;
        let bad = |m: String| self.file_err(&path, m);
        let mut kc = match &build {
            Some(_) => {
                let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
                Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?
            }
            None => Kubeconfig::read_from(&path).map_err(|e| bad(e.to_string()))?,
        };
        let ctx_name = context
            .map(str::to_owned)
            .or_else(|| kc.current_context.clone())
            .ok_or_else(|| bad("no context given and no current-context".into()))?;
        let kctx = kc
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .and_then(|c| c.context.clone())
            .ok_or_else(|| bad(format!("no context {ctx_name}")))?;
        let cluster_name = kctx.cluster;
        let user_name = kctx.user.unwrap_or_default();
        let Some(cluster) = kc
            .clusters
            .iter_mut()
            .find(|c| c.name == cluster_name)
            .and_then(|c| c.cluster.as_mut())
        else {
            return Err(bad(format!("no cluster {cluster_name}")));
        };
        if let Some(url) = &ctx.endpoints.kubernetes {
            cluster.server = Some(url.clone());
        }
        let server = cluster
            .server
            .clone()
            .ok_or_else(|| bad(format!("cluster {cluster_name} has no server")))?;
        if let Some(build) = &build {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let files = BuildFiles {
                provider: self.name,
                build,
                dir: &dir,
                kubeconfig: &path,
            };
            files.confine(&mut kc, &cluster_name, &user_name)?;
        }
        log.line(&format!("kubernetes: context {ctx_name}, server {server}"));
        Ok(Target {
            kubeconfig: kc,
            context: ctx_name,
            file: Some(path),
        })
    }

    /// The kubeconfig to read, in this order: the `kubeconfig` option, the job's `KUBECONFIG`
    /// (both files of the build, returned with the build dir that confines the files they
    /// name), the server's kubeconfig for the repository, and only on one's own machine
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub(super) fn kubeconfig_path(
        &self,
        ctx: &DeployContext,
        path: Option<&str>,
    ) -> Result<(PathBuf, Option<BuildDir>), Error> {
        let job = ctx.env.get("KUBECONFIG").map(|v| v.expose().to_owned());
        let in_build = match (path, &job) {
            (Some(p), _) => Some(("kubeconfig", p.to_owned())),
            (None, Some(list)) => Some(("KUBECONFIG", first_path(list).to_owned())),
            (None, None) => None,
        };
        if let Some((option, p)) = in_build {
            let build = ctx.build_dir(self.name)?;
            return Ok((build.resolve(self.name, option, &p)?, Some(build)));
        }
        if let Some(server) = ctx.credentials.kubeconfig() {
            return Ok((server.clone(), None));
        }
        if !ctx.credentials.ambient() {
            return Err(Error::NoCredentials {
                provider: self.name,
                kind: "Kubernetes",
                repo: ctx.repo.clone(),
                fix: crate::credentials::KUBE_FIX,
            });
        }
        let path = match std::env::var("KUBECONFIG") {
            Ok(list) if !list.is_empty() => PathBuf::from(first_path(&list)),
            _ => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".kube/config"),
        };
        Ok((path, None))
    }

    /// Where the credentials come from (see [`Kubernetes::kubeconfig_path`]), never the values.
    pub(super) fn describe_credentials(&self, ctx: &DeployContext) -> String {
        match &self.access {
            super::Access::Gke(gke) => {
                format!("the service-account key {} of the build dir", gke.key_file)
            }
            super::Access::Kubeconfig { path: Some(p), .. } => {
                format!("the kubeconfig {p} of the build dir")
            }
            super::Access::Kubeconfig { path: None, .. } => {
                if ctx.env.contains_key("KUBECONFIG") {
                    "the kubeconfig the job's KUBECONFIG names (in the build dir)".to_owned()
                } else if let Some(p) = ctx.credentials.kubeconfig() {
                    format!(
                        "the server's [repos.deploy] kubeconfig for {} ({})",
                        ctx.repo,
                        p.display()
                    )
                } else if ctx.credentials.ambient() {
                    "$KUBECONFIG or ~/.kube/config of this machine".to_owned()
                } else {
                    format!(
                        "none: no Kubernetes credentials are configured for {}",
                        ctx.repo
                    )
                }
            }
        }
    }
}

/// The first file of a `KUBECONFIG` list (`a:b`), the one kubectl reads the context from.
pub(super) fn first_path(list: &str) -> &str {
    list.split(':').next().unwrap_or_default()
}

/// The files a kubeconfig of the build may name: its build's.
struct BuildFiles<'a> {
    provider: &'static str,
    build: &'a BuildDir,
    /// The kubeconfig's directory, which relative names start from.
    dir: &'a Path,
    kubeconfig: &'a Path,
}

impl BuildFiles<'_> {
    /// Reads every file the context's cluster and user name into the kubeconfig itself, each
    /// checked to be a file of the build, so that kube-rs opens nothing else; refuses plugins.
    fn confine(&self, kc: &mut Kubeconfig, cluster: &str, user: &str) -> Result<(), Error> {
        if let Some(c) = kc
            .clusters
            .iter_mut()
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_mut())
            && c.certificate_authority_data.is_none()
            && let Some(f) = c.certificate_authority.take()
        {
            c.certificate_authority_data =
                Some(STANDARD.encode(self.read("certificate-authority", &f)?));
        }
        let Some(u) = kc
            .auth_infos
            .iter_mut()
            .find(|u| u.name == user)
            .and_then(|u| u.auth_info.as_mut())
        else {
            return Ok(());
        };
        if u.exec.is_some() || u.auth_provider.is_some() {
            return Err(self.bad(format!(
                "user {user} authenticates through a plugin, which a kubeconfig of the build may not run; give a token or client certificate (or use provider gke)"
            )));
        }
        if u.client_certificate_data.is_none()
            && let Some(f) = u.client_certificate.take()
        {
            u.client_certificate_data = Some(STANDARD.encode(self.read("client-certificate", &f)?));
        }
        if u.client_key_data.is_none()
            && let Some(f) = u.client_key.take()
        {
            u.client_key_data = Some(STANDARD.encode(self.read("client-key", &f)?).into());
        }
        if let Some(f) = u.token_file.take()
            && u.token.is_none()
        {
            let token = String::from_utf8(self.read("tokenFile", &f)?)
                .map_err(|_| self.bad("tokenFile: not UTF-8".into()))?;
            u.token = Some(token.trim().to_owned().into());
        }
        Ok(())
    }

    fn read(&self, field: &str, name: &str) -> Result<Vec<u8>, Error> {
        let path = self.build.resolve_from(
            self.provider,
            &format!("kubeconfig {field}"),
            self.dir,
            name,
        )?;
        std::fs::read(&path).map_err(|e| self.bad(format!("{field}: {e}")))
    }

    fn bad(&self, message: String) -> Error {
        Error::File {
            provider: self.provider,
            path: self.kubeconfig.to_path_buf(),
            message,
        }
    }
}
