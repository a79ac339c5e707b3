//! Kubernetes deploys: the multi-k8s course project through the gke provider against a stand-in
//! for the OAuth token endpoint, the GKE API and the Kubernetes API server (none can run here,
//! see [`cluster`]); plus an opt-in run against a real cluster when `KUBECONFIG` is set.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::util::*;
use base64::Engine;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use slipway_pipelines::plan::{Context, Deploy, EventType};
use slipway_secrets::Secret;

const SHA: &str = "c0ffee1234567890c0ffee1234567890c0ffee12";

mod cluster;
mod kubeconfig;

use cluster::{Behaviour, Cluster, TOKEN, UNIVERSE};

/// A fresh RSA key (PKCS#8 PEM) and its public half (DER).
fn keypair() -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem_path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed to make a test key");
    assert!(status.success());
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap() else {
        panic!()
    };
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    (pem, public)
}

/// A service-account key file as Google issues them: its token endpoint and its APIs' domain.
fn key_json(pem: &str, token_uri: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "deployer@my-project.iam.gserviceaccount.com",
        "token_uri": token_uri,
        "universe_domain": UNIVERSE,
    })
}

/// The stand-in with its key: the build dir holds the key file, its `token_uri` the stand-in's.
struct Setup {
    cluster: Cluster,
    build: tempfile::TempDir,
}

fn setup(course: &Path, behaviour: Behaviour) -> Setup {
    let (pem, public) = keypair();
    let cluster = Cluster::start(public, behaviour);
    let build = with_key(course, &key_json(&pem, &cluster.token_uri()));
    Setup { cluster, build }
}

/// The course's tree copied into a build dir of its own, with the decrypted service-account key
/// at `gke-key.json` in it (a deploy reads only files of the build dir).
fn with_key(course: &Path, key: &Value) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let build = tempfile::tempdir().unwrap();
    copy(course, build.path());
    std::fs::write(build.path().join("gke-key.json"), key.to_string()).unwrap();
    build
}

fn planned(dir: &Path) -> Deploy {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multi-k8s.slipway.yml");
    let ctx = Context {
        event: EventType::Push,
        branch: "master".into(),
        repo: "octo/multi-k8s".into(),
        commit: Some(SHA.into()),
        ..Context::default()
    };
    let plan =
        slipway_pipelines::plan(".slipway.yml", &std::fs::read(file).unwrap(), &ctx).unwrap();
    let mut d = plan.stages[0].jobs[0].deploys[0].clone();
    assert!(d.decision.included);
    assert!(dir.join("k8s").is_dir());
    // The decrypted key, as the job's build dir holds it after `openssl aes-256-cbc -d`.
    d.options.insert("key_file".into(), json!("gke-key.json"));
    d
}

fn k8s_context(dir: &Path, standin: &StandIn) -> slipway_providers::DeployContext {
    let mut ctx = context(dir).with_env("SHA", SHA);
    ctx.endpoints.gke_container = Some(standin.url.clone());
    ctx.endpoints.kubernetes = Some(standin.url.clone());
    ctx.secrets = Some(Arc::new(PgPassword));
    ctx
}

/// Knows one secure value: the course's database password.
struct PgPassword;

impl slipway_runner::SecretSource for PgPassword {
    fn decrypt_env(
        &self,
        _: &str,
        enc: &str,
    ) -> Result<(String, Secret<String>), slipway_secrets::Error> {
        if enc == "ENCRYPTED-PGPASSWORD" {
            Ok(("PGPASSWORD".to_owned(), Secret::new("pg-secret".to_owned())))
        } else {
            Err(slipway_secrets::Error::CorruptFile {
                path: "secure value".into(),
                reason: "unknown".to_owned(),
            })
        }
    }

    fn decrypt_file(&self, _: &str, _: &[u8]) -> Result<Secret<Vec<u8>>, slipway_secrets::Error> {
        Err(slipway_secrets::Error::CorruptFile {
            path: "encrypted file".into(),
            reason: "unknown".to_owned(),
        })
    }
}

#[tokio::test]
async fn multi_k8s_applies_k8s_sets_three_images_to_the_sha_and_awaits_rollouts() {
    let Some(dir) = course("multi-k8s") else {
        return;
    };
    // The worker is not available at first: the deploy watches it roll out.
    let Setup { cluster, build } = setup(
        &dir,
        Behaviour {
            slow: &["worker-deployment"],
            ..Behaviour::default()
        },
    );
    let d = planned(build.path());
    let ctx = k8s_context(build.path(), &cluster.standin);
    let (summary, log) = deployed(&d, &ctx).await;
    assert_eq!(
        summary,
        "14 object(s) applied, 3 image(s) set, 5 rollout(s) complete"
    );

    let requests = cluster.standin.requests();
    let seq: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let ns = "/namespaces/default";
    assert_eq!(seq, expected_requests());
    let watch = requests.last().unwrap();
    assert_eq!(
        watch.query_pairs(),
        BTreeMap::from([
            ("allowWatchBookmarks".to_owned(), "true".to_owned()),
            (
                "fieldSelector".into(),
                "metadata.name=worker-deployment".into()
            ),
            ("resourceVersion".into(), "2".into()),
            ("timeoutSeconds".into(), "290".into()),
            ("watch".into(), "true".into()),
        ])
    );

    // Server-side apply for manifests and the Secret; strategic merge for `set image`.
    let applies: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    for r in &applies[..14] {
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/apply-patch+yaml"),
            "{}",
            r.path
        );
        assert_eq!(
            r.query_pairs(),
            BTreeMap::from([
                ("fieldManager".to_owned(), "slipway".to_owned()),
                ("force".into(), "true".into())
            ])
        );
    }
    let secret = applies[0].json();
    assert_eq!(
        secret["data"]["PGPASSWORD"],
        base64::engine::general_purpose::STANDARD.encode("pg-secret")
    );
    let server_apply = applies
        .iter()
        .find(|r| r.path.ends_with("deployments/server-deployment"))
        .unwrap()
        .json();
    assert_eq!(
        server_apply["spec"]["template"]["spec"]["containers"][0]["image"],
        "stephengrider/multi-server"
    );
    assert_eq!(server_apply["metadata"]["namespace"], "default");
    for (i, c) in ["server", "client", "worker"].iter().enumerate() {
        let r = applies[14 + i];
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        assert_eq!(
            r.query_pairs(),
            BTreeMap::from([("fieldManager".to_owned(), "slipway".to_owned())])
        );
        assert_eq!(
            r.json(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": c, "image": format!("stephengrider/multi-{c}:{SHA}")}]}}}})
        );
        // What the cluster now runs: the applied deployment with the commit's image.
        let held = cluster
            .object(&format!("/apis/apps/v1{ns}/deployments/{c}-deployment"))
            .unwrap();
        assert_eq!(
            held["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("stephengrider/multi-{c}:{SHA}")
        );
    }
    let text = log.lines().join("\n");
    assert!(
        text.contains("kubernetes: deployment worker-deployment: 0 of 1 updated replicas available\nkubernetes: deployment worker-deployment rolled out"),
        "{text}"
    );
    assert!(
        !text.contains("pg-secret") && !text.contains(TOKEN),
        "{text}"
    );
}

/// Every request of the course's deploy, in order.
fn expected_requests() -> Vec<String> {
    let ns = "/namespaces/default";
    [
        "POST /token".to_owned(),
        "GET /v1/projects/my-project/locations/us-central1-a/clusters/multi-cluster".into(),
        format!("PATCH /api/v1{ns}/secrets/pgpassword"),
        "GET /apis/certmanager.k8s.io/v1alpha1".into(),
        format!("PATCH /apis/certmanager.k8s.io/v1alpha1{ns}/certificates/k8s-multi-com-tls"),
        "GET /api/v1".into(),
        format!("PATCH /api/v1{ns}/services/client-cluster-ip-service"),
        "GET /apis/apps/v1".into(),
        format!("PATCH /apis/apps/v1{ns}/deployments/client-deployment"),
        format!("PATCH /api/v1{ns}/persistentvolumeclaims/database-persistent-volume-claim"),
        "GET /apis/extensions/v1beta1".into(),
        format!("PATCH /apis/extensions/v1beta1{ns}/ingresses/ingress-service"),
        "PATCH /apis/certmanager.k8s.io/v1alpha1/clusterissuers/letsencrypt-prod".into(),
        format!("PATCH /api/v1{ns}/services/postgres-cluster-ip-service"),
        format!("PATCH /apis/apps/v1{ns}/deployments/postgres-deployment"),
        format!("PATCH /api/v1{ns}/services/redis-cluster-ip-service"),
        format!("PATCH /apis/apps/v1{ns}/deployments/redis-deployment"),
        format!("PATCH /api/v1{ns}/services/server-cluster-ip-service"),
        format!("PATCH /apis/apps/v1{ns}/deployments/server-deployment"),
        format!("PATCH /apis/apps/v1{ns}/deployments/worker-deployment"),
        format!("PATCH /apis/apps/v1{ns}/deployments/server-deployment"),
        format!("PATCH /apis/apps/v1{ns}/deployments/client-deployment"),
        format!("PATCH /apis/apps/v1{ns}/deployments/worker-deployment"),
        format!("GET /apis/apps/v1{ns}/deployments/client-deployment"),
        format!("GET /apis/apps/v1{ns}/deployments/postgres-deployment"),
        format!("GET /apis/apps/v1{ns}/deployments/redis-deployment"),
        format!("GET /apis/apps/v1{ns}/deployments/server-deployment"),
        format!("GET /apis/apps/v1{ns}/deployments/worker-deployment"),
        // The worker's rollout, watched from the version just read.
        format!("GET /apis/apps/v1{ns}/deployments"),
    ]
    .into_iter()
    .collect()
}

#[tokio::test]
async fn a_rollout_stuck_on_an_image_pull_fails_with_the_pods_reason() {
    let Some(dir) = course("multi-k8s") else {
        return;
    };
    let Setup { cluster, build } = setup(
        &dir,
        Behaviour {
            stuck: &["server-deployment"],
            ..Behaviour::default()
        },
    );
    let mut d = planned(build.path());
    d.options.insert("timeout".into(), json!(1));
    let ctx = k8s_context(build.path(), &cluster.standin);
    let (e, _) = failed(&d, &ctx).await;
    assert_eq!(
        e.one_line(),
        format!(
            "gke: rollout of deployment server-deployment did not finish within 1 s: 1 old replicas pending termination; pod server-deployment-7d9f-x2k4p container server: ImagePullBackOff: Back-off pulling image \"stephengrider/multi-server:{SHA}\""
        )
    );
}

#[tokio::test]
async fn a_rejected_service_account_fails_at_the_token_exchange() {
    let Some(dir) = course("multi-k8s") else {
        return;
    };
    // The stand-in knows another key than the one in the build dir.
    let (pem, _) = keypair();
    let (_, other_public) = keypair();
    let cluster = Cluster::start(other_public, Behaviour::default());
    let build = with_key(&dir, &key_json(&pem, &cluster.token_uri()));
    let d = planned(build.path());
    let ctx = k8s_context(build.path(), &cluster.standin);
    let (e, _) = failed(&d, &ctx).await;
    assert_eq!(
        e.one_line(),
        "gke: OAuth token exchange failed: HTTP 400: invalid_grant: Invalid JWT Signature. (service account deployer@my-project.iam.gserviceaccount.com)"
    );
    assert_eq!(cluster.standin.actions(), ["POST /token"]);
}

#[tokio::test]
async fn a_manifest_field_the_api_does_not_know_is_refused_with_the_servers_message() {
    let Some(dir) = course("multi-k8s") else {
        return;
    };
    let Setup { cluster, build } = setup(&dir, Behaviour::default());
    let file = build.path().join("k8s/redis-deployment.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("  replicas: 1", "  replicas: 1\n  replica: 2");
    std::fs::write(&file, text).unwrap();
    let d = planned(build.path());
    let ctx = k8s_context(build.path(), &cluster.standin);
    let (e, _) = failed(&d, &ctx).await;
    assert_eq!(
        e.one_line(),
        "gke: apply k8s/redis-deployment.yaml (Deployment/redis-deployment) failed: Deployment redis-deployment: unknown field(s): spec.replica (HTTP 400)"
    );
}

#[tokio::test]
async fn a_key_without_a_token_endpoint_is_refused_before_anything_is_sent() {
    let Some(dir) = course("multi-k8s") else {
        return;
    };
    let (pem, public) = keypair();
    let cluster = Cluster::start(public, Behaviour::default());
    let mut key = key_json(&pem, "unused");
    key.as_object_mut().unwrap().remove("token_uri");
    let build = with_key(&dir, &key);
    let d = planned(build.path());
    let ctx = k8s_context(build.path(), &cluster.standin);
    let (e, _) = failed(&d, &ctx).await;
    assert!(
        e.one_line().ends_with("gke-key.json: token_uri is missing"),
        "{}",
        e.one_line()
    );
    assert!(cluster.standin.requests().is_empty());
}

/// Opt-in: with `KUBECONFIG` set, applies a small deployment to a real cluster and waits for it.
#[tokio::test]
async fn real_cluster_when_kubeconfig_is_set() {
    let Ok(kubeconfig) = std::env::var("KUBECONFIG") else {
        eprintln!("skipped: KUBECONFIG is not set (this test runs only against a real cluster)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("k8s")).unwrap();
    std::fs::write(
        dir.path().join("k8s/web.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slipway-provider-test\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: slipway-provider-test\n  template:\n    metadata:\n      labels:\n        app: slipway-provider-test\n    spec:\n      containers:\n        - name: web\n          image: registry.k8s.io/pause:3.9\n",
    )
    .unwrap();
    let d = deploy("kubernetes", json!({"manifests": "k8s", "timeout": 300}));
    // The cluster's kubeconfig is outside the build dir: given as the server would give it.
    let mut ctx = context(dir.path());
    ctx.credentials = slipway_providers::Credentials::Repository(Some(Arc::new(
        slipway_providers::RepoCredentials {
            kubeconfig: Some(kubeconfig.split(':').next().unwrap_or_default().into()),
            ..Default::default()
        },
    )));
    deployed(&d, &ctx).await;
}
