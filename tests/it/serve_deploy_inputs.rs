//! `slipway serve` end to end, playing a pipeline's author against the server's own files and
//! credentials: `local_dir: /etc` and a `local_dir` that is a symlink to `/` error naming the
//! option and the path, and a server started with `AWS_*` and `KUBECONFIG` in its environment
//! deploys nothing for a repository that has no credentials of its own. Each time the bucket in
//! moto (`$SLIPWAY_TEST_MOTO`) stays empty, and the kubeconfig's cluster is never contacted.

use crate::serve::*;
use crate::support::{busybox, listing, moto_bucket};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn pipeline(script: &str, deploy: &str) -> String {
    format!(
        "image: \"{}\"\nlanguage: shell\nscript:\n  - {script:?}\ndeploy:\n{deploy}  skip_cleanup: true\n  on:\n    branch: master\n",
        busybox()
    )
}

/// Commits `pipeline` as `.travis.yml` on master, delivers the push and waits for the build.
fn push_and_wait(server: &Served, origin: &Origin, pipeline: &str, id: &str) -> Ended {
    let sha = origin.push_master(".travis.yml", pipeline);
    server.push(origin, "refs/heads/master", &sha, id)
}

/// A TCP listener that counts the connections it gets: a cluster no deploy may reach.
fn listener() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if c.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (addr, hits)
}

#[test]
fn deploys_read_only_the_build_dir_and_never_the_servers_own_credentials() {
    let Some((moto, bucket)) = moto_bucket("slipway-inputs") else {
        return;
    };
    let empty = || {
        let listing = listing(&moto, &bucket);
        assert!(
            !listing.contains("<Key>"),
            "something was uploaded: {listing}"
        );
    };

    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    // The server's own credentials, which no repository's deploy may use: AWS keys moto would
    // accept, and a kubeconfig whose cluster counts connections.
    let (cluster, hits) = listener();
    let kubeconfig = tmp.path().join("server-kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nclusters:\n- name: k\n  cluster: {{server: \"http://{cluster}\"}}\nusers:\n- name: u\n  user: {{token: server-own-token}}\n"
        ),
    )
    .unwrap();
    let github = FakeGitHub::default();
    let server = Served::one_worker(
        tmp.path(),
        &github,
        &origin,
        &[
            ("SLIPWAY_S3_ENDPOINT", &moto),
            ("AWS_ACCESS_KEY_ID", "server-own-key"),
            ("AWS_SECRET_ACCESS_KEY", "server-own-secret"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    );
    let keys = "  access_key_id: testing\n  secret_access_key: testing\n";

    // An absolute local_dir: the server's /etc.
    let deploy = format!("  provider: s3\n  bucket: \"{bucket}\"\n{keys}  local_dir: /etc\n");
    push_and_wait(&server, &origin, &pipeline("true", &deploy), "etc").expect(
        "errored",
        &["s3: option `local_dir`: /etc is outside the build dir (it resolves to /etc)"],
    );
    empty();

    // A symlink the job made (it could as well be committed) to the server's root.
    let deploy = format!("  provider: s3\n  bucket: \"{bucket}\"\n{keys}  local_dir: site\n");
    push_and_wait(&server, &origin, &pipeline("ln -s / site", &deploy), "link").expect(
        "errored",
        &["s3: option `local_dir`: site is outside the build dir (it resolves to /)"],
    );
    empty();

    // No credentials of the repository's own: the server's AWS_* are not used.
    let deploy = format!("  provider: s3\n  bucket: \"{bucket}\"\n  local_dir: site\n");
    let script = "mkdir -p site && echo hi > site/index.txt";
    push_and_wait(&server, &origin, &pipeline(script, &deploy), "no-aws").expect(
        "errored",
        &["s3: no AWS credentials are configured for the repository acme/app"],
    );
    empty();

    // Nor its KUBECONFIG.
    let deploy = "  provider: kubernetes\n  manifests: k8s\n".to_string();
    let script = "mkdir -p k8s && printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: x}\\n' > k8s/x.yaml";
    push_and_wait(&server, &origin, &pipeline(script, &deploy), "no-kube").expect(
        "errored",
        &["kubernetes: no Kubernetes credentials are configured for the repository acme/app"],
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the server's cluster was contacted"
    );

    for text in [server.server_log(), server.job_log(1)] {
        for secret in ["server-own-secret", "server-own-token"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn a_repositorys_own_server_credentials_deploy_it() {
    let Some((moto, bucket)) = moto_bucket("slipway-repo-creds") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script: true\n");
    let github = FakeGitHub::default();
    let server = Served::one_worker_on_moto(tmp.path(), &github, &origin, &moto);
    // Served writes the repository last: its [repos.deploy] table follows it.
    let mut config = std::fs::read_to_string(&server.config).unwrap();
    config.push_str("[repos.deploy]\naws_access_key_id = \"repo-key\"\naws_secret_access_key = \"repo-secret\"\n");
    std::fs::write(&server.config, config).unwrap();
    let mut server = server;
    server.kill();
    server.start();
    let deploy = format!("  provider: s3\n  bucket: \"{bucket}\"\n  local_dir: site\n");
    let script = "mkdir -p site && echo hi > site/index.txt";
    let ended = push_and_wait(&server, &origin, &pipeline(script, &deploy), "repo-creds");
    let log = ended.expect(
        "passed",
        &["credentials from the server's [repos.deploy] keys for acme/app"],
    );
    let uploaded = listing(&moto, &bucket);
    assert!(uploaded.contains("<Key>index.txt</Key>"), "{uploaded}");
    assert!(!log.contains("repo-secret") && !server.server_log().contains("repo-secret"));
}
