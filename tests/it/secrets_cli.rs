//! `slipway secrets …` end to end: the binary, a temporary data dir, and the real `openssl`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn slipway(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.arg("secrets")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("SLIPWAY_DATA_DIR")
        .current_dir(data_dir.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn have_openssl() -> bool {
    if Command::new("openssl").arg("version").output().is_ok() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("`openssl` is not installed and CI=true: apt-get install -y openssl");
    }
    eprintln!("skipped: `openssl` is not installed (set CI=true to make this a failure)");
    false
}

#[test]
fn encrypt_file_travis_output_runs_unchanged_with_the_stored_variables() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let original = b"{\"type\": \"service_account\"}\n".repeat(50);
    std::fs::write(dir.path().join("service-account.json"), &original).unwrap();

    let out = ok(slipway(
        &data,
        &[
            "encrypt-file",
            "--travis",
            "service-account.json",
            "--repo",
            "octo/app",
        ],
        None,
    ));
    let line = out.lines().last().unwrap().trim();
    let command = line.strip_prefix("- ").unwrap();
    let id = command
        .strip_prefix("openssl aes-256-cbc -K $encrypted_")
        .and_then(|rest| rest.split_once("_key"))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("{out}"));
    let redacted = out.replace(&id, "<id>");
    assert_eq!(
        redacted,
        "Wrote service-account.json.enc; its key and IV are the settings variables \
         encrypted_<id>_key and encrypted_<id>_iv of octo/app.\n\
         Commit service-account.json.enc, not service-account.json, and add to before_install:\n\
         \n  - openssl aes-256-cbc -K $encrypted_<id>_key -iv $encrypted_<id>_iv \
         -in service-account.json.enc -out service-account.json -d\n"
    );
    assert_eq!(
        ok(slipway(&data, &["list", "--repo", "octo/app"], None)),
        format!("encrypted_{id}_iv\nencrypted_{id}_key\n")
    );

    // The job's shell: the settings variables exported, the line run as written.
    std::fs::remove_file(dir.path().join("service-account.json")).unwrap();
    let store = slipway_secrets::SecretStore::new(&data);
    let repo = slipway_secrets::RepoSlug::parse("octo/app").unwrap();
    let mut shell = Command::new("sh");
    shell.arg("-ec").arg(command).current_dir(dir.path());
    for (name, value) in store.vars(&repo).unwrap() {
        shell.env(name, value.expose());
    }
    let status = shell.status().unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(dir.path().join("service-account.json")).unwrap(),
        original
    );
}

#[test]
fn encrypt_file_prints_the_pipeline_snippet_and_the_key_command_the_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("key.json"), b"{}").unwrap();
    let recipient = ok(slipway(&data, &["key", "--repo", "octo/app"], None));
    assert!(
        recipient.starts_with("age1") && recipient.ends_with('\n'),
        "{recipient}"
    );
    let recipient = recipient.trim();

    let out = ok(slipway(
        &data,
        &["encrypt-file", "key.json", "--repo", "octo/app"],
        None,
    ));
    assert_eq!(
        out.replace(recipient, "<recipient>"),
        "Wrote key.json.age (encrypted to <recipient>).\n\
         Commit key.json.age, not key.json, and add to .slipway.yml:\n\
         \n\
         secrets:\n  files:\n    - key.json.age\n"
    );
    assert!(dir.path().join("key.json.age").exists());

    let bad = slipway(
        &data,
        &["encrypt-file", "key.json", "--recipient", "age1nope"],
        None,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown recipient `age1nope`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let missing = slipway(
        &data,
        &["encrypt-file", "nope.json", "--repo", "octo/app"],
        None,
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.json does not exist"));
}

#[test]
fn encrypt_prints_a_secure_value_the_library_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(slipway(
        &data,
        &["encrypt", "TOKEN=abc=def", "--repo", "octo/app"],
        None,
    ));
    let secure = out
        .trim()
        .strip_prefix("secure: \"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap();
    let keys = slipway_secrets::SecretStore::new(&data)
        .keyring(&slipway_secrets::RepoSlug::parse("octo/app").unwrap())
        .unwrap();
    let (name, value) = keys.decrypt_env(secure).unwrap();
    assert_eq!(
        (name.as_str(), value.expose().as_str()),
        ("TOKEN", "abc=def")
    );

    // NAME alone: the value comes from standard input.
    let out = ok(slipway(
        &data,
        &["encrypt", "PASSWORD", "--repo", "octo/app"],
        Some("from stdin\n"),
    ));
    let secure = out.trim().strip_prefix("secure: ").unwrap();
    assert_eq!(keys.decrypt_value(secure).unwrap().expose(), "from stdin");
}

#[test]
fn settings_variables_are_set_listed_by_name_and_unset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(slipway(
        &data,
        &["set", "--repo", "octo/app", "API_TOKEN", "t0ps3cret"],
        None,
    ));
    ok(slipway(
        &data,
        &["set", "--repo", "octo/app", "DB_PASSWORD"],
        Some("hunter22\n"),
    ));
    let listed = ok(slipway(&data, &["list", "--repo", "octo/app"], None));
    assert_eq!(listed, "API_TOKEN\nDB_PASSWORD\n");
    ok(slipway(
        &data,
        &["unset", "--repo", "octo/app", "API_TOKEN"],
        None,
    ));
    assert_eq!(
        ok(slipway(&data, &["list", "--repo", "octo/app"], None)),
        "DB_PASSWORD\n"
    );
    let again = slipway(&data, &["unset", "--repo", "octo/app", "API_TOKEN"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("API_TOKEN is not set for octo/app"));

    let old = ok(slipway(&data, &["key", "--repo", "octo/app"], None));
    let new = ok(slipway(&data, &["rotate", "--repo", "octo/app"], None));
    assert_ne!(old, new);
    assert_eq!(
        ok(slipway(&data, &["key", "--repo", "octo/app"], None)),
        new
    );
    assert_eq!(
        ok(slipway(&data, &["list", "--repo", "octo/app"], None)),
        "DB_PASSWORD\n"
    );
}
