//! The `git` command for deploys that push (`pages`), run so that nothing of the machine's own git
//! setup applies and the token goes to one URL only.
//!
//! Each command runs with no system or global configuration (`GIT_CONFIG_NOSYSTEM`,
//! `GIT_CONFIG_GLOBAL=/dev/null`, `HOME` in the deploy's own directory), no terminal prompt, and
//! redirects refused, in a repository the deploy made itself (so no hooks of the build's run). The
//! token travels as an `Authorization` header configured through the environment for the exact
//! remote URL (`http.<url>.extraHeader`), never on a command line, where other users of the
//! machine could read it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use slipway_secrets::Secret;
use tokio::process::Command;

use crate::error::{Error, one_line};

/// How long one git command may take.
const LIMIT: Duration = Duration::from_secs(600);

/// Git commands in one working directory, for one remote.
pub(crate) struct Git {
    provider: &'static str,
    dir: PathBuf,
    home: PathBuf,
    remote: String,
    token: Option<Secret<String>>,
    identity: (String, String),
}

impl Git {
    /// Commands run in `dir` (created if missing), with `home` as `$HOME`; `token` is sent to
    /// `remote` only, as GitHub takes it over HTTPS (`x-access-token` and the token, Basic).
    pub(crate) fn new(
        provider: &'static str,
        dir: &Path,
        home: &Path,
        remote: &str,
        token: Option<Secret<String>>,
        identity: (String, String),
    ) -> Self {
        Git {
            provider,
            dir: dir.to_path_buf(),
            home: home.to_path_buf(),
            remote: remote.to_owned(),
            token,
            identity,
        }
    }

    /// The remote URL.
    pub(crate) fn remote(&self) -> &str {
        &self.remote
    }

    /// Runs `git ARGS`; its standard output, or an error with git's last lines of output.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.output(args).await?;
        if out.0 {
            Ok(out.1)
        } else {
            Err(Error::Api {
                provider: self.provider,
                action: format!("git {}", args.first().copied().unwrap_or_default()),
                message: out.2,
            })
        }
    }

    /// Runs `git ARGS`: whether it succeeded, its standard output, and its error output (last
    /// lines, one line) for messages.
    pub(crate) async fn output(&self, args: &[&str]) -> Result<(bool, String, String), Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::File {
            provider: self.provider,
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", &self.identity.0)
            .env("GIT_AUTHOR_EMAIL", &self.identity.1)
            .env("GIT_COMMITTER_NAME", &self.identity.0)
            .env("GIT_COMMITTER_EMAIL", &self.identity.1)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut config = vec![
            ("http.followRedirects".to_owned(), "false".to_owned()),
            ("init.defaultBranch".to_owned(), "main".to_owned()),
            ("core.hooksPath".to_owned(), "/dev/null".to_owned()),
        ];
        if let Some(t) = &self.token {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", t.expose()));
            config.push((
                format!("http.{}.extraHeader", self.remote),
                format!("Authorization: Basic {basic}"),
            ));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        let child = cmd.output();
        let out = tokio::time::timeout(LIMIT, child)
            .await
            .map_err(|_| Error::Timeout {
                provider: self.provider,
                what: format!("git {}", args.first().copied().unwrap_or_default()),
                seconds: LIMIT.as_secs(),
                detail: None,
            })?
            .map_err(|e| Error::Api {
                provider: self.provider,
                action: "git".to_owned(),
                message: format!("cannot run git (is it installed?): {e}"),
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            one_line(&tail.join(" ")),
        ))
    }
}
