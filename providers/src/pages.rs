//! `provider: pages`: publish a directory of the build to a branch of a GitHub repository with git
//! and a token, as dpl's `pages` does.
//!
//! Without `keep_history` (dpl v1's default) the branch is replaced by one commit holding
//! `local_dir` (a force push); with it the branch is cloned, made equal to `local_dir` (files that
//! are gone are removed) and one commit is added on top. `fqdn` writes a `CNAME` file. The work
//! happens in a directory of the deploy's own, with the machine's git configuration and hooks out
//! of the way (see [`crate::git`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, option_error};
use crate::git::Git;
use crate::github::{self, Api, GitHubAuth};
use crate::options::Options;
use slipway_runner::DeployLog;

const NAME: &str = "pages";

/// Every option the pages provider takes.
pub const OPTIONS: &[&str] = &[
    "strategy",
    "token",
    "deploy_key",
    "repo",
    "target_branch",
    "local_dir",
    "fqdn",
    "project_name",
    "email",
    "name",
    "url",
    "keep_history",
    "verbose",
    "allow_empty_commit",
    "commit_message",
    "committer_from_gh",
    "deployment_file",
];

/// Typed pages options.
#[derive(Debug)]
pub struct Pages {
    auth: GitHubAuth,
    repo: String,
    target_branch: String,
    local_dir: String,
    fqdn: Option<String>,
    project_name: String,
    email: String,
    name: String,
    host: Option<String>,
    keep_history: bool,
    allow_empty_commit: bool,
    commit_message: Option<String>,
    committer_from_gh: bool,
    deployment_file: bool,
}

impl Pages {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let ctx = o.ctx();
        if let Some(s) = o.string(&["strategy"])?
            && s != "git"
        {
            return Err(option_error(
                NAME,
                "strategy",
                format!("`{s}`: Slipway publishes pages with git (strategy: git)"),
            ));
        }
        let auth = GitHubAuth::read(&mut o, NAME, &["token"], false, false)?;
        if o.string(&["deploy_key"])?.is_some() {
            return Err(option_error(
                NAME,
                "deploy_key",
                "Slipway pushes pages over HTTPS with a token: give token (secure) instead",
            ));
        }
        let repo = o.string(&["repo"])?.unwrap_or_else(|| ctx.repo.clone());
        github::check_repo(NAME, "repo", &repo)?;
        let target_branch = o
            .string(&["target_branch"])?
            .unwrap_or_else(|| "gh-pages".into());
        if target_branch.is_empty()
            || target_branch.starts_with('-')
            || target_branch.contains(['\\', ' ', '~', '^', ':', '?', '*', '['])
            || target_branch.contains("..")
        {
            return Err(option_error(
                NAME,
                "target_branch",
                format!("`{target_branch}` is not a branch name"),
            ));
        }
        let local_dir = o.string(&["local_dir"])?.unwrap_or_else(|| ".".into());
        let fqdn = o.string(&["fqdn"])?.filter(|f| !f.is_empty());
        let project_name = o
            .string(&["project_name"])?
            .or_else(|| fqdn.clone())
            .unwrap_or_else(|| repo.clone());
        let email = o
            .string(&["email"])?
            .unwrap_or_else(|| "deploy@travis-ci.org".into());
        let name = o
            .string(&["name"])?
            .unwrap_or_else(|| "Deployment Bot".into());
        let host = o
            .string(&["url"])?
            .map(|h| h.trim_end_matches('/').to_owned());
        let keep_history = o.bool(&["keep_history"])?.unwrap_or(false);
        o.bool(&["verbose"])?;
        let allow_empty_commit = o.bool(&["allow_empty_commit"])?.unwrap_or(false);
        let commit_message = o.string(&["commit_message"])?;
        let committer_from_gh = o.bool(&["committer_from_gh"])?.unwrap_or(false);
        let deployment_file = o.bool(&["deployment_file"])?.unwrap_or(false);
        o.finish(OPTIONS)?;
        Ok(Pages {
            auth,
            repo,
            target_branch,
            local_dir,
            fqdn,
            project_name,
            email,
            name,
            host,
            keep_history,
            allow_empty_commit,
            commit_message,
            committer_from_gh,
            deployment_file,
        })
    }

    /// The repository's git URL: the `url` option's host over HTTPS, else the endpoint override,
    /// else GitHub.
    fn remote(&self, ctx: &DeployContext) -> String {
        let base = match (&self.host, &ctx.endpoints.github) {
            (Some(h), _) if h.contains("://") => h.clone(),
            (Some(h), _) => format!("https://{h}"),
            (None, Some(e)) => e.trim_end_matches('/').to_owned(),
            (None, None) => "https://github.com".to_owned(),
        };
        format!("{base}/{}.git", self.repo)
    }

    /// The commit message, dpl's default or `commit_message` with its `%{…}` placeholders.
    fn message(&self, ctx: &DeployContext) -> String {
        let host = self.host.clone().unwrap_or_else(|| "github.com".into());
        let template = self
            .commit_message
            .clone()
            .unwrap_or_else(|| "Deploy %{project_name} to %{url}:%{target_branch}".into());
        template
            .replace("%{project_name}", &self.project_name)
            .replace("%{url}", &format!("{host}/{}.git", self.repo))
            .replace("%{target_branch}", &self.target_branch)
            .replace("%{repo}", &self.repo)
            .replace("%{git_sha}", &ctx.commit)
            .replace("%{git_commit_msg}", &ctx.commit_message)
    }

    fn source(&self, ctx: &DeployContext) -> Result<PathBuf, Error> {
        let dir = ctx.input(NAME, "local_dir", &self.local_dir)?;
        if !dir.is_dir() {
            return Err(Error::File {
                provider: NAME,
                path: dir,
                message: "local_dir is not a directory".into(),
            });
        }
        Ok(dir)
    }

    /// The committer: the options', or with `committer_from_gh` the token owner's on GitHub.
    async fn identity(
        &self,
        ctx: &DeployContext,
        credential: &github::Resolved,
    ) -> Result<(String, String), Error> {
        if !self.committer_from_gh {
            return Ok((self.name.clone(), self.email.clone()));
        }
        let user = Api::new(NAME, ctx, credential)?
            .json("GET", "/user", None)
            .await?;
        let login = user["login"].as_str().unwrap_or("slipway");
        let name = user["name"].as_str().unwrap_or(login).to_owned();
        let email = user["email"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}+{login}@users.noreply.github.com", user["id"]));
        Ok((name, email))
    }
}

/// Copies `from` into `to`: directories, regular files, and symlinks as links (their targets are
/// neither read nor followed); `.git` entries are left out.
fn copy_tree(from: &Path, to: &Path) -> Result<usize, Error> {
    let err = |path: &Path, e: std::io::Error| Error::File {
        provider: NAME,
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut count = 0;
    for entry in std::fs::read_dir(from).map_err(|e| err(from, e))? {
        let entry = entry.map_err(|e| err(from, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().map_err(|e| err(&src, e))?;
        if ty.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| err(&dst, e))?;
            count += copy_tree(&src, &dst)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| err(&src, e))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| err(&dst, e))?;
            count += 1;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| err(&src, e))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Removes everything in `dir` but `.git`.
fn clear(dir: &Path) -> Result<(), Error> {
    let err = |path: &Path, e: std::io::Error| Error::File {
        provider: NAME,
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let entry = entry.map_err(|e| err(dir, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| err(&path, e))?;
        if ty.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| err(&path, e))?;
        } else {
            std::fs::remove_file(&path).map_err(|e| err(&path, e))?;
        }
    }
    Ok(())
}

#[async_trait]
impl Deployer for Pages {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        self.auth.describe(ctx, &self.repo)
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let remote = self.remote(ctx);
        let mut calls = Vec::new();
        if self.committer_from_gh {
            calls.push(
                ApiCall::new("github", format!("GET {}/user", github::api_base(ctx)))
                    .note("the committer's name and email"),
            );
        }
        if self.keep_history {
            calls.push(
                ApiCall::new("git", "clone")
                    .param("url", &remote)
                    .param("branch", &self.target_branch)
                    .note("a new branch when it does not exist yet"),
            );
        }
        let files = match self.source(ctx) {
            Ok(dir) => walk_count(&dir).to_string(),
            Err(e @ Error::OutsideBuildDir { .. }) => {
                calls
                    .push(ApiCall::new("git", "commit").note(format!("nothing: {}", e.one_line())));
                return calls;
            }
            Err(_) => format!("the files of {}", self.local_dir),
        };
        let mut commit = ApiCall::new("git", "commit")
            .param("local_dir", &self.local_dir)
            .param("files", files)
            .param("message", self.message(ctx));
        if let Some(f) = &self.fqdn {
            commit = commit.param("CNAME", f);
        }
        if self.allow_empty_commit {
            commit = commit.param("allow_empty", "true");
        }
        calls.push(commit);
        calls.push(
            ApiCall::new("git", "push")
                .param("url", &remote)
                .param("branch", &self.target_branch)
                .param("force", (!self.keep_history).to_string()),
        );
        calls
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let source = self.source(ctx)?;
        let credential = self.auth.resolve(ctx, &self.repo).await?;
        let Some(token) = credential.token.clone() else {
            return Err(option_error(NAME, "token", "is required"));
        };
        github::log_source(NAME, &credential, log);
        let identity = self.identity(ctx, &credential).await?;
        let work = tempfile::Builder::new()
            .prefix("slipway-pages-")
            .tempdir()
            .map_err(|e| Error::File {
                provider: NAME,
                path: std::env::temp_dir(),
                message: e.to_string(),
            })?;
        let tree = work.path().join("tree");
        let remote = self.remote(ctx);
        let git = Git::new(NAME, &tree, work.path(), &remote, Some(token), identity);
        let branch = self.target_branch.as_str();
        let mut cloned = false;
        if self.keep_history {
            log.line(&format!("pages: cloning {branch} of {}", git.remote()));
            let (ok, _, err) = git
                .output(&[
                    "clone",
                    "--quiet",
                    "--depth=1",
                    "--branch",
                    branch,
                    "--",
                    &remote,
                    ".",
                ])
                .await?;
            if ok {
                cloned = true;
            } else if err.contains("not found in upstream") || err.contains("Remote branch") {
                log.line(&format!("pages: {branch} does not exist yet; starting it"));
                clear(&tree)?;
                let _ = std::fs::remove_dir_all(tree.join(".git"));
            } else {
                return Err(Error::Api {
                    provider: NAME,
                    action: "git clone".into(),
                    message: err,
                });
            }
        }
        if !cloned {
            git.run(&["init", "--quiet"]).await?;
            git.run(&["checkout", "--quiet", "--orphan", branch])
                .await?;
        }
        clear(&tree)?;
        let count = copy_tree(&source, &tree)?;
        if let Some(f) = &self.fqdn {
            std::fs::write(tree.join("CNAME"), format!("{f}\n")).map_err(|e| Error::File {
                provider: NAME,
                path: tree.join("CNAME"),
                message: e.to_string(),
            })?;
        }
        if self.deployment_file {
            let info = format!(
                "repo: {}\ncommit: {}\nbranch: {}\n",
                ctx.repo, ctx.commit, ctx.branch
            );
            let _ = std::fs::write(tree.join("deployment"), info);
        }
        log.line(&format!(
            "pages: committing {count} file(s) of {} to {branch}",
            self.local_dir
        ));
        git.run(&["add", "--all", "."]).await?;
        let mut commit = vec!["commit", "--quiet", "--no-verify", "-m"];
        let message = self.message(ctx);
        commit.push(&message);
        if self.allow_empty_commit {
            commit.push("--allow-empty");
        }
        let (ok, out, err) = git.output(&commit).await?;
        if !ok {
            if out.contains("nothing to commit") || err.contains("nothing to commit") {
                log.line(
                    "pages: nothing changed; not pushing (allow_empty_commit: true pushes anyway)",
                );
                return Ok(format!("{branch} of {} already up to date", self.repo));
            }
            return Err(Error::Api {
                provider: NAME,
                action: "git commit".into(),
                message: err,
            });
        }
        log.line(&format!("pages: pushing to {branch} of {}", git.remote()));
        let refspec = format!("HEAD:refs/heads/{branch}");
        let mut push = vec!["push", "--quiet"];
        if !self.keep_history {
            push.push("--force");
        }
        push.extend(["--", &remote, &refspec]);
        git.run(&push).await?;
        Ok(format!(
            "published {count} file(s) of {} to {branch} of {}",
            self.local_dir, self.repo
        ))
    }
}

/// How many files and links are under `dir` (without `.git`), for dry runs.
fn walk_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != ".git")
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_count(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}
