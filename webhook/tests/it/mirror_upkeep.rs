//! Mirror upkeep: after many fetches a mirror is repacked into few packs and its refs packed,
//! every build ref still names its commit, and later preparations and checkouts still work; with
//! no git CLI the refs are packed and nothing fails; the server compacts after preparing.

use crate::util::*;
use slipway_pipelines::plan::Git;
use slipway_webhook::event::NewBuild;
use slipway_webhook::git::{Mirrors, Remote, Upkeep};
use slipway_webhook::testing::ScriptedJobRunner;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/app";

fn pr_spec(origin: &Origin, n: u64, sha: &str) -> NewBuild {
    NewBuild {
        head_ref: format!("refs/pull/{n}/head"),
        base_ref: Some("refs/heads/master".into()),
        ..push_spec(&origin.url(), sha)
    }
}

fn packs(mirror: &Path) -> usize {
    std::fs::read_dir(mirror.join("objects/pack"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".pack")
        })
        .count()
}

fn loose_build_refs(mirror: &Path) -> usize {
    match std::fs::read_dir(mirror.join("refs/slipway/builds")) {
        Ok(dir) => dir.count(),
        Err(_) => 0,
    }
}

/// Pushes `n` commits to master, preparing a build (ids from 1) after each and running upkeep
/// as the server does; returns each build's commit.
fn push_and_prepare(origin: &Origin, mirrors: &Mirrors, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let sha = origin.push_master("counter.txt", &format!("{i}\n"));
            let src = mirrors
                .prepare(
                    i as i64,
                    &push_spec(&origin.url(), &sha),
                    &origin.url(),
                    None,
                    &CancellationToken::new(),
                )
                .unwrap();
            assert_eq!(src.commit, sha);
            mirrors.upkeep(REPO).unwrap();
            src.commit
        })
        .collect()
}

fn assert_build_refs(mirror: &Path, commits: &[String]) {
    let repo = git2::Repository::open_bare(mirror).unwrap();
    for (i, sha) in commits.iter().enumerate() {
        let name = format!("refs/slipway/builds/{}", i + 1);
        assert_eq!(
            repo.refname_to_id(&name).unwrap().to_string(),
            *sha,
            "{name}"
        );
        assert_eq!(git(mirror, &["rev-parse", &name]), *sha, "{name} (git)");
    }
}

/// A pull request prepared (merged) after the pushes, then checked out shallow and whole.
fn pr_checks_out(root: &Path, origin: &Origin, mirrors: &Mirrors, build_id: i64) {
    let head = origin.pull_request(7, "master~1", "feature.txt", "new\n");
    let src = mirrors
        .prepare(
            build_id,
            &pr_spec(origin, 7, &head),
            &origin.url(),
            None,
            &CancellationToken::new(),
        )
        .unwrap();
    assert_ne!(src.commit, head, "a merge commit");
    let url = origin.url();
    for depth in [Some(50), None] {
        let ws: PathBuf = root.join(format!("ws-{depth:?}"));
        let git_settings = Git {
            depth,
            submodules: false,
            ..Git::default()
        };
        mirrors
            .checkout(
                REPO,
                &src.commit,
                &ws,
                &git_settings,
                Remote::anonymous(&url),
                &CancellationToken::new(),
            )
            .unwrap();
        assert_eq!(git(&ws, &["rev-parse", "HEAD"]), src.commit);
        assert_eq!(
            std::fs::read_to_string(ws.join("feature.txt")).unwrap(),
            "new\n"
        );
        assert_eq!(
            std::fs::read_to_string(ws.join("counter.txt")).unwrap(),
            "30\n"
        );
        git(&ws, &["fsck", "--no-dangling", "--connectivity-only"]);
    }
}

#[test]
fn thirty_prepared_pushes_leave_a_compacted_mirror_whose_build_refs_still_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let upkeep = Upkeep {
        max_packs: 8,
        max_loose_refs: 10,
        ..Upkeep::default()
    };
    let mirrors = Mirrors::with_upkeep(tmp.path().join("mirrors"), upkeep);
    let mirror = mirrors.path(REPO);
    let commits = push_and_prepare(&origin, &mirrors, 30);
    // Each fetch adds a pack: 31 without upkeep (the first fetch included), at most 8 with it.
    assert!(packs(&mirror) <= 8, "{} packs", packs(&mirror));
    assert!(
        loose_build_refs(&mirror) <= 10,
        "{} loose build refs",
        loose_build_refs(&mirror)
    );
    let packed = std::fs::read_to_string(mirror.join("packed-refs")).unwrap();
    assert!(packed.contains(" refs/slipway/builds/1\n"), "{packed}");
    assert_build_refs(&mirror, &commits);
    // A pass right now finds nothing to do, and one after a forced repack leaves one pack.
    let forced = Mirrors::with_upkeep(
        tmp.path().join("mirrors"),
        Upkeep {
            max_packs: 1,
            max_loose_refs: 1,
            ..Upkeep::default()
        },
    );
    let report = forced.upkeep(REPO).unwrap();
    if report.packs_before > 1 {
        assert!(report.repacked, "{report:?}");
        assert_eq!(report.packs_after, 1, "{report:?}");
    }
    assert_eq!(loose_build_refs(&mirror), 0);
    assert_build_refs(&mirror, &commits);
    git(&mirror, &["fsck", "--no-dangling", "--connectivity-only"]);
    pr_checks_out(tmp.path(), &origin, &mirrors, 31);
}

#[test]
fn without_the_git_cli_refs_are_still_packed_and_nothing_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let upkeep = Upkeep {
        max_packs: 8,
        max_loose_refs: 10,
        git: tmp.path().join("no-such-git"),
    };
    let mirrors = Mirrors::with_upkeep(tmp.path().join("mirrors"), upkeep);
    let mirror = mirrors.path(REPO);
    let commits = push_and_prepare(&origin, &mirrors, 30);
    let report = mirrors.upkeep(REPO).unwrap();
    assert!(report.git_missing, "{report:?}");
    assert!(!report.repacked, "{report:?}");
    assert!(packs(&mirror) > 8, "not repacked: {} packs", packs(&mirror));
    assert!(loose_build_refs(&mirror) <= 10);
    assert_build_refs(&mirror, &commits);
    pr_checks_out(tmp.path(), &origin, &mirrors, 31);
}

#[test]
fn the_server_compacts_a_mirror_after_preparing_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let data = tmp.path().join("data");
    let mut cfg = config(None);
    cfg.mirrors.max_packs = 3;
    cfg.mirrors.max_loose_refs = 3;
    let h = Harness::start(&data, cfg, Arc::new(ScriptedJobRunner));
    let mut shas = Vec::new();
    for i in 1..=6 {
        let sha = origin.push_master("counter.txt", &format!("{i}\n"));
        let body = push_payload(REPO, &origin.url(), "refs/heads/master", &sha);
        let id = build_of(h.deliver("push", &format!("push-{i}"), &body));
        assert_eq!(h.wait_final(id, 30)["build"]["state"], "passed");
        shas.push((id, sha));
    }
    // Upkeep runs after each preparation without being awaited: wait for the last one.
    let mirror = data.join("mirrors/acme/app.git");
    let deadline = Instant::now() + Duration::from_secs(30);
    while packs(&mirror) > 3 || loose_build_refs(&mirror) > 3 {
        assert!(
            Instant::now() < deadline,
            "not compacted: {} packs, {} loose build refs",
            packs(&mirror),
            loose_build_refs(&mirror)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let repo = git2::Repository::open_bare(&mirror).unwrap();
    for (id, sha) in shas {
        let name = format!("refs/slipway/builds/{id}");
        assert_eq!(repo.refname_to_id(&name).unwrap().to_string(), sha);
    }
    h.stop();
}
