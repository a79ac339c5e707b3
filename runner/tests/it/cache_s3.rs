//! Caches kept as archives in an S3-compatible bucket (moto, `$SLIPWAY_TEST_MOTO`), shared by
//! runners on different machines: what one runner saved another restores, under the trust rules
//! of caches on one machine, with the store's credentials never inside a job. Under CI=true a
//! missing engine, image or moto fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use slipway_pipelines::plan::{Context, EventType, Plan};
use slipway_runner::cache::s3::S3Store;
use slipway_runner::cache::{self, CacheBackend, CacheSettings, ObjectStore, archive_key};
use slipway_runner::docker::DockerExecutor;
use slipway_runner::script::cache_dir_key;
use slipway_runner::{BuildResult, Executor, JobResult, Owner, RunnerOptions};

use crate::util::kube::cluster;
use crate::util::*;

/// A job that reports what its cached `deps` held and leaves a stamp in it; jobs stamping
/// differently ([`stamping`]) share its job key, which only the image, `env:` and the cached
/// directories make.
const YAML: &str = r#"
image: "{busybox}"
cache:
  directories: [deps]
install: if [ -f deps/stamp ]; then echo "restored $(cat deps/stamp)"; else echo "deps empty"; fi
script: mkdir -p deps && echo built-once > deps/stamp
"#;

fn stamping(stamp: &str) -> String {
    YAML.replace("echo built-once", &format!("echo {stamp}"))
}

/// A bucket of its own on moto, reached with credentials only the runner holds.
struct Bucket {
    store: Arc<S3Store>,
    client: aws_sdk_s3::Client,
    name: String,
    key_id: String,
    secret: String,
}

fn moto_url() -> Option<String> {
    let url = std::env::var("SLIPWAY_TEST_MOTO").unwrap_or_else(|_| "http://127.0.0.1:5001".into());
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let req = format!("GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    head.starts_with(b"HTTP/1.1 200").then_some(url)
}

/// A new bucket on moto, or `None` (skipped; failed under CI=true) without moto.
async fn bucket() -> Option<Bucket> {
    let Some(url) = moto_url() else {
        missing("moto at $SLIPWAY_TEST_MOTO (scripts/services.sh start)");
        return None;
    };
    let tag = build_id("");
    let (key_id, secret) = (format!("AKIACACHE{tag}"), format!("cache-secret-{tag}"));
    let sdk = S3Store::loader(Some("us-east-1"))
        .credentials_provider(Credentials::new(&key_id, &secret, None, None, "test"))
        .load()
        .await;
    let name = format!("slipway-cache-{}", tag.to_lowercase());
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(&url)
            .force_path_style(true)
            .build(),
    );
    client.create_bucket().bucket(&name).send().await.unwrap();
    let store = S3Store::new(&sdk, &name, Some(&url)).unwrap();
    store.check().await.unwrap();
    Some(Bucket {
        store: Arc::new(store),
        client,
        name,
        key_id,
        secret,
    })
}

impl Bucket {
    /// Runner options keeping caches in this bucket, under `max_mib`.
    fn options(&self, max_mib: u64) -> RunnerOptions {
        let settings = CacheSettings {
            prefix: "caches/".into(),
            max_size_mib: max_mib,
            ..Default::default()
        };
        RunnerOptions {
            cache_backend: settings.archives(self.store.clone()),
            ..options()
        }
    }

    /// The object of `plan`'s first job's cache of `owner`.
    fn key(&self, plan: &Plan, owner: &Owner) -> String {
        let job = &plan.stages[0].jobs[0];
        archive_key("caches/", &plan.context.repo, owner, &cache::job_key(job))
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.store.size(key).await.unwrap()?;
        Some(self.store.get(key, 1 << 30).await.unwrap())
    }

    /// Every object key in the bucket.
    async fn keys(&self) -> Vec<String> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }
}

fn branch(name: &str) -> Owner {
    Owner::Branch(name.into())
}

/// A pull request from the fork `eve/app` into `base` of `repo`.
fn fork_pull_request(repo: &str, base: &str) -> Context {
    Context {
        event: EventType::PullRequest,
        pull_request: Some(5),
        head_repo: Some("eve/app".into()),
        head_branch: Some("patch".into()),
        fork: true,
        ..context(repo, base)
    }
}

/// Runs `yaml` for `ctx` on `exec` with `options`.
async fn run_on(exec: Arc<dyn Executor>, options: RunnerOptions, yaml: &str, ctx: &Context) -> Ran {
    run(exec, options, &plan(yaml, ctx), None, None).await
}

#[tokio::test]
async fn a_fork_pull_request_cannot_write_the_base_branchs_cache_object() {
    let (Some(exec), Some(b)) = (engine(&[&busybox()]).await, bucket().await) else {
        return;
    };
    let repo = format!("acme/app-{}", build_id(""));
    let master = context(&repo, "master");
    let seeded = run_on(exec.clone(), b.options(64), YAML, &master).await;
    seeded.expect(
        BuildResult::Passed,
        &["cache: uploaded the cache of branch master"],
    );
    let master_key = b.key(&plan(YAML, &master), &branch("master"));
    let before = b
        .object(&master_key)
        .await
        .expect("the master cache object");

    let pr = fork_pull_request(&repo, "master");
    let poisoned = stamping("poisoned");
    let ran = run_on(exec.clone(), b.options(64), &poisoned, &pr).await;
    ran.expect(
        BuildResult::Passed,
        &[
            "restoring the cache of branch master (read-only for this build)",
            "cache: uploaded the cache of pull request #5 from eve/app",
        ],
    );
    assert_eq!(b.object(&master_key).await.as_ref(), Some(&before));
    let own = Owner::PullRequest {
        number: 5,
        head_repo: Some("eve/app".into()),
    };
    assert!(
        b.object(&b.key(&plan(&poisoned, &pr), &own))
            .await
            .is_some()
    );

    let after = run_on(exec, b.options(64), YAML, &master).await;
    after.expect(BuildResult::Passed, &["restored built-once"]);
    after.assert_log_lacks(1, "poisoned");
}

#[tokio::test]
async fn a_job_cannot_read_another_repositorys_cache() {
    let (Some(exec), Some(b)) = (engine(&[&busybox()]).await, bucket().await) else {
        return;
    };
    let theirs = context(&format!("acme/theirs-{}", build_id("")), "master");
    let secret = stamping("theirs-only");
    run_on(exec.clone(), b.options(64), &secret, &theirs)
        .await
        .expect(BuildResult::Passed, &["cache: uploaded"]);

    // The same job, down to its key, in another repository.
    let ours = context(&format!("acme/ours-{}", build_id("")), "master");
    let ran = run_on(exec, b.options(64), &secret, &ours).await;
    ran.expect(BuildResult::Passed, &["deps empty", "nothing cached yet"]);
    ran.assert_log_lacks(1, "restored theirs-only");
    assert_eq!(b.keys().await.len(), 2);
}

#[tokio::test]
async fn the_job_never_sees_the_stores_credentials() {
    let (Some(exec), Some(b)) = (engine(&[&busybox()]).await, bucket().await) else {
        return;
    };
    // The job looks for the secret by pieces, so that the script itself does not hold it.
    let (head, tail) = b.secret.split_at(6);
    let yaml = format!(
        r#"
image: "{{busybox}}"
cache:
  directories: [deps]
install: env | sort
script:
  - mkdir -p deps && echo x > deps/x
  - if grep -rqsF "{head}""{tail}" /slipway /etc /home /root /tmp /proc/self/environ /proc/1/environ; then echo "secret found"; else echo "no secret here"; fi
after_script: if grep -rqsF "{head}""{tail}" /slipway; then echo "secret found after the save"; fi
"#
    );
    let ctx = context(&format!("acme/app-{}", build_id("")), "master");
    for _ in 0..2 {
        let ran = run_on(exec.clone(), b.options(64), &yaml, &ctx).await;
        let log = ran.expect(BuildResult::Passed, &["no secret here", "cache: uploaded"]);
        assert!(!log.lines().any(|l| l.starts_with("secret found")), "{log}");
        assert!(!log.contains(&b.secret), "{log}");
        assert!(!log.contains(&b.key_id), "{log}");
        assert!(!log.contains("AWS_"), "{log}");
    }
}

#[tokio::test]
async fn a_corrupt_or_oversized_archive_fails_the_restore_with_a_log_line_not_the_job() {
    let (Some(exec), Some(b)) = (engine(&[&busybox()]).await, bucket().await) else {
        return;
    };
    let master = context(&format!("acme/app-{}", build_id("")), "master");
    let key = b.key(&plan(YAML, &master), &branch("master"));

    b.store.put(&key, b"not an archive".to_vec()).await.unwrap();
    let ran = run_on(exec.clone(), b.options(1), YAML, &master).await;
    ran.expect_job(
        JobResult::Passed,
        &[
            "cache: the cache of branch master is not restored: the archive is corrupt",
            "deps empty",
        ],
    );

    // A valid archive that unpacks past the limit (zeros compress to almost nothing).
    let mut tar = tar::Builder::new(Vec::new());
    let zeros = vec![0u8; 3 << 20];
    let mut h = tar::Header::new_gnu();
    h.set_size(zeros.len() as u64);
    h.set_mode(0o644);
    let path = format!("cache/{}/stamp", cache_dir_key("deps"));
    tar.append_data(&mut h, path, zeros.as_slice()).unwrap();
    let gz = cache::archive::pack(&tar.into_inner().unwrap(), 8 << 20).unwrap();
    b.store.put(&key, gz).await.unwrap();
    let ran = run_on(exec.clone(), b.options(1), YAML, &master).await;
    ran.expect_job(
        JobResult::Passed,
        &[
            "is not restored: it is larger than the limit of 1.0 MiB",
            "deps empty",
        ],
    );

    // A cache past the limit is not saved, and the job passes all the same.
    let big = YAML.replace(
        "echo built-once > deps/stamp",
        "head -c 2097152 /dev/urandom > deps/big",
    );
    let ran = run_on(exec, b.options(1), &big, &master).await;
    ran.expect_job(
        JobResult::Passed,
        &["cache: the cache of branch master is not saved (ignored): it is larger than the limit"],
    );
}

#[tokio::test]
async fn a_cache_saved_by_one_runner_is_restored_by_another_on_docker_and_on_kubernetes() {
    let (Some(exec), Some(b)) = (engine(&[&busybox()]).await, bucket().await) else {
        return;
    };
    let ctx = context(&format!("acme/app-{}", build_id("")), "master");
    let first = run_on(exec, b.options(64), YAML, &ctx).await;
    first.expect(
        BuildResult::Passed,
        &["deps empty", "cache: uploaded the cache of branch master"],
    );

    // Another machine: its own engine connection and runner, nothing shared but the bucket.
    let other: Arc<dyn Executor> = Arc::new(DockerExecutor::connect().await.unwrap());
    let second = run_on(other, b.options(64), YAML, &ctx).await;
    second.expect(
        BuildResult::Passed,
        &[
            "cache: downloaded the cache of branch master",
            "restored built-once",
        ],
    );

    // A pod restores it too, and what it saves the next Docker job restores.
    let config = slipway_runner::kubernetes::KubernetesConfig {
        namespace: "slipway-test".into(),
        pending_timeout_seconds: 60,
        grace_period_seconds: 1,
        ..Default::default()
    };
    let Some(cluster) = cluster(&[&busybox()], config).await else {
        return;
    };
    let on_pod = stamping("from-a-pod");
    let third = run_on(cluster.exec.clone(), b.options(64), &on_pod, &ctx).await;
    third.expect(
        BuildResult::Passed,
        &[
            "restored built-once",
            "cache: uploaded the cache of branch master",
        ],
    );
    let fourth = run_on(exec_again().await, b.options(64), YAML, &ctx).await;
    fourth.expect(BuildResult::Passed, &["restored from-a-pod"]);
    assert_eq!(b.keys().await.len(), 1);
}

async fn exec_again() -> Arc<dyn Executor> {
    Arc::new(DockerExecutor::connect().await.unwrap())
}

#[test]
fn the_volume_backend_stays_the_default() {
    assert!(matches!(
        RunnerOptions::default().cache_backend,
        CacheBackend::Volumes
    ));
}
