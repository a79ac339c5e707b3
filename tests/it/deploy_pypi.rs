//! `slipway run` with a `pypi` deploy, end to end: the job (in the `debian-python` test image)
//! builds the project's sdist and wheel with `python setup.py sdist bdist_wheel` as dpl does, the
//! deploy uploads them to a real package index (pypiserver, `scripts/services.sh start`) with a
//! `secure:` password, and pip then installs the package from that index. The same through `slipway
//! serve`, whose `[endpoints] pypi` names the index the pipeline does not. The password is never
//! shown. Under CI=true a missing engine, image or index fails.

use std::path::Path;
use std::process::Command;

use crate::serve::{FakeGitHub, Origin, REPO, Served, git, github_api};
use crate::support::{ci, encrypt, succeeded, text};

const IMAGE: &str = "slipway-test/debian-python:latest";

fn venv() -> std::path::PathBuf {
    std::env::var("SLIPWAY_VENV")
        .unwrap_or_else(|_| "/var/tmp/slipway-venv".into())
        .into()
}

/// The index and its account, when the image and the index are there; else skips (fails under CI).
fn ready() -> Option<(String, String, String)> {
    let image = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    let index = std::env::var("SLIPWAY_TEST_PYPI").ok().filter(|u| {
        crate::support::http("GET", u, "/simple/").is_some_and(|(status, _)| status == 200)
    });
    let auth = std::env::var("SLIPWAY_TEST_PYPI_AUTH").ok();
    match (
        image,
        index,
        auth.as_deref().and_then(|a| a.split_once(':')),
    ) {
        (true, Some(index), Some((user, password))) => {
            Some((index, user.to_owned(), password.to_owned()))
        }
        _ => {
            assert!(
                !ci(),
                "{IMAGE} (scripts/test-images.sh) and the package index at $SLIPWAY_TEST_PYPI (scripts/services.sh start) are needed (CI=true)"
            );
            eprintln!("skipped: {IMAGE} or the package index ($SLIPWAY_TEST_PYPI) missing");
            None
        }
    }
}

/// A project named uniquely (the index keeps what earlier runs uploaded): its name and module.
fn unique_project() -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("slipway-e2e-{}-{nanos}", std::process::id());
    let module = name.replace('-', "_");
    (name, module)
}

/// The project's files (a `setup.py` and its module) written into `dir`.
fn write_project(dir: &Path, name: &str, module: &str) {
    std::fs::write(
        dir.join("setup.py"),
        format!(
            "from setuptools import setup\nsetup(name={name:?}, version='2.1.0', py_modules=[{module:?}], description='Built by Slipway')\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{module}.py")),
        "VALUE = 'from the index'\n",
    )
    .unwrap();
}

/// The pipeline: the job imports the module, the deploy builds an sdist and a wheel and uploads
/// them as `user` with the `secure:` password; `server` is the option's line, if any.
fn pipeline(module: &str, server: &str, user: &str, secure: &str) -> String {
    format!(
        r#"image: "{IMAGE}"
language: shell
script: python3 -c "import {module}; print({module}.VALUE)"
deploy:
  provider: pypi
{server}  user: {user}
  password:
    secure: "{secure}"
  distributions: sdist bdist_wheel
  on:
    branch: main
"#
    )
}

/// The deploy's log says it built and uploaded both distributions, and pip installs the package
/// from the index: the wheel the job built, which imports.
fn assert_uploaded_and_installable(log: &str, index: &str, name: &str, module: &str) {
    assert!(
        log.contains("pypi: python3 setup.py sdist bdist_wheel"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Deploy finished: uploaded 2 of 2 distribution(s) to {index}/"
        )),
        "{log}"
    );
    let target = tempfile::tempdir().unwrap();
    let pip = Command::new(venv().join("bin/pip"))
        .args(["install", "-q", "--no-deps", "--disable-pip-version-check"])
        .args(["--index-url", &format!("{index}/simple/"), "--target"])
        .arg(target.path())
        .arg(format!("{name}==2.1.0"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", text(&pip));
    let imported = Command::new(venv().join("bin/python"))
        .args(["-c", &format!("import {module}; print({module}.VALUE)")])
        .env("PYTHONPATH", target.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&imported.stdout).trim(),
        "from the index",
        "{}",
        text(&imported)
    );
    // pip took the wheel the job built (a wheel wins over an sdist).
    assert!(
        std::fs::read_dir(target.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".dist-info")),
        "no wheel metadata installed"
    );
}

#[test]
fn a_push_uploads_the_package_the_job_built_and_pip_installs_it_from_the_index() {
    let Some((index, user, password)) = ready() else {
        return;
    };
    let (name, module) = unique_project();
    let data = tempfile::tempdir().unwrap();
    let repo = "acme/pkg";
    let secure = encrypt(data.path(), repo, &format!("PYPI_PASSWORD={password}"));
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), &name, &module);
    std::fs::write(
        dir.path().join(".slipway.yml"),
        pipeline(&module, &format!("  server: {index}/\n"), &user, &secure),
    )
    .unwrap();
    crate::support::commit_all(dir.path(), "a package");

    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir.path())
        .args(["--branch", "main", "--repo", repo])
        .env("SLIPWAY_DATA_DIR", data.path())
        .output()
        .unwrap();
    let log = succeeded(&out, &[]);
    assert!(!log.contains(&password), "{log}");
    assert_uploaded_and_installable(&log, &index, &name, &module);
}

/// The same through `slipway serve`, the index named only by the server's `[endpoints] pypi`.
#[test]
fn serve_uploads_to_its_configured_index_and_pip_installs_it() {
    let Some((index, user, password)) = ready() else {
        return;
    };
    let (name, module) = unique_project();
    let tmp = tempfile::tempdir().unwrap();
    let secure = encrypt(
        &tmp.path().join("data"),
        REPO,
        &format!("PYPI_PASSWORD={password}"),
    );
    let origin = Origin::new(tmp.path(), &pipeline(&module, "", &user, &secure));
    write_project(&origin.work, &name, &module);
    git(&origin.work, &["checkout", "-q", "-b", "main"]);
    git(&origin.work, &["add", "."]);
    git(&origin.work, &["commit", "-q", "-m", "a package"]);
    git(&origin.work, &["push", "-q", "origin", "main"]);
    let sha = git(&origin.work, &["rev-parse", "HEAD"]);
    let server = Served::new(
        tmp.path(),
        &github_api(&FakeGitHub::default()),
        &origin.url(),
        &format!("workers = 1\n[endpoints]\npypi = \"{index}/\""),
    );
    let ended = server.push(&origin, "refs/heads/main", &sha, "pypi-push");
    let log = ended.expect("passed", &[]);
    assert!(!log.contains(&password), "{log}");
    assert_uploaded_and_installable(log, &index, &name, &module);
}
