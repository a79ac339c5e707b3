//! Real pipelines' job environment, end to end in real containers: `sudo` in root jobs of images
//! without it, `addons:` applied before `before_install` (APT from a local signed repository,
//! hosts), add-ons a container cannot honour named in the log, and jobs for another OS planned
//! but not run here. Under CI=true a missing engine, image or tool fails.

use std::path::Path;
use std::process::Command;

use crate::util::*;
use sha2::{Digest, Sha256};
use slipway_pipelines::plan::PhaseName;
use slipway_runner::{BuildResult, JobResult};

/// The Debian test image without APT sources: no test may reach a registry, so the only source
/// a job has is the one its pipeline adds.
fn offline_debian() -> Option<String> {
    let tag = "slipway-test/debian-offline:latest".to_string();
    let dockerfile = format!(
        "FROM {}\nRUN rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*\n",
        debian()
    );
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(dockerfile.as_bytes())?;
            child.wait_with_output()
        });
    match out {
        Ok(o) if o.status.success() => Some(tag),
        Ok(o) => {
            missing(&format!(
                "building {tag}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            None
        }
        Err(e) => {
            missing(&format!("docker CLI: {e}"));
            None
        }
    }
}

fn run_tool(dir: &Path, program: &str, args: &[&str], gnupg: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GNUPGHOME", gnupg)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// A `.deb` whose `/usr/bin/NAME` prints `says`.
fn deb(repo: &Path, name: &str, says: &str, gnupg: &Path) -> Result<String, String> {
    let root = repo.join(format!("{name}-build"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: Slipway tests <t@example.invalid>\nDescription: {name} test package\n"
        ),
    )
    .unwrap();
    let bin = root.join("usr/bin").join(name);
    std::fs::write(&bin, format!("#!/bin/sh\necho '{says}'\n")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = format!("{name}_1.0_all.deb");
    run_tool(
        repo,
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            &format!("{name}-build"),
            &file,
        ],
        gnupg,
    )?;
    std::fs::remove_dir_all(&root).unwrap();
    let bytes = std::fs::read(repo.join(&file)).unwrap();
    let control = String::from_utf8(run_tool(repo, "dpkg-deb", &["-f", &file], gnupg)?).unwrap();
    Ok(format!(
        "{}Filename: ./{file}\nSize: {}\nSHA256: {}\n\n",
        control,
        bytes.len(),
        hex::encode(Sha256::digest(&bytes))
    ))
}

/// A flat APT repository in `repo` with two packages, its `InRelease` signed by a key made for
/// the test and exported to `repo/key.asc`; `Err` names the tool that is missing or failed.
fn signed_repository(repo: &Path) -> Result<(), String> {
    std::fs::create_dir_all(repo).unwrap();
    let gnupg = tempfile::tempdir().unwrap();
    let g = gnupg.path();
    let mut packages = deb(
        repo,
        "slipway-hello",
        "hello from the local apt repository",
        g,
    )?;
    packages.push_str(&deb(
        repo,
        "slipway-other",
        "installed with sudo apt-get",
        g,
    )?);
    std::fs::write(repo.join("Packages"), &packages).unwrap();
    let release = format!(
        "Origin: slipway-test\nLabel: slipway-test\nSuite: ./\nDate: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n {} {} Packages\n",
        hex::encode(Sha256::digest(packages.as_bytes())),
        packages.len()
    );
    std::fs::write(repo.join("Release"), release).unwrap();
    run_tool(
        repo,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Slipway Test <t@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        g,
    )?;
    let key = run_tool(repo, "gpg", &["--batch", "--armor", "--export"], g)?;
    std::fs::write(repo.join("key.asc"), key).unwrap();
    run_tool(
        repo,
        "gpg",
        &["--batch", "--clearsign", "-o", "InRelease", "Release"],
        g,
    )?;
    Ok(())
}

#[tokio::test]
async fn sudo_runs_as_root_in_images_without_it_and_an_images_own_sudo_is_left_alone() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A job that brings its own `sudo` (first on PATH) keeps it.
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::write(
        dir.path().join("bin/sudo"),
        "#!/bin/sh\necho \"own sudo: $*\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.path().join("bin/sudo"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let ctx = context("acme/app", "master");
    let build_dir = slipway_runner::runner::build_dir("/home/travis/build", &ctx.repo);
    let ws = slipway_runner::workspace::pack(dir.path(), &build_dir).unwrap();
    let plan = plan(
        r#"
image: "{busybox}"
jobs:
  include:
    - name: shim
      script:
        - sudo id -u
        - sudo -E -H -n -- sh -c 'echo "as $(id -u) with GREETING=$GREETING"'
        - sudo -u root echo user-root
        - sudo -EH true && echo combined-flags
        - sudo GREETING=assigned sh -c 'echo "$GREETING"'
        - sudo -Z true
    - name: own
      env: PATH=$TRAVIS_BUILD_DIR/bin:$PATH
      script: sudo apt-get install something
env:
  global: GREETING=kept
"#,
        &ctx,
    );
    let ran = run(exec, options(), &plan, Some(&ws), None).await;
    let shim = ran.log(1);
    assert_eq!(ran.job(1).result, JobResult::Failed, "{shim}");
    let script = &ran.job(1).phase(PhaseName::Script).unwrap().commands;
    let codes: Vec<_> = script.iter().map(|c| c.exit_code).collect();
    assert_eq!(
        codes,
        [Some(0), Some(0), Some(0), Some(0), Some(0), Some(1)],
        "{shim}"
    );
    assert!(shim.contains("\n0\n"), "{shim}");
    assert!(shim.contains("as 0 with GREETING=kept"), "{shim}");
    assert!(shim.contains("user-root"), "{shim}");
    assert!(shim.contains("combined-flags"), "{shim}");
    assert!(shim.contains("\nassigned\n"), "{shim}");
    assert!(
        shim.contains("sudo (Slipway): unsupported option -Z"),
        "{shim}"
    );
    let own = ran.log(2);
    assert_eq!(ran.job(2).result, JobResult::Passed, "{own}");
    assert!(own.contains("own sudo: apt-get install something"), "{own}");
}

#[tokio::test]
async fn sudo_u_runs_a_command_as_another_user_in_a_root_job() {
    let yaml = r#"
image: "{debian}"
language: shell
script:
  - test "$(sudo -u nobody id -un)" = nobody
  - test "$(sudo -n -u root -- id -un)" = root
  - sudo -u nobody sh -c 'touch /root/not-allowed'
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    let log = ran.log(1);
    let codes: Vec<_> = ran
        .job(1)
        .phase(PhaseName::Script)
        .unwrap()
        .commands
        .iter()
        .map(|c| c.exit_code)
        .collect();
    assert_eq!(codes, [Some(0), Some(0), Some(1)], "{log}");
    assert!(log.contains("Permission denied"), "{log}");
}

#[tokio::test]
async fn the_apt_addon_adds_a_signed_source_and_installs_its_packages_and_sudo_apt_get_works() {
    let Some(exec) = engine(&[&debian()]).await else {
        return;
    };
    let Some(image) = offline_debian() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if let Err(e) = signed_repository(&dir.path().join("repo")) {
        missing(&format!("a signed APT repository for the test: {e}"));
        return;
    }
    let ctx = context("acme/app", "master");
    let build_dir = slipway_runner::runner::build_dir("/home/travis/build", &ctx.repo);
    let ws = slipway_runner::workspace::pack(dir.path(), &build_dir).unwrap();
    let yaml = format!(
        r#"
image: "{image}"
addons:
  apt:
    sources:
      - sourceline: "deb file:{build_dir}/repo ./"
        key_url: "file://{build_dir}/repo/key.asc"
    packages:
      - slipway-hello
  hosts:
    - db.example.test
    - cache.example.test
  homebrew:
    packages: [wget]
before_install: echo before-install-ran
script:
  - slipway-hello
  - sudo apt-get install -y slipway-other && slipway-other
  - getent ahostsv4 db.example.test
  - getent ahostsv4 cache.example.test
"#
    );
    let plan = slipway_pipelines::plan(".travis.yml", yaml.as_bytes(), &ctx).unwrap();
    let ran = run(exec, options(), &plan, Some(&ws), None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert!(
        log.contains("travis_fold:start:addons.apt"),
        "its own fold: {log}"
    );
    let added = log.find("sudo tee -a /etc/apt/sources.list.d/").expect(log);
    let installed = log.find("hello from the local apt repository").expect(log);
    let before_install = log.find("before-install-ran").expect(log);
    assert!(
        added < before_install && before_install < installed,
        "addons run before before_install: {log}"
    );
    assert!(
        log.contains("--no-install-recommends") && log.contains("install 'slipway-hello'"),
        "{log}"
    );
    assert_log_has(
        log,
        &[
            "installed with sudo apt-get",
            "127.0.0.1       STREAM db.example.test",
            "127.0.0.1       STREAM cache.example.test",
            "addons.homebrew is skipped: Homebrew is the macOS package manager",
        ],
    );
}

#[tokio::test]
async fn a_failing_apt_addon_errors_the_job_naming_the_addon() {
    let Some(exec) = engine(&[&busybox(), &debian()]).await else {
        return;
    };
    let Some(image) = offline_debian() else {
        return;
    };
    let ctx = context("acme/app", "master");
    let plan = plan(
        &format!(
            r#"
jobs:
  include:
    - image: "{{busybox}}"
      addons:
        apt:
          packages: [curl]
      script: echo must-not-run
    - image: "{image}"
      addons:
        apt:
          packages: [no-such-package-anywhere]
      script: echo must-not-run
"#
        ),
        &ctx,
    );
    let ran = run(exec, options(), &plan, None, None).await;
    assert_eq!(ran.outcome.result, BuildResult::Errored);
    for job in [1, 2] {
        let log = ran.log(job);
        assert_eq!(ran.job(job).result, JobResult::Errored, "{log}");
        assert!(!log.contains("\nmust-not-run"), "{log}");
        assert!(
            ran.job(job)
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("addons.apt: ")),
            "{:?}",
            ran.job(job).reason
        );
    }
    assert!(
        ran.log(1)
            .contains("has no apt-get; addons.apt needs a Debian or Ubuntu image"),
        "{}",
        ran.log(1)
    );
    assert!(
        ran.log(2)
            .contains("installing no-such-package-anywhere failed"),
        "{}",
        ran.log(2)
    );
}

#[tokio::test]
async fn an_os_matrix_runs_linux_jobs_and_reports_osx_jobs_as_not_run_here_and_the_build_passes() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let ctx = context("acme/app", "master");
    let plan = plan(
        r#"
image: "{busybox}"
os: [linux, osx]
env: [A=1, A=2]
script: echo "running on $TRAVIS_OS_NAME"
"#,
        &ctx,
    );
    let oses: Vec<_> = plan.stages[0]
        .jobs
        .iter()
        .map(|j| j.matrix["os"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(oses, ["linux", "linux", "osx", "osx"]);
    let ran = run(exec.clone(), options(), &plan, None, None).await;
    assert_eq!(ran.outcome.result, BuildResult::Passed);
    for n in [1, 2] {
        assert_eq!(ran.job(n).result, JobResult::Passed, "{}", ran.log(n));
        ran.assert_log_contains(n, "running on linux");
    }
    for n in [3, 4] {
        let log = ran.log(n);
        assert_eq!(ran.job(n).result, JobResult::NotRun, "{log}");
        assert!(!log.contains("running on"), "{log}");
        assert!(
            log.contains("This job is not run here: os: osx needs a macOS machine"),
            "{log}"
        );
        assert!(
            ran.job(n)
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("[os_images]"))
        );
    }

    // Mapped by the operator, the osx jobs run in the image given.
    let mut options = options();
    options.hosting.os_images.insert("osx".into(), busybox());
    let ran = run(exec, options, &plan, None, None).await;
    assert_eq!(ran.outcome.result, BuildResult::Passed);
    assert_eq!(ran.job(3).result, JobResult::Passed, "{}", ran.log(3));
    ran.assert_log_contains(3, "running on osx");
    ran.assert_log_contains(3, "as the operator configured");
}

#[tokio::test]
async fn a_failed_linux_job_still_fails_a_build_with_jobs_not_run_here() {
    let yaml = r#"
image: "{busybox}"
os: [linux, windows]
script: "false"
"#;
    let Some(ran) = run_yaml(yaml, options()).await else {
        return;
    };
    assert_eq!(ran.job(1).result, JobResult::Failed);
    assert_eq!(ran.job(2).result, JobResult::NotRun);
    assert_eq!(ran.outcome.result, BuildResult::Failed);
}
