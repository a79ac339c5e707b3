//! Job workspaces from the mirror: the pipeline's `git: depth` makes a shallow repository of that
//! many commits, `git: submodules` checks submodules out (recursively, relative URLs resolved
//! against the clone URL; local URLs refused for a remote repository) or leaves them out, and the
//! server passes each job's settings through.

use crate::util::*;
use slipway_pipelines::plan::Git;
use slipway_webhook::event::NewBuild;
use slipway_webhook::git::{FetchPolicy, Mirrors, NoTokens, Remote};
use slipway_webhook::job_runner::JobRun;
use slipway_webhook::testing::PassingJobRunner;
use slipway_webhook::testing::git_hosts::GitDaemon;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/app";

/// A bare repository `<name>.git` under `root` with one commit holding `file` = `text`, made in
/// `<name>-work` (kept, to commit more from).
fn small_repo(root: &Path, name: &str, file: &str, text: &str) -> (PathBuf, PathBuf) {
    let bare = root.join(format!("{name}.git"));
    let work = root.join(format!("{name}-work"));
    bare_with_work(&bare, &work, &[(file, text)], &format!("add {file}"));
    (bare, work)
}

/// Adds a submodule at `path` with the relative URL `url` in `work`, commits and pushes.
fn add_submodule(work: &Path, url: &str, path: &str) {
    git(
        work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            url,
            path,
        ],
    );
    git(
        work,
        &["commit", "-q", "-m", &format!("add submodule {path}")],
    );
    git(work, &["push", "-q", "origin", "HEAD"]);
}

/// An origin whose `lib` submodule (`../lib.git`) has an `inner` submodule (`../inner.git`).
fn origin_with_submodules(root: &Path, pipeline: &str) -> Origin {
    small_repo(root, "inner", "inner.txt", "from inner\n");
    let (_, lib_work) = small_repo(root, "lib", "lib.txt", "from lib\n");
    add_submodule(&lib_work, "../inner.git", "inner");
    let origin = Origin::new(root, pipeline);
    add_submodule(&origin.work, "../lib.git", "lib");
    origin
}

fn settings(depth: Option<u32>, submodules: bool) -> Git {
    Git {
        depth,
        submodules,
        ..Git::default()
    }
}

/// Prepares `spec` in a fresh mirror and checks the result out with `git`; returns the workspace.
fn workspace(
    root: &Path,
    origin: &Origin,
    spec: &NewBuild,
    git: &Git,
    token: Option<&str>,
) -> PathBuf {
    let mirrors = Mirrors::new(root.join("mirrors"));
    let sources = mirrors
        .prepare(1, spec, &origin.url(), token, &CancellationToken::new())
        .unwrap();
    let ws = root.join(format!("ws-{:?}-{}", git.depth, git.submodules));
    let url = origin.url();
    mirrors
        .checkout(
            REPO,
            &sources.commit,
            &ws,
            git,
            Remote {
                url: &url,
                token,
                served: &NoTokens,
            },
            &CancellationToken::new(),
        )
        .unwrap();
    ws
}

/// [`workspace`] of a push of `origin`'s HEAD.
fn head_workspace(
    root: &Path,
    origin: &Origin,
    git_settings: &Git,
    token: Option<&str>,
) -> PathBuf {
    let head = git(&origin.work, &["rev-parse", "HEAD"]);
    workspace(
        root,
        origin,
        &push_spec(&origin.url(), &head),
        git_settings,
        token,
    )
}

fn commits(ws: &Path) -> usize {
    git(ws, &["rev-list", "--count", "HEAD"]).parse().unwrap()
}

fn shallow(ws: &Path) -> bool {
    git(ws, &["rev-parse", "--is-shallow-repository"]) == "true"
}

/// Every byte under `dir`, files only, for looking for a string anywhere in a workspace.
fn all_bytes(dir: &Path, out: &mut Vec<u8>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            all_bytes(&e.path(), out);
        } else if e.file_type().unwrap().is_file() {
            out.extend(std::fs::read(e.path()).unwrap());
        }
    }
}

#[test]
fn submodules_are_checked_out_recursively_from_urls_relative_to_the_clone_url() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin_with_submodules(tmp.path(), "script: true\n");
    let ws = head_workspace(
        tmp.path(),
        &origin,
        &Git::default(),
        Some("token-never-stored"),
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("lib/lib.txt")).unwrap(),
        "from lib\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("lib/inner/inner.txt")).unwrap(),
        "from inner\n"
    );
    // Each submodule sits at the commit its superproject records, and git agrees it is clean.
    let recorded = git(&origin.work, &["rev-parse", "HEAD:lib"]);
    assert_eq!(git(&ws.join("lib"), &["rev-parse", "HEAD"]), recorded);
    assert_eq!(
        git(&ws, &["submodule", "status", "--recursive"])
            .lines()
            .count(),
        2
    );
    assert!(
        !git(&ws, &["submodule", "status", "--recursive"]).contains(['-', '+']),
        "{}",
        git(&ws, &["submodule", "status", "--recursive"])
    );
    assert_eq!(git(&ws, &["status", "--porcelain"]), "");
    // The workspace's origin is the clone URL; the token is nowhere in it.
    assert_eq!(git(&ws, &["remote", "get-url", "origin"]), origin.url());
    let mut bytes = Vec::new();
    all_bytes(&ws, &mut bytes);
    assert!(
        !bytes.windows(18).any(|w| w == b"token-never-stored"),
        "the token was written into the workspace"
    );
}

#[test]
fn submodules_false_leaves_them_out() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin_with_submodules(tmp.path(), "script: true\n");
    let ws = head_workspace(tmp.path(), &origin, &settings(Some(50), false), None);
    assert!(ws.join(".gitmodules").exists());
    assert!(!ws.join("lib/lib.txt").exists());
    assert!(!ws.join("lib/inner").exists());
    // Not initialised, as after a plain clone.
    assert!(git(&ws, &["submodule", "status"]).starts_with('-'));
}

/// An origin whose `lib` submodule (`../lib.git`) has five commits, the superproject recording
/// the fifth, and a sixth pushed afterwards (so the recorded commit is not the submodule's tip).
fn origin_with_a_long_submodule(root: &Path) -> Origin {
    let (_, lib_work) = small_repo(root, "lib", "lib.txt", "1\n");
    for n in 2..=5 {
        std::fs::write(lib_work.join("lib.txt"), format!("{n}\n")).unwrap();
        git(&lib_work, &["commit", "-q", "-am", &format!("lib {n}")]);
    }
    git(&lib_work, &["push", "-q", "origin", "master"]);
    let origin = Origin::new(root, "script: true\n");
    add_submodule(&origin.work, "../lib.git", "lib");
    std::fs::write(lib_work.join("lib.txt"), "6\n").unwrap();
    git(&lib_work, &["commit", "-q", "-am", "lib 6"]);
    git(&lib_work, &["push", "-q", "origin", "master"]);
    origin
}

#[test]
fn submodules_depth_makes_each_submodule_shallow_at_the_recorded_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin_with_a_long_submodule(tmp.path());
    let head = git(&origin.work, &["rev-parse", "HEAD"]);
    let recorded = git(&origin.work, &["rev-parse", "HEAD:lib"]);
    let spec = push_spec(&origin.url(), &head);

    let ws = workspace(tmp.path(), &origin, &spec, &Git::default(), None);
    let lib = ws.join("lib");
    assert_eq!(git(&lib, &["rev-parse", "HEAD"]), recorded);
    assert_eq!(
        commits(&lib),
        5,
        "without submodules_depth the whole history"
    );
    assert!(!shallow(&lib));

    for depth in [1, 3] {
        let git_settings = Git {
            submodules_depth: Some(depth),
            ..Git::default()
        };
        let ws = workspace(tmp.path(), &origin, &spec, &git_settings, None);
        let lib = ws.join("lib");
        assert_eq!(git(&lib, &["rev-parse", "HEAD"]), recorded);
        assert_eq!(std::fs::read_to_string(lib.join("lib.txt")).unwrap(), "5\n");
        assert_eq!(commits(&lib), depth as usize);
        assert!(shallow(&lib));
        // A clean, initialised submodule whose origin is its URL, as `git submodule update` leaves it.
        let status = git(&ws, &["submodule", "status"]);
        assert!(
            status.starts_with(&recorded) && !status.contains(['-', '+']),
            "{status}"
        );
        assert_eq!(git(&ws, &["status", "--porcelain"]), "");
        assert_eq!(
            git(&lib, &["remote", "get-url", "origin"]),
            format!("file://{}", tmp.path().join("lib.git").display())
        );
        // The superproject keeps its own depth.
        assert_eq!(commits(&ws), 2);
    }
}

#[test]
fn clone_false_leaves_an_empty_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin_with_submodules(tmp.path(), "script: true\n");
    let head = git(&origin.work, &["rev-parse", "HEAD"]);
    let git_settings = Git {
        clone: false,
        ..Git::default()
    };
    let ws = workspace(
        tmp.path(),
        &origin,
        &push_spec(&origin.url(), &head),
        &git_settings,
        None,
    );
    assert!(ws.is_dir());
    assert_eq!(std::fs::read_dir(&ws).unwrap().count(), 0);
}

#[test]
fn a_local_submodule_url_is_refused_for_a_remote_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (secret, _) = small_repo(tmp.path(), "private", "secret.txt", "server-side only\n");
    let origin = Origin::new(tmp.path(), "script: true\n");
    add_submodule(&origin.work, secret.to_str().unwrap(), "steal");
    let head = git(&origin.work, &["rev-parse", "HEAD"]);
    let mirrors = Mirrors::new(tmp.path().join("mirrors"));
    let sources = mirrors
        .prepare(
            1,
            &push_spec(&origin.url(), &head),
            &origin.url(),
            None,
            &CancellationToken::new(),
        )
        .unwrap();
    // The same commit, as if fetched from a Git host: its submodule points into this machine.
    let ws = tmp.path().join("ws");
    let remote = Remote {
        url: "https://git.example.invalid/acme/app.git",
        token: None,
        served: &NoTokens,
    };
    let err = mirrors
        .checkout(
            REPO,
            &sources.commit,
            &ws,
            &Git::default(),
            remote,
            &CancellationToken::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("local URL is refused"), "{err}");
    assert!(!ws.join("steal/secret.txt").exists());
}

#[test]
fn depth_makes_a_shallow_workspace_of_that_many_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let mut head = String::new();
    for i in 0..7 {
        head = origin.push_master("README", &format!("version {i}\n"));
    }
    let spec = push_spec(&origin.url(), &head);

    let ws = workspace(tmp.path(), &origin, &spec, &settings(Some(3), true), None);
    assert_eq!(commits(&ws), 3);
    assert!(shallow(&ws));
    assert_eq!(git(&ws, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        std::fs::read_to_string(ws.join("README")).unwrap(),
        "version 6\n"
    );
    assert_eq!(git(&ws, &["status", "--porcelain"]), "");
    // Every object the shallow history needs is there and sound.
    git(&ws, &["fsck", "--no-progress", "--no-dangling"]);
    // Exactly the shallow history: the commit before the cut is not in the workspace.
    let fourth = git(&origin.work, &["rev-parse", "HEAD~3"]);
    let out = std::process::Command::new("git")
        .args(["cat-file", "-e", &fourth])
        .current_dir(&ws)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{fourth} is in the shallow workspace"
    );

    // A depth beyond the history, and no depth at all: the whole history, not shallow.
    for git_settings in [settings(Some(50), true), settings(None, true)] {
        let ws = workspace(tmp.path(), &origin, &spec, &git_settings, None);
        assert_eq!(commits(&ws), 8, "{git_settings:?}");
        assert!(!shallow(&ws), "{git_settings:?}");
        git(&ws, &["fsck", "--no-progress", "--no-dangling"]);
        assert_eq!(git(&ws, &["status", "--porcelain"]), "");
    }
}

#[test]
fn a_shallow_pull_request_workspace_holds_the_merge_and_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    for i in 0..4 {
        origin.push_master("README", &format!("version {i}\n"));
    }
    let head = origin.pull_request(7, "master", "feature.txt", "a feature\n");
    let base = origin.push_master("other.txt", "moved on\n");
    let spec = NewBuild {
        head_sha: head.clone(),
        head_ref: "refs/pull/7/head".into(),
        base_ref: Some("refs/heads/master".into()),
        ..push_spec(&origin.url(), &head)
    };
    let ws = workspace(tmp.path(), &origin, &spec, &settings(Some(2), true), None);
    assert_eq!(git(&ws, &["rev-parse", "HEAD^1"]), base);
    assert_eq!(git(&ws, &["rev-parse", "HEAD^2"]), head);
    assert_eq!(commits(&ws), 3, "the merge and its two parents");
    assert!(shallow(&ws));
    assert!(ws.join("feature.txt").exists() && ws.join("other.txt").exists());
    git(&ws, &["fsck", "--no-progress", "--no-dangling"]);
}

/// A job runner recording, for each job, what its workspace looked like.
fn probe(seen: Arc<Mutex<Vec<String>>>) -> Arc<dyn slipway_webhook::job_runner::JobRunner> {
    Arc::new(PassingJobRunner(move |job: &JobRun| {
        let ws = &job.workspace;
        let shown = format!(
            "commits={} shallow={} lib={}",
            commits(ws),
            shallow(ws),
            ws.join("lib/lib.txt").exists()
        );
        seen.lock().unwrap().push(shown);
    }))
}

#[test]
fn the_server_checks_each_job_out_with_its_git_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = origin_with_submodules(
        tmp.path(),
        "git:\n  depth: 1\n  submodules: false\nscript: true\n",
    );
    let github = FakeGitHub::default();
    let gh_rt = Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
    let api = github.start(gh_rt);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = Harness::start(
        &tmp.path().join("data"),
        config(Some(&api)),
        probe(seen.clone()),
    );
    let first = git(&origin.work, &["rev-parse", "HEAD"]);
    let (status, body) = h.deliver(
        "push",
        "d-1",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &first),
    );
    assert_eq!(status, 202, "{body}");
    let build: serde_json::Value = serde_json::from_str(&body).unwrap();
    let v = h.wait_final(build["build"].as_i64().unwrap(), 60);
    assert_eq!(v["build"]["state"], "passed", "{v}");

    // Default settings: depth 50 (more than the history) and submodules on.
    let second = origin.push_master(".travis.yml", "script: true\n");
    let (status, body) = h.deliver(
        "push",
        "d-2",
        &push_payload(REPO, &origin.url(), "refs/heads/master", &second),
    );
    assert_eq!(status, 202, "{body}");
    let build: serde_json::Value = serde_json::from_str(&body).unwrap();
    let v = h.wait_final(build["build"].as_i64().unwrap(), 60);
    assert_eq!(v["build"]["state"], "passed", "{v}");
    h.stop();

    assert_eq!(
        *seen.lock().unwrap(),
        [
            "commits=1 shallow=true lib=false",
            "commits=3 shallow=false lib=true"
        ]
    );
}

/// A `git daemon` for the test ([`GitDaemon`]); `None` (with a one-line skip) when it cannot
/// start outside CI, a failure under `CI=true`.
fn daemon(base: &Path) -> Option<GitDaemon> {
    match GitDaemon::start(base) {
        Ok(d) => Some(d),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("git daemon cannot start (CI=true): {why}")
        }
        Err(why) => {
            eprintln!("skipped: git daemon cannot start: {why}");
            None
        }
    }
}

/// Served by `daemon`: `lib.git` with commits "1" to "5" then `ahead` more, and `origin.git`
/// whose `lib` submodule (`.gitmodules` naming `lib.git` on the daemon by its full URL) records
/// "5". `sha1_in_want` lets the server hand out a commit asked for by id.
fn served_origin_with_a_submodule(
    root: &Path,
    daemon: &GitDaemon,
    ahead: usize,
    sha1_in_want: bool,
) -> Origin {
    let (lib_bare, lib_work) = small_repo(root, "lib", "lib.txt", "1\n");
    let allow = if sha1_in_want { "true" } else { "false" };
    git(
        &lib_bare,
        &["config", "uploadpack.allowReachableSHA1InWant", allow],
    );
    for n in 2..=5 {
        std::fs::write(lib_work.join("lib.txt"), format!("{n}\n")).unwrap();
        git(&lib_work, &["commit", "-q", "-am", &format!("lib {n}")]);
    }
    git(&lib_work, &["push", "-q", "origin", "master"]);
    let origin = Origin::new(root, "script: true\n");
    git(
        &origin.work,
        &["submodule", "add", "-q", &daemon.url("lib"), "lib"],
    );
    git(&origin.work, &["commit", "-q", "-m", "add submodule lib"]);
    git(&origin.work, &["push", "-q", "origin", "HEAD"]);
    for n in 6..6 + ahead {
        std::fs::write(lib_work.join("lib.txt"), format!("{n}\n")).unwrap();
        git(&lib_work, &["commit", "-q", "-am", &format!("lib {n}")]);
    }
    git(&lib_work, &["push", "-q", "origin", "master"]);
    origin
}

/// Prepares and checks out `origin`'s master fetched from `daemon` (so it is a remote
/// repository and its remote submodule URLs are allowed) with `submodules_depth`.
fn served_workspace(
    root: &Path,
    daemon: &GitDaemon,
    origin: &Origin,
    submodules_depth: u32,
) -> Result<PathBuf, String> {
    let head = git(&origin.work, &["rev-parse", "HEAD"]);
    let url = daemon.url("origin");
    let spec = NewBuild {
        clone_url: url.clone(),
        ..push_spec(&origin.url(), &head)
    };
    // The daemon listens on loopback, refused unless allowed.
    let mirrors = Mirrors::new(root.join("mirrors")).with_policy(FetchPolicy {
        allow: vec!["127.0.0.1".parse().unwrap()],
        ..FetchPolicy::default()
    });
    let sources = mirrors
        .prepare(1, &spec, &url, None, &CancellationToken::new())
        .unwrap();
    let ws = root.join(format!("ws-served-{submodules_depth}"));
    let git_settings = Git {
        submodules_depth: Some(submodules_depth),
        ..Git::default()
    };
    mirrors
        .checkout(
            REPO,
            &sources.commit,
            &ws,
            &git_settings,
            Remote::anonymous(&url),
            &CancellationToken::new(),
        )
        .map(|()| ws)
        .map_err(|e| e.to_string())
}

/// Whether the repository at `dir` holds object `id`.
fn has_object(dir: &Path, id: &str) -> bool {
    std::process::Command::new("git")
        .args(["cat-file", "-e", id])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

/// A daemon serving `origin.git`, whose `lib` submodule records commit "5" of `lib.git`
/// ([`served_origin_with_a_submodule`]), in a temporary directory.
struct SubmoduleServed {
    daemon: GitDaemon,
    origin: Origin,
    /// The commit of `lib` that `origin` records.
    recorded: String,
    /// `lib.git`'s tip on the daemon.
    tip: String,
    tmp: tempfile::TempDir,
}

impl SubmoduleServed {
    /// `None` (skipped) without `git daemon`; `ahead` and `sha1_in_want` as
    /// [`served_origin_with_a_submodule`] takes them.
    fn start(ahead: usize, sha1_in_want: bool) -> Option<SubmoduleServed> {
        let tmp = tempfile::tempdir().unwrap();
        let daemon = daemon(tmp.path())?;
        let origin = served_origin_with_a_submodule(tmp.path(), &daemon, ahead, sha1_in_want);
        let recorded = git(&origin.work, &["rev-parse", "HEAD:lib"]);
        let tip = git(&tmp.path().join("lib-work"), &["rev-parse", "HEAD"]);
        Some(SubmoduleServed {
            daemon,
            origin,
            recorded,
            tip,
            tmp,
        })
    }

    fn workspace(&self, submodules_depth: u32) -> Result<PathBuf, String> {
        served_workspace(
            self.tmp.path(),
            &self.daemon,
            &self.origin,
            submodules_depth,
        )
    }

    /// Fails unless checking out with `submodules_depth` fails naming the submodule and the
    /// recorded commit beyond that depth; returns the error.
    #[track_caller]
    fn assert_not_within(&self, submodules_depth: u32) -> String {
        let err = self.workspace(submodules_depth).unwrap_err();
        let beyond = format!(
            "commit {} is not within depth {submodules_depth}",
            self.recorded
        );
        assert!(
            err.starts_with("submodule lib: ") && err.contains(&beyond),
            "{err}"
        );
        err
    }

    /// Fails unless the workspace's `lib` is a shallow, clean, sound checkout of the recorded
    /// commit ("5") holding `commits` commits; returns `lib`'s path.
    #[track_caller]
    fn assert_recorded(&self, ws: &Path, commits_held: usize) -> PathBuf {
        let lib = ws.join("lib");
        assert_eq!(git(&lib, &["rev-parse", "HEAD"]), self.recorded);
        assert_eq!(std::fs::read_to_string(lib.join("lib.txt")).unwrap(), "5\n");
        assert_eq!(commits(&lib), commits_held);
        assert!(shallow(&lib));
        assert_eq!(git(ws, &["status", "--porcelain"]), "");
        git(&lib, &["fsck", "--no-progress", "--no-dangling"]);
        lib
    }
}

#[test]
fn submodules_depth_fetches_the_recorded_commit_by_id_from_a_remote() {
    let Some(s) = SubmoduleServed::start(1, true) else {
        return;
    };
    assert_ne!(s.recorded, s.tip);

    let ws = s.workspace(1).unwrap();
    let lib = s.assert_recorded(&ws, 1);
    // Asked for by id, not by HEAD: the server's tip was never fetched.
    assert!(!has_object(&lib, &s.tip), "the submodule's tip was fetched");
    assert_eq!(
        git(&lib, &["remote", "get-url", "origin"]),
        s.daemon.url("lib")
    );
    let status = git(&ws, &["submodule", "status"]);
    assert!(
        status.starts_with(&s.recorded) && !status.contains(['-', '+']),
        "not clean at the recorded commit: {status}"
    );
}

#[test]
fn submodules_depth_falls_back_to_the_remote_head_when_fetch_by_id_is_refused() {
    // The recorded commit is one behind the server's HEAD.
    let Some(s) = SubmoduleServed::start(1, false) else {
        return;
    };

    // Depth 3 from HEAD holds the recorded commit and its parent.
    let ws = s.workspace(3).unwrap();
    let lib = s.assert_recorded(&ws, 2);
    assert!(has_object(&lib, &s.tip), "HEAD was not what was fetched");

    // Depth 1 from HEAD does not reach it.
    s.assert_not_within(1);
}

#[test]
fn submodules_depth_errors_naming_the_submodule_when_the_recorded_commit_is_beyond_it() {
    // The recorded commit is three behind the server's HEAD, which refuses fetches by id.
    let Some(s) = SubmoduleServed::start(3, false) else {
        return;
    };
    let err = s.assert_not_within(1);
    assert!(err.contains(&s.daemon.url("lib")), "{err}");
    // Within depth 4 of HEAD it is found again.
    let ws = s.workspace(4).unwrap();
    assert_eq!(git(&ws.join("lib"), &["rev-parse", "HEAD"]), s.recorded);
    assert_eq!(commits(&ws.join("lib")), 1);
}

/// Checks `commit` of `spec` out from `mirrors` after [`Mirrors::ensure`], as a job does.
fn ensured_checkout(mirrors: &Mirrors, origin: &Origin, spec: &NewBuild, commit: &str, ws: &Path) {
    let url = origin.url();
    let cancel = CancellationToken::new();
    mirrors.ensure(spec, commit, &url, None, &cancel).unwrap();
    let remote = Remote {
        url: &url,
        token: None,
        served: &NoTokens,
    };
    mirrors
        .checkout(REPO, commit, ws, &Git::default(), remote, &cancel)
        .unwrap();
}

/// Machines sharing a store keep mirrors of their own: a job claimed on one that did not prepare
/// its build fetches the pushed commit, and merges a pull request again into the same commit
/// even after its base moved on.
#[test]
fn a_job_on_another_machine_checks_out_the_commit_its_build_was_prepared_at() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let preparer = Mirrors::new(tmp.path().join("preparer"));
    let other = Mirrors::new(tmp.path().join("other"));
    let cancel = CancellationToken::new();

    // A push prepared on one machine, its job run on the other, whose mirror has nothing yet.
    let pushed = origin.push_master("pushed.txt", "pushed\n");
    let spec = push_spec(&origin.url(), &pushed);
    let sources = preparer
        .prepare(1, &spec, &origin.url(), None, &cancel)
        .unwrap();
    let ws = tmp.path().join("ws-push");
    ensured_checkout(&other, &origin, &spec, &sources.commit, &ws);
    assert_eq!(git(&ws, &["rev-parse", "HEAD"]), pushed);

    // A pull request merged on one machine; the base moves twice before the job runs elsewhere.
    let head = origin.pull_request(3, "master", "feature.txt", "a feature\n");
    let base = origin.push_master("other.txt", "master moved on\n");
    let spec = NewBuild {
        head_sha: head.clone(),
        head_ref: "refs/pull/3/head".into(),
        base_ref: Some("refs/heads/master".into()),
        ..push_spec(&origin.url(), &head)
    };
    let merged = preparer
        .prepare(2, &spec, &origin.url(), None, &cancel)
        .unwrap()
        .commit;
    assert_ne!(merged, head, "a real merge");
    origin.push_master("later.txt", "after the preparation\n");
    origin.push_master("later.txt", "and again\n");
    let ws = tmp.path().join("ws-pr");
    ensured_checkout(&other, &origin, &spec, &merged, &ws);
    assert_eq!(git(&ws, &["rev-parse", "HEAD"]), merged);
    assert_eq!(git(&ws, &["rev-parse", "HEAD^1"]), base);
    assert!(ws.join("feature.txt").exists() && !ws.join("later.txt").exists());

    // A commit that neither the remote has nor a merge makes is an error, not a guess.
    let nowhere = "0123456789abcdef0123456789abcdef01234567";
    let err = other
        .ensure(&spec, nowhere, &origin.url(), None, &cancel)
        .unwrap_err();
    assert!(err.to_string().contains(nowhere), "{err}");
}
