//! `provider: pypi` against a real Python package index: pypiserver from the test venv
//! (`scripts/services.sh start`), which takes uploads only with its password. An sdist (built by
//! setuptools) and a wheel are uploaded with their metadata, then installed with pip from that
//! index and imported; uploading them again fails unless `skip_existing`; a wrong password fails
//! without showing it.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;
use slipway_providers::{DeployContext, MemorySink, Outcome, run_deploy};

use crate::util::*;

fn venv() -> std::path::PathBuf {
    std::env::var("SLIPWAY_VENV")
        .unwrap_or_else(|_| "/var/tmp/slipway-venv".into())
        .into()
}

/// A project whose `dist/` holds `NAME-VERSION.tar.gz` (setuptools' sdist) and a wheel, the
/// module `MODULE` saying `VALUE = "<version>"`.
fn project(name: &str, module: &str, version: &str) -> Option<tempfile::TempDir> {
    let dir = tree(&[
        (
            "setup.py",
            &format!(
                "from setuptools import setup\nsetup(name={name:?}, version={version:?}, py_modules=[{module:?}], description='A demo', long_description='# Demo\\n\\nIt works.', long_description_content_type='text/markdown')\n"
            ),
        ),
        (&format!("{module}.py"), &format!("VALUE = {version:?}\n")),
    ]);
    let out = Command::new(venv().join("bin/python"))
        .args(["setup.py", "-q", "sdist"])
        .current_dir(dir.path())
        .output()
        .ok()?;
    if !out.status.success() {
        skip_or_fail(&format!(
            "setuptools in the test venv cannot build an sdist: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
        return None;
    }
    wheel(&dir.path().join("dist"), name, module, version);
    Some(dir)
}

/// A pure-Python wheel as the wheel spec lays it out (METADATA, WHEEL, RECORD with hashes).
fn wheel(dist: &Path, name: &str, module: &str, version: &str) {
    let norm = name.replace('-', "_");
    let info = format!("{norm}-{version}.dist-info");
    let files = [
        (format!("{module}.py"), format!("VALUE = {version:?}\n")),
        (
            format!("{info}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: A demo\nClassifier: Programming Language :: Python :: 3\nClassifier: License :: OSI Approved :: MIT License\n\n# Demo\n"
            ),
        ),
        (
            format!("{info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: slipway-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_owned(),
        ),
    ];
    let mut record = String::new();
    let path = dist.join(format!("{norm}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts: zip::write::SimpleFileOptions = Default::default();
    for (p, content) in &files {
        zip.start_file(p.as_str(), opts).unwrap();
        std::io::Write::write_all(&mut zip, content.as_bytes()).unwrap();
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(content.as_bytes()));
        record.push_str(&format!("{p},sha256={hash},{}\n", content.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), opts).unwrap();
    std::io::Write::write_all(&mut zip, record.as_bytes()).unwrap();
    zip.finish().unwrap();
}

fn run(ctx: &DeployContext, options: serde_json::Value) -> (Outcome, Vec<String>) {
    let log = MemorySink::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_deploy(&deploy("pypi", options), ctx, &log));
    (out, log.lines())
}

/// `pip install --target` from `index` (no configuration of the machine's), then the module's
/// `VALUE`.
fn pip_install(index: &str, requirement: &str, module: &str) -> Result<String, String> {
    let target = tempfile::tempdir().unwrap();
    let out = Command::new(venv().join("bin/pip"))
        .args(["install", "-q", "--no-deps", "--disable-pip-version-check"])
        .args(["--index-url", &format!("{index}/simple/"), "--target"])
        .arg(target.path())
        .arg(requirement)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", &format!("import {module}; print({module}.VALUE)")])
        .env("PYTHONPATH", target.path())
        .output()
        .unwrap();
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn distributions_upload_then_install_with_pip_and_again_only_with_skip_existing() {
    let Some((index, user, password)) = pypi() else {
        return;
    };
    let name = unique("slipway-demo");
    let module = name.replace('-', "_");
    let Some(dir) = project(&name, &module, "1.0.0") else {
        return;
    };
    let ctx = context(dir.path());
    let options = |skip: bool| {
        json!({"server": format!("{index}/"), "user": user, "password": password,
               "distributions": "sdist bdist_wheel", "skip_existing": skip})
    };
    let (out, log) = run(&ctx, options(false));
    assert!(matches!(out, Outcome::Deployed(_)), "{out:?}\n{log:#?}");
    let text = log.join("\n");
    assert!(
        text.contains(&format!("uploading {name}-1.0.0.tar.gz ({name} 1.0.0")),
        "{text}"
    );
    assert!(!text.contains(&password), "{text}");

    // Both files are on the index, and pip installs the package from it.
    let simple = crate::util::http_get(&format!("{index}/simple/{name}/"));
    assert!(
        simple.contains(&format!("{name}-1.0.0.tar.gz")) && simple.contains("py3-none-any.whl"),
        "{simple}"
    );
    assert_eq!(
        pip_install(&index, &format!("{name}==1.0.0"), &module).unwrap(),
        "1.0.0"
    );

    // Again: the index has them, which fails the deploy unless skip_existing says otherwise.
    let (out, log) = run(&ctx, options(false));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}\n{log:#?}")
    };
    let message = e.one_line();
    assert!(
        message.starts_with(&format!(
            "pypi: upload of {name}-1.0.0.tar.gz failed: HTTP 409"
        )) && message.ends_with("(skip_existing: true skips files already there)"),
        "{message}"
    );
    let (out, log) = run(&ctx, options(true));
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?}\n{log:#?}")
    };
    assert!(
        summary.starts_with("uploaded 0 of 2 distribution(s)"),
        "{summary}"
    );
}

#[test]
fn a_wrong_password_and_an_empty_dist_fail_without_showing_the_password() {
    let Some((index, user, _)) = pypi() else {
        return;
    };
    let name = unique("slipway-wrong");
    let Some(dir) = project(&name, &name.replace('-', "_"), "0.1.0") else {
        return;
    };
    let ctx = context(dir.path());
    let (out, log) = run(
        &ctx,
        json!({"server": index, "user": user, "password": "not-the-password-9e1"}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    let message = e.one_line();
    assert!(
        message.starts_with(&format!(
            "pypi: upload of {name}-0.1.0.tar.gz failed: HTTP 403: Error: 403 Forbidden"
        )),
        "{message}"
    );
    assert!(
        !message.contains("not-the-password-9e1")
            && !log.join("\n").contains("not-the-password-9e1")
    );
    assert!(pip_install(&index, &format!("{name}==0.1.0"), "x").is_err());

    let empty = tree(&[("setup.py", "")]);
    let (out, _) = run(
        &context(empty.path()),
        json!({"server": index, "password": "x"}),
    );
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.one_line(),
        "pypi: dist/ holds no distribution after `python setup.py sdist`"
    );
    let (out, _) = run(&ctx, json!({"upload_docs": true}));
    let Outcome::Failed(e) = out else {
        panic!("{out:?}")
    };
    assert!(
        e.one_line().contains("PyPI no longer hosts documentation"),
        "{e}"
    );
}
