//! Secrets in real jobs: the fork rule, masking, `.age` files decrypted before `before_install`,
//! nothing decrypted left at rest, Travis-style openssl files, and bad input stopping the job
//! before it starts. Under CI=true a missing engine or test image fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::util::*;
use slipway_pipelines::plan::{Context, EventType};
use slipway_runner::runner::StoreSecrets;
use slipway_runner::workspace::{self, Workspace};
use slipway_runner::{BuildInfo, BuildResult, JobResult, Runner, RunnerOptions};
use slipway_secrets::{RepoSlug, Secret, SecretStore};

const REPO: &str = "acme/secretive";
const BUILD_DIR: &str = "/home/travis/build/acme/secretive";

/// A fresh random value, so a scan can never match an older run's leftovers.
fn random_value(tag: &str) -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).unwrap();
    format!("{tag}-{}", hex::encode(b))
}

/// A data dir with the repository's key, one settings variable, and the values the jobs use.
struct Fixture {
    data: tempfile::TempDir,
    work: tempfile::TempDir,
    store: SecretStore,
    slug: RepoSlug,
    token: String,
    setting: String,
    file_text: String,
    secure_token: String,
}

impl Fixture {
    fn new() -> Fixture {
        let data = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let store = SecretStore::new(data.path());
        let slug = RepoSlug::parse(REPO).unwrap();
        let token = random_value("token");
        let setting = random_value("setting");
        let file_text = format!("{}\n{}\n", random_value("line1"), random_value("line2"));
        store
            .set_var(&slug, "DEPLOY_KEY", &Secret::new(setting.clone()))
            .unwrap();
        let secure_token = store
            .encrypt_value(&slug, "API_TOKEN", &Secret::new(token.clone()))
            .unwrap();
        let plain = work.path().join("creds.txt");
        std::fs::write(&plain, &file_text).unwrap();
        slipway_secrets::encrypt_file(&plain, &store.recipient(&slug).unwrap()).unwrap();
        // Only the encrypted file is committed.
        std::fs::remove_file(&plain).unwrap();
        Fixture {
            data,
            work,
            store,
            slug,
            token,
            setting,
            file_text,
            secure_token,
        }
    }

    /// Every secret byte string a leak would show: values, lines, and their base64 forms.
    fn needles(&self) -> Vec<String> {
        use base64_forms::encode;
        let mut n = vec![self.token.clone(), self.setting.clone()];
        n.extend(self.file_text.lines().map(str::to_string));
        let b64: Vec<String> = n.iter().map(|v| encode(v.as_bytes())).collect();
        n.extend(b64);
        n
    }

    fn options(&self, trusted: bool) -> RunnerOptions {
        RunnerOptions {
            trusted,
            secrets: Some(Arc::new(StoreSecrets(SecretStore::new(self.data.path())))),
            ..options()
        }
    }

    fn pack(&self) -> Workspace {
        workspace::pack(self.work.path(), BUILD_DIR).unwrap()
    }
}

/// Standard base64 without a dependency: enough to look for encoded leaks.
mod base64_forms {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        // Only the full groups: padding differs with the text around the value.
        let full = bytes.len() / 3 * 4;
        out.truncate(full);
        out
    }
}

fn leaks(haystack: &[u8], needles: &[String]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| haystack.windows(n.len()).any(|w| w == n.as_bytes()))
        .cloned()
        .collect()
}

/// Files under `root` (depth-limited, symlinks not followed) holding any needle.
fn scan(root: &Path, needles: &[String], depth: usize, since: Option<SystemTime>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() && depth > 0 {
            found.extend(scan(&e.path(), needles, depth - 1, since));
        } else if meta.is_file() && meta.len() < 64 << 20 {
            if let (Some(s), Ok(m)) = (since, meta.modified())
                && m < s
            {
                continue;
            }
            if let Ok(bytes) = std::fs::read(e.path())
                && !leaks(&bytes, needles).is_empty()
            {
                found.push(e.path());
            }
        }
    }
    found
}

const PIPELINE: &str = r#"
image: "{busybox}"
secrets:
  files:
    - creds.txt.age
env:
  global:
    - secure: "SECURE_TOKEN"
before_install:
  - if [ -f creds.txt ]; then echo "creds before install, mode $(stat -c %a creds.txt)"; else echo "no creds file"; fi
script:
  - echo "secure-env-vars=$TRAVIS_SECURE_ENV_VARS"
  - echo "token=$API_TOKEN"
  - printf %s "$API_TOKEN" | base64
  - echo "setting=$DEPLOY_KEY"
  - env
  - printenv API_TOKEN DEPLOY_KEY || true
  - tr '\0' '\n' < /proc/1/environ
  - cat creds.txt || true
deploy:
  provider: script
  script: echo DEPLOY-RAN
  on:
    all_branches: true
"#;

fn fork_pr_context() -> Context {
    Context {
        event: EventType::PullRequest,
        pull_request: Some(12),
        fork: true,
        head_repo: Some("mallory/secretive".into()),
        head_branch: Some("patch-1".into()),
        ..context(REPO, "master")
    }
}

#[tokio::test]
async fn a_fork_pull_request_gets_no_secrets_no_files_no_settings_and_no_deploy() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let fx = Fixture::new();
    let ctx = fork_pr_context();
    let plan = plan(&PIPELINE.replace("SECURE_TOKEN", &fx.secure_token), &ctx);
    let ws = fx.pack();
    // Trusted runner options: the fork rule must hold by the event alone.
    let opts = fx.options(true);

    // What the container gets: its environment, files and script.
    let runner = Runner::new(exec.clone(), opts.clone());
    let job = &plan.stages[0].jobs[0];
    let build = BuildInfo {
        id: build_id("fork"),
        number: 1,
    };
    let prepared = runner.prepare(&plan, job, &build, Some(&ws), None).unwrap();
    let env_text: String = prepared
        .spec
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    assert!(
        env_text.contains("TRAVIS_SECURE_ENV_VARS=false\n"),
        "{env_text}"
    );
    assert_eq!(
        leaks(env_text.as_bytes(), &fx.needles()),
        Vec::<String>::new()
    );
    for f in &prepared.spec.files {
        assert_eq!(
            leaks(f.contents.expose(), &fx.needles()),
            Vec::<String>::new(),
            "{}",
            f.path
        );
        assert!(
            !f.path.ends_with("/creds.txt"),
            "no decrypted file for a fork"
        );
    }

    let ran = run(exec, opts, &plan, Some(&ws), None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert_eq!(
        leaks(log.as_bytes(), &fx.needles()),
        Vec::<String>::new(),
        "{log}"
    );
    assert!(!log.contains("[secure]"), "nothing to mask: {log}");
    let why = "because this is a pull request from a fork, and secrets go only to trusted builds";
    assert!(
        log.contains(&format!(
            "Settings variables are not exported {why}: DEPLOY_KEY"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Secure variables are unset {why}: (a secure env entry)"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Encrypted files are not decrypted {why}: creds.txt.age"
        )),
        "{log}"
    );
    assert_log_has(
        log,
        &[
            "Deploys do not run for pull requests (this one is from a fork): script",
            "no creds file",
            "secure-env-vars=false",
        ],
    );
    assert!(
        log.contains("token=\n") || log.contains("token=\r\n"),
        "{log}"
    );
    assert!(!log.contains("DEPLOY-RAN"), "{log}");
    assert!(!log.contains("/var/run/docker.sock"), "{log}");
    // The workspace as packed and as left on the host holds no plaintext.
    assert_eq!(
        leaks(&std::fs::read(&ws.tar).unwrap(), &fx.needles()),
        Vec::<String>::new()
    );
    assert_eq!(
        scan(fx.work.path(), &fx.needles(), 8, None),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_fork_pull_request_never_gets_the_docker_engine_even_on_a_trusted_runner() {
    let fx = Fixture::new();
    let exec = slipway_runner::fake::FakeExecutor::new(|_| Default::default());
    let runner = Runner::new(exec, fx.options(true));
    let yaml = "language: shell\nservices: [docker]\nscript: docker ps\n";
    let build = BuildInfo {
        id: build_id("sock"),
        number: 1,
    };
    let fork = plan(yaml, &fork_pr_context());
    let err = runner
        .prepare(&fork, &fork.stages[0].jobs[0], &build, None, None)
        .unwrap_err();
    assert!(err.0.contains("only trusted builds get"), "{err}");
    let push = plan(yaml, &context(REPO, "master"));
    let ok = runner
        .prepare(&push, &push.stages[0].jobs[0], &build, None, None)
        .unwrap();
    assert!(ok.spec.docker_socket);
}

#[tokio::test]
async fn a_trusted_push_gets_its_secrets_masked_and_leaves_nothing_decrypted_at_rest() {
    let Some(exec) = engine(&[&busybox()]).await else {
        return;
    };
    let started = SystemTime::now();
    let fx = Fixture::new();
    let ctx = context(REPO, "master");
    let yaml = PIPELINE
        .replace("SECURE_TOKEN", &fx.secure_token)
        .replace("secrets:", "cache:\n  directories: [deps]\nsecrets:")
        + "after_script: mkdir -p deps && echo cached > deps/stamp\n";
    let plan = plan(&yaml, &ctx);
    let ws = fx.pack();
    let ran = run(exec.clone(), fx.options(true), &plan, Some(&ws), None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert_eq!(
        leaks(log.as_bytes(), &fx.needles()),
        Vec::<String>::new(),
        "{log}"
    );
    assert_log_has(
        log,
        &[
            "creds before install, mode 600",
            "secure-env-vars=true",
            "token=[secure]",
            "setting=[secure]",
        ],
    );
    assert!(
        log.contains("API_TOKEN=[secure]"),
        "env shows it masked: {log}"
    );
    assert_log_has(log, &["DEPLOY_KEY=[secure]", "DEPLOY-RAN"]);
    assert!(!log.contains("are not exported"), "{log}");

    // Nothing at rest: the host workspace, the packed tar, the data dir, the cache volume and
    // the temp files written during the run hold no decrypted byte.
    let needles = fx.needles();
    assert_eq!(
        scan(fx.work.path(), &needles, 8, None),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        scan(fx.data.path(), &needles, 8, None),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        leaks(&std::fs::read(&ws.tar).unwrap(), &needles),
        Vec::<String>::new()
    );
    assert_eq!(
        scan(&std::env::temp_dir(), &needles, 6, Some(started)),
        Vec::<PathBuf>::new()
    );
    let job = &plan.stages[0].jobs[0];
    let volume = slipway_runner::cache::volume_name(
        REPO,
        &slipway_runner::Owner::Branch("master".into()),
        &slipway_runner::cache::job_key(job),
    );
    let docker = exec.client();
    let info = docker.inspect_volume(&volume).await;
    let result = info.as_ref().map(|v| {
        let dir = PathBuf::from(&v.mountpoint);
        (dir.is_dir(), scan(&dir, &needles, 8, None))
    });
    let _ = docker
        .remove_volume(
            &volume,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await;
    let (readable, found) = result.expect("the job saved its cache volume");
    assert!(readable, "cache volume readable on this host");
    assert_eq!(found, Vec::<PathBuf>::new());
}

#[tokio::test]
async fn travis_openssl_files_and_age_cli_files_decrypt_in_a_job() {
    let Some(exec) = engine(&[&debian()]).await else {
        return;
    };
    let fx = Fixture::new();
    // A file made the `travis encrypt-file` way, key and IV as settings variables.
    let json = format!(
        "{{\"type\":\"service_account\",\"key\":\"{}\"}}\n",
        random_value("pk")
    );
    let sa = fx.work.path().join("service-account.json");
    std::fs::write(&sa, &json).unwrap();
    let travis = fx.store.travis_encrypt_file(&fx.slug, &sa).unwrap();
    std::fs::remove_file(&sa).unwrap();
    let id = travis
        .key_var
        .strip_prefix("encrypted_")
        .and_then(|s| s.strip_suffix("_key"))
        .unwrap()
        .to_string();
    // A file encrypted with the age CLI to the repository's recipient.
    let age_text = format!("{}\n", random_value("agecli"));
    let age_plain = fx.work.path().join("from-cli.txt");
    std::fs::write(&age_plain, &age_text).unwrap();
    let recipient = fx.store.recipient(&fx.slug).unwrap().to_string();
    let out = std::process::Command::new("age")
        .arg("-r")
        .arg(&recipient)
        .arg("-o")
        .arg(fx.work.path().join("from-cli.txt.age"))
        .arg(&age_plain)
        .output();
    match out {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            missing(&format!("the age command: {e}"));
            return;
        }
    }
    std::fs::remove_file(&age_plain).unwrap();
    let sha = |t: &str| {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(t.as_bytes()))
    };

    let yaml = format!(
        r#"
image: "{{debian}}"
secrets:
  files: [from-cli.txt.age]
before_install:
  - openssl aes-256-cbc -K $encrypted_{id}_key -iv $encrypted_{id}_iv -in service-account.json.enc -out service-account.json -d
script:
  - sha256sum service-account.json from-cli.txt
"#
    );
    let plan = plan(&yaml, &context(REPO, "master"));
    let ws = fx.pack();
    let ran = run(exec, fx.options(true), &plan, Some(&ws), None).await;
    let log = ran.expect(BuildResult::Passed, &[]);
    assert!(
        log.contains(&format!("{}  service-account.json", sha(&json))),
        "{log}"
    );
    assert!(
        log.contains(&format!("{}  from-cli.txt", sha(&age_text))),
        "{log}"
    );
    assert!(!log.contains(age_text.trim()), "{log}");
}

/// Runs the one-job pipeline `yaml` trusted and returns (result, reason, log).
async fn run_bad(fx: &Fixture, yaml: &str) -> Option<(JobResult, String, String)> {
    let exec = engine(&[&busybox()]).await?;
    let plan = plan(yaml, &context(REPO, "master"));
    let ws = fx.pack();
    let ran = run(exec, fx.options(true), &plan, Some(&ws), None).await;
    let job = ran.job(1);
    Some((
        job.result,
        job.reason.clone().unwrap_or_default(),
        ran.log(1).to_string(),
    ))
}

const BAD_FILE: &str = r#"
image: "{busybox}"
secrets:
  files: [FILE]
before_install: echo BEFORE-INSTALL-RAN
script: echo SCRIPT-RAN
"#;

fn assert_stopped_before_install(result: JobResult, reason: &str, log: &str, names: &str) {
    assert_eq!(result, JobResult::Errored, "{log}");
    assert!(reason.contains(names), "reason {reason:?} names {names}");
    assert!(log.contains(names), "{log}");
    assert!(!log.contains("BEFORE-INSTALL-RAN"), "{log}");
    assert!(!log.contains("SCRIPT-RAN"), "{log}");
}

#[tokio::test]
async fn a_missing_secret_file_errors_the_job_before_before_install_naming_it() {
    let fx = Fixture::new();
    let Some((result, reason, log)) =
        run_bad(&fx, &BAD_FILE.replace("FILE", "missing/creds.json.age")).await
    else {
        return;
    };
    assert_stopped_before_install(result, &reason, &log, "missing/creds.json.age");
    assert!(reason.contains("reading encrypted file"), "{reason}");
}

#[tokio::test]
async fn a_truncated_secret_file_errors_the_job_naming_it() {
    let fx = Fixture::new();
    let full = std::fs::read(fx.work.path().join("creds.txt.age")).unwrap();
    std::fs::write(fx.work.path().join("cut.txt.age"), &full[..full.len() / 2]).unwrap();
    let Some((result, reason, log)) = run_bad(&fx, &BAD_FILE.replace("FILE", "cut.txt.age")).await
    else {
        return;
    };
    assert_stopped_before_install(result, &reason, &log, "decrypting cut.txt.age");
}

#[tokio::test]
async fn a_secret_file_for_another_repository_errors_the_job_naming_it() {
    let fx = Fixture::new();
    let other = RepoSlug::parse("acme/other").unwrap();
    let plain = fx.work.path().join("foreign.txt");
    std::fs::write(&plain, "not for this repository\n").unwrap();
    slipway_secrets::encrypt_file(&plain, &fx.store.recipient(&other).unwrap()).unwrap();
    std::fs::remove_file(&plain).unwrap();
    let Some((result, reason, log)) =
        run_bad(&fx, &BAD_FILE.replace("FILE", "foreign.txt.age")).await
    else {
        return;
    };
    assert_stopped_before_install(result, &reason, &log, "decrypting foreign.txt.age");
}

#[tokio::test]
async fn a_secure_value_that_does_not_decrypt_errors_the_job_quoting_it() {
    let fx = Fixture::new();
    let yaml = r#"
image: "{busybox}"
env:
  global:
    - secure: "bm90IGFuIGFnZSBmaWxl"
before_install: echo BEFORE-INSTALL-RAN
script: echo SCRIPT-RAN
"#;
    let Some((result, reason, log)) = run_bad(&fx, yaml).await else {
        return;
    };
    assert_eq!(result, JobResult::Errored, "{log}");
    assert!(reason.contains("secure"), "{reason}");
    assert!(!log.contains("BEFORE-INSTALL-RAN"), "{log}");
    assert!(!log.contains("SCRIPT-RAN"), "{log}");
    // The value's start is quoted, so the entry can be found in the file.
    assert!(reason.contains("bm90IGFu"), "{reason}");
}
