//! The job's build directory on a volume of its own, played as the attacker first: whatever a job
//! does in its workspace (writes, deletes, chmods, links to the user's checkout or to `/`) stays
//! in its volume; the disk limit counts the volume from the runner's side (hard links once, a
//! link never as what it points to); the volume goes with the job, whatever its end, and the sweep
//! removes a dead runner's. An engine the probe turns down gets the old way, unchanged. Under
//! CI=true a missing engine fails.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::util::*;
use slipway_runner::docker::DockerExecutor;
use slipway_runner::executor::owner_label;
use slipway_runner::workspace::pack;
use slipway_runner::{BuildInfo, BuildResult, Executor, JobResult, Runner};

/// Every entry under `dir` with its mode, owner and contents (a link's target), to compare the
/// user's checkout before and after a job.
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let contents = if meta.is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                todo.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, (meta.mode(), meta.uid(), contents));
        }
    }
    out
}

/// The engine, which must put build directories on volumes here (a local socket whose volumes
/// this host can read); `None` when skipped.
async fn volume_engine() -> Option<Arc<DockerExecutor>> {
    let exec = engine(&[&busybox()]).await?;
    if !exec.workspace_volume().await {
        missing("an engine whose volumes this host can read");
        return None;
    }
    Some(exec)
}

const ON_VOLUME: &str = "grep -q \" $TRAVIS_BUILD_DIR \" /proc/mounts && echo build-dir-on-volume || echo build-dir-in-container";

#[tokio::test]
async fn a_job_cannot_reach_the_users_checkout_or_the_host_through_its_workspace() {
    let Some(exec) = volume_engine().await else {
        return;
    };
    let checkout = tempfile::tempdir().unwrap();
    git_repo(checkout.path());
    let host = checkout.path().display().to_string();
    let ctx = context("acme/app", "main");
    let build_dir = slipway_runner::runner::build_dir("/home/travis/build", &ctx.repo);
    let ws = pack(checkout.path(), &build_dir).unwrap();
    let before = snapshot(checkout.path());
    let marker = format!("slipway-escape-{}", std::process::id());
    let attack = plan(
        &format!(
            r#"
image: "{{busybox}}"
script:
  - {ON_VOLUME}
  - echo changed > hello.txt && rm -f uncommitted.txt && chmod 000 .gitignore && rm -rf .git
  - echo planted > planted.txt && chmod 4755 planted.txt
  - ln -s {host} checkout && ln -s / root && ln -s {host}/hello.txt hello-link
  - mkdir -p {host} && echo via-link > checkout/{marker} && echo via-link > hello-link
  - echo via-root > root/tmp/{marker} && echo via-root > root{host}/{marker}
  - sleep 2
  - echo attack-done
"#
        ),
        &ctx,
    );
    // The links (to `/`, to the checkout) stay while the disk watchdog walks the volume: followed,
    // they would count far more than the limit.
    let mut opts = options();
    opts.limits.disk_bytes = 64 << 20;
    opts.disk_check_interval = Duration::from_millis(300);
    let ran = run(exec.clone(), opts.clone(), &attack, Some(&ws), None).await;
    ran.expect(BuildResult::Passed, &["build-dir-on-volume", "attack-done"]);

    assert_eq!(
        snapshot(checkout.path()),
        before,
        "the job changed the checkout"
    );
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "the job wrote the host's /tmp"
    );
    assert!(!checkout.path().join(&marker).exists());

    // The next job starts from the workspace as packed.
    let next = plan(
        r#"
image: "{busybox}"
script:
  - cat hello.txt uncommitted.txt
  - test -r .gitignore && test -d .git && echo intact
  - test ! -e planted.txt && test ! -e checkout && test ! -e root && echo nothing-planted
"#,
        &ctx,
    );
    let ran = run(exec, opts, &next, Some(&ws), None).await;
    ran.expect(
        BuildResult::Passed,
        &[
            "hello from the workspace",
            "local edit",
            "intact",
            "nothing-planted",
        ],
    );
}

#[tokio::test]
async fn writing_past_the_disk_limit_into_the_build_dir_stops_the_job() {
    let Some(exec) = volume_engine().await else {
        return;
    };
    let mut opts = options();
    opts.limits.disk_bytes = 16 << 20;
    opts.disk_check_interval = Duration::from_millis(300);
    let filler = format!(
        "image: \"{{busybox}}\"\nscript:\n  - {ON_VOLUME}\n  - dd if=/dev/zero of=fill bs=1M count=48 2>/dev/null\n  - sleep 30\n  - echo not-stopped\n"
    );
    // A job alone in its container, and a fork's, whose containers are listed together.
    for ctx in [
        context("acme/app", "main"),
        slipway_pipelines::plan::Context {
            event: slipway_pipelines::plan::EventType::PullRequest,
            pull_request: Some(5),
            head_repo: Some("eve/app".into()),
            fork: true,
            ..context("acme/app", "main")
        },
    ] {
        let started = std::time::Instant::now();
        let ran = run(exec.clone(), opts.clone(), &plan(&filler, &ctx), None, None).await;
        let log = ran.expect_job(
            JobResult::Errored,
            &["build-dir-on-volume", "over its disk limit of 16.0 MiB"],
        );
        assert!(!log.contains("not-stopped"), "{log}");
        assert!(started.elapsed() < Duration::from_secs(25), "stopped late");
    }
}

#[tokio::test]
async fn hard_links_count_once_and_a_link_to_a_big_host_file_not_at_all() {
    let Some(exec) = volume_engine().await else {
        return;
    };
    let outside = tempfile::tempdir().unwrap();
    let big = outside.path().join("big");
    std::fs::write(&big, vec![7u8; 64 << 20]).unwrap();
    let mut opts = options();
    opts.limits.disk_bytes = 16 << 20;
    opts.disk_check_interval = Duration::from_millis(300);
    let yaml = format!(
        r#"
image: "{{busybox}}"
script:
  - {ON_VOLUME}
  - dd if=/dev/urandom of=data bs=1M count=10 2>/dev/null
  - for n in 1 2 3 4 5; do ln data link$n; done
  - ln -s {} big && ln -s / root
  - sleep 3
  - echo still-running
"#,
        big.display()
    );
    let ran = run(
        exec,
        opts,
        &plan(&yaml, &context("acme/app", "main")),
        None,
        None,
    )
    .await;
    ran.expect(
        BuildResult::Passed,
        &["build-dir-on-volume", "still-running"],
    );
}

/// The workspace volumes of build `id` the engine lists.
async fn workspace_volumes(exec: &DockerExecutor, id: &str) -> Vec<String> {
    labelled(exec, &format!("dev.slipway.build={id}")).await.2
}

#[tokio::test]
async fn the_volume_goes_with_a_passed_a_failed_and_a_canceled_job() {
    let Some(exec) = volume_engine().await else {
        return;
    };
    for (script, cancel, result) in [
        ("sleep 2", None, BuildResult::Passed),
        ("sleep 2 && false", None, BuildResult::Failed),
        (
            "sleep 60",
            Some(Duration::from_secs(3)),
            BuildResult::Canceled,
        ),
    ] {
        let id = build_id("vol");
        let yaml = format!("image: \"{{busybox}}\"\nscript:\n  - {ON_VOLUME}\n  - {script}\n");
        let watching = {
            let (exec, id) = (exec.clone(), id.clone());
            tokio::spawn(async move {
                for _ in 0..400 {
                    let seen = workspace_volumes(&exec, &id).await;
                    if !seen.is_empty() {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Vec::new()
            })
        };
        let plan = plan(&yaml, &context("acme/app", "main"));
        // `run_as` fails if anything of the build, its volume included, is left.
        let ran = run_as(&id, exec.clone(), options(), &plan, None, cancel).await;
        assert_eq!(ran.outcome.result, result, "{}", ran.log(1));
        let seen = watching.await.unwrap();
        assert_eq!(
            seen.len(),
            1,
            "{script}: the job's volume while it ran: {seen:?}"
        );
        assert!(workspace_volumes(&exec, &id).await.is_empty());
    }
}

#[tokio::test]
async fn the_sweep_removes_a_dead_runners_build_dir_volume() {
    let Some(exec) = volume_engine().await else {
        return;
    };
    let ctx = context("acme/app", "main");
    let plan = plan("image: \"{busybox}\"\nscript: true\n", &ctx);
    let runner = Runner::new(exec.clone(), options());
    let id = build_id("sweep");
    let build = BuildInfo {
        id: id.clone(),
        number: 1,
    };
    let mut spec = runner
        .prepare(&plan, &plan.stages[0].jobs[0], &build, None, None)
        .unwrap()
        .spec;
    // A runner process that is gone: this host, a pid no process has.
    let host = owner_label().rsplitn(3, ':').nth(2).unwrap().to_string();
    spec.owner = format!("{host}:4194304:1");
    exec.setup(&spec, &|_: &str| {}).await.unwrap();
    assert_eq!(workspace_volumes(&exec, &id).await.len(), 1);

    let report = exec.sweep().await.unwrap();
    assert!(
        report.containers.iter().any(|c| c.contains(&id)),
        "{report:?}"
    );
    let left = labelled(&exec, &format!("dev.slipway.build={id}")).await;
    assert_eq!(left, (vec![], vec![], vec![]), "left by the sweep");
}

#[tokio::test]
async fn without_the_volume_the_workspace_is_unpacked_into_the_container_as_before() {
    if engine(&[&busybox()]).await.is_none() {
        return;
    }
    // As an engine the probe turns down (remote, or its volumes out of this host's sight).
    let exec = DockerExecutor::connect().await.unwrap();
    let exec = Arc::new(exec.with_workspace_volume(false));
    let ctx = context("acme/app", "main");
    let ws = git_workspace(&ctx);
    let mut opts = options();
    opts.limits.disk_bytes = 16 << 20;
    opts.disk_check_interval = Duration::from_millis(300);
    let yaml = format!(
        "image: \"{{busybox}}\"\nscript:\n  - {ON_VOLUME}\n  - cat hello.txt uncommitted.txt\n  - test -d .git && echo has-git\n"
    );
    let ran = run(
        exec.clone(),
        opts.clone(),
        &plan(&yaml, &ctx),
        Some(&ws.workspace),
        None,
    )
    .await;
    ran.expect(
        BuildResult::Passed,
        &[
            "build-dir-in-container",
            "hello from the workspace",
            "local edit",
            "has-git",
        ],
    );
    // Writes into the build dir are the container's own: the layer's size still stops the job.
    let filler = "image: \"{busybox}\"\nscript:\n  - dd if=/dev/zero of=fill bs=1M count=48 2>/dev/null\n  - sleep 30\n  - echo not-stopped\n";
    let ran = run(exec, opts, &plan(filler, &ctx), None, None).await;
    let log = ran.expect_job(JobResult::Errored, &["over its disk limit of 16.0 MiB"]);
    assert!(!log.contains("not-stopped"), "{log}");
}
