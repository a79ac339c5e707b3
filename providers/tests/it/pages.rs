//! `provider: pages` against a real git server: `git http-backend` behind the `GitHttp` host of
//! `slipway_webhook::testing`, which answers a repository only to its token (as GitHub does for
//! `x-access-token`). The branch is replaced by one commit, or with `keep_history` extended by
//! one; `fqdn` writes `CNAME`; `committer_from_gh` asks GitHub's stand-in who the token is.

use std::path::Path;

use crate::util::*;
use serde_json::json;
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};
use slipway_webhook::testing::git_hosts::GitHttp;
use slipway_webhook::testing::{FakeGitHub, FakeOAuth, git};

const TOKEN: &str = "ghp_pages_token_0c2f81";

/// A host serving `octo/app.git` (a bare repository with `main`), private to [`TOKEN`].
fn host() -> (tempfile::TempDir, GitHttp, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("octo/app.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let work = root.path().join("seed");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "the project\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let http = GitHttp::start(root.path());
    http.private("/octo/app.git", TOKEN);
    (root, http, bare)
}

fn ctx(dir: &Path, http: &GitHttp) -> DeployContext {
    let mut c = context(dir);
    c.repo = "octo/app".into();
    c.commit = "c0ffee1234567890c0ffee1234567890c0ffee12".into();
    c.endpoints.github = Some(http.url.clone());
    c
}

fn run(ctx: &DeployContext, options: serde_json::Value) -> (Outcome, Vec<String>) {
    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&deploy("pages", options), ctx, &log));
    (out, log.lines())
}

/// `path: content` of every file at the tip of `branch`, and the number of commits on it.
fn published(bare: &Path, branch: &str) -> (Vec<String>, usize) {
    let files = git(bare, &["ls-tree", "-r", "--name-only", branch]);
    let mut out = Vec::new();
    for f in files.lines() {
        let content = git(bare, &["show", &format!("{branch}:{f}")]);
        out.push(format!("{f}: {content}"));
    }
    let count = git(bare, &["rev-list", "--count", branch]).parse().unwrap();
    (out, count)
}

#[test]
fn local_dir_replaces_the_branch_and_keep_history_adds_to_it() {
    let (_root, http, bare) = host();
    let site = tree(&[
        ("public/index.html", "<h1>v1</h1>"),
        ("public/css/site.css", "body{}"),
        ("public/.git/config", "not copied"),
        ("src/main.rs", "not published"),
    ]);
    std::os::unix::fs::symlink("/etc/passwd", site.path().join("public/passwd")).unwrap();
    let c = ctx(site.path(), &http);
    let (out, log) = run(
        &c,
        json!({"github_token": TOKEN, "local_dir": "public", "fqdn": "docs.example.org",
               "name": "Site Bot", "email": "bot@example.org"}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let (files, commits) = published(&bare, "gh-pages");
    assert_eq!(
        files,
        [
            "CNAME: docs.example.org",
            "css/site.css: body{}",
            "index.html: <h1>v1</h1>",
            // A link is published as a link: its target is never read.
            "passwd: /etc/passwd",
        ]
    );
    assert_eq!(commits, 1);
    let author = git(&bare, &["log", "-1", "--format=%an <%ae>|%s", "gh-pages"]);
    assert_eq!(
        author,
        "Site Bot <bot@example.org>|Deploy docs.example.org to github.com/octo/app.git:gh-pages"
    );
    // main is untouched.
    assert_eq!(published(&bare, "main").1, 1);
    let text = log.join("\n");
    assert!(!text.contains(TOKEN), "{text}");
    // Every request carried the token, as Basic credentials of x-access-token.
    assert!(
        http.requests()
            .iter()
            .all(|r| r.status != 401 && r.authorization.is_some()),
        "{:#?}",
        http.requests()
    );

    // Without keep_history the branch is replaced again: still one commit.
    std::fs::write(site.path().join("public/index.html"), "<h1>v2</h1>").unwrap();
    let (out, log) = run(&c, json!({"token": TOKEN, "local_dir": "public"}));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(published(&bare, "gh-pages").1, 1);

    // keep_history: one commit on top, and files gone from local_dir are gone from the branch.
    std::fs::remove_dir_all(site.path().join("public/css")).unwrap();
    std::fs::write(site.path().join("public/index.html"), "<h1>v3</h1>").unwrap();
    let (out, log) = run(
        &c,
        json!({"token": TOKEN, "local_dir": "public", "keep_history": true,
               "commit_message": "Publish %{git_sha}"}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let (files, commits) = published(&bare, "gh-pages");
    assert_eq!(files, ["index.html: <h1>v3</h1>", "passwd: /etc/passwd"]);
    assert_eq!(commits, 2);
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%s", "gh-pages"]),
        "Publish c0ffee1234567890c0ffee1234567890c0ffee12"
    );

    // Nothing changed: no empty commit, unless asked for.
    let (out, log) = run(
        &c,
        json!({"token": TOKEN, "local_dir": "public", "keep_history": true}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert!(
        log.join("\n").contains("nothing changed; not pushing"),
        "{log:#?}"
    );
    assert_eq!(published(&bare, "gh-pages").1, 2);
    let (out, log) = run(
        &c,
        json!({"token": TOKEN, "local_dir": "public", "keep_history": true,
               "allow_empty_commit": true, "target_branch": "gh-pages"}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(published(&bare, "gh-pages").1, 3);
}

#[test]
fn a_new_branch_with_keep_history_and_a_wrong_token_and_paths_outside() {
    let (_root, http, bare) = host();
    let site = tree(&[("docs/index.html", "hi")]);
    let c = ctx(site.path(), &http);
    let (out, log) = run(
        &c,
        json!({"token": TOKEN, "local_dir": "docs", "keep_history": true,
               "target_branch": "site"}),
    );
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(
        published(&bare, "site"),
        (vec!["index.html: hi".to_string()], 1)
    );

    let (out, log) = run(&c, json!({"token": "ghp_wrong", "local_dir": "docs"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert!(e.one_line().starts_with("pages: git push failed:"), "{e}");
    assert!(!e.one_line().contains("ghp_wrong") && !log.join("\n").contains("ghp_wrong"));

    let before = http.requests().len();
    for dir in ["/etc", "../.."] {
        let (out, _) = run(&c, json!({"token": TOKEN, "local_dir": dir}));
        let Outcome::Failed(e) = out else {
            panic!("{out:?}")
        };
        assert!(e.to_string().contains("outside the build dir"), "{e}");
    }
    // No token, no push: the machine's own GITHUB_TOKEN is never used by pages.
    let (out, _) = run(&c, json!({"local_dir": "docs"}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert!(
        e.one_line()
            .starts_with("pages: no GitHub credentials are configured for the repository octo/app"),
        "{e}"
    );
    assert_eq!(http.requests().len(), before);
}

#[test]
fn committer_from_gh_commits_as_the_tokens_owner() {
    let (_root, http, bare) = host();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let github = FakeGitHub::default();
    github.oauth(FakeOAuth {
        tokens: vec![(TOKEN.into(), "octocat".into())],
        ..FakeOAuth::default()
    });
    let api = github.start(&rt);
    let site = tree(&[("index.html", "hi")]);
    let mut c = ctx(site.path(), &http);
    c.endpoints.github_api = Some(api);
    let (out, log) = run(&c, json!({"token": TOKEN, "committer_from_gh": true}));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "gh-pages"]),
        "octocat <1+octocat@users.noreply.github.com>"
    );
    assert!(github.with_oauth(|o| o.problems.is_empty()));
}
