//! Kubernetes deploys: the multi-k8s course project through the gke provider against a stand-in
//! for the OAuth token endpoint, the GKE API and the Kubernetes API server (none can run here);
//! plus an opt-in run against a real cluster when `KUBECONFIG` is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::util::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use slipway_pipelines::plan::{Context, Deploy, EventType};
use slipway_providers::{MemorySink, Outcome, run_deploy};
use slipway_secrets::Secret;

const SHA: &str = "c0ffee1234567890c0ffee1234567890c0ffee12";

/// A fresh service-account key (RSA, PKCS#8) written to a temp dir; returns (dir, path, public key DER).
fn service_account(token_uri: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
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
    let key = json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "deployer@my-project.iam.gserviceaccount.com",
        "token_uri": token_uri,
    });
    let path = dir.path().join("service-account.json");
    std::fs::write(&path, key.to_string()).unwrap();
    (dir, path, public)
}

fn resources(list: &[(&str, &str, bool)]) -> Value {
    json!({"kind": "APIResourceList", "resources": list.iter().map(|(name, kind, ns)| json!({"name": name, "kind": kind, "namespaced": ns})).collect::<Vec<_>>()})
}

/// Verifies the JWT-bearer assertion: RS256 signature by the service account, its claims.
fn check_assertion(
    form: &std::collections::BTreeMap<String, String>,
    public: &[u8],
    aud: &str,
) -> Result<(), String> {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err("grant_type".into());
    }
    let jwt = form.get("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    if claims["iss"] != "deployer@my-project.iam.gserviceaccount.com"
        || claims["aud"] != aud
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
    {
        return Err(format!("bad claims {claims}"));
    }
    Ok(())
}

/// The stand-in cluster. `stuck` deployments never roll out and their pods cannot pull the image.
fn cluster(
    public: Vec<u8>,
    stuck: &'static [&'static str],
    aud: Arc<std::sync::Mutex<String>>,
) -> StandIn {
    StandIn::start(move |r| {
        let path = r.path.as_str();
        if r.method == "POST" && path == "/token" {
            return match check_assertion(&r.form(), &public, &aud.lock().unwrap()) {
                Ok(()) => Reply::json(
                    200,
                    json!({"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"}),
                ),
                Err(e) => Reply::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": e}),
                ),
            };
        }
        if r.header("authorization").as_deref() != Some("Bearer ya29.test-token") {
            return Reply::json(
                401,
                json!({"kind": "Status", "message": "Unauthorized", "code": 401}),
            );
        }
        if path == "/v1/projects/my-project/locations/us-central1-a/clusters/multi-cluster" {
            return Reply::json(
                200,
                json!({"name": "multi-cluster", "endpoint": "127.0.0.1", "status": "RUNNING", "masterAuth": {"clusterCaCertificate": ""}}),
            );
        }
        match (r.method.as_str(), path) {
            ("GET", "/api/v1") => {
                return Reply::json(
                    200,
                    resources(&[
                        ("services", "Service", true),
                        ("persistentvolumeclaims", "PersistentVolumeClaim", true),
                        ("secrets", "Secret", true),
                        ("pods", "Pod", true),
                        ("pods/log", "Pod", true),
                    ]),
                );
            }
            ("GET", "/apis/apps/v1") => {
                return Reply::json(
                    200,
                    resources(&[
                        ("deployments", "Deployment", true),
                        ("deployments/scale", "Scale", true),
                    ]),
                );
            }
            ("GET", "/apis/extensions/v1beta1") => {
                return Reply::json(200, resources(&[("ingresses", "Ingress", true)]));
            }
            ("GET", "/apis/certmanager.k8s.io/v1alpha1") => {
                return Reply::json(
                    200,
                    resources(&[
                        ("certificates", "Certificate", true),
                        ("clusterissuers", "ClusterIssuer", false),
                    ]),
                );
            }
            ("PATCH", _) => return Reply::json(200, r.json()),
            _ => {}
        }
        if r.method == "GET" && path == "/api/v1/namespaces/default/pods" {
            let component = r.query.rsplit("%3D").next().unwrap_or("");
            return Reply::json(
                200,
                json!({"items": [{
                    "metadata": {"name": format!("{component}-deployment-7d9f-x2k4p")},
                    "status": {"phase": "Pending", "containerStatuses": [{"name": component, "ready": false,
                        "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"stephengrider/multi-{component}:{SHA}\"")}}}]}
                }]}),
            );
        }
        if let Some(name) = path.strip_prefix("/apis/apps/v1/namespaces/default/deployments/") {
            let component = name.trim_end_matches("-deployment");
            let status = if stuck.contains(&name) {
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 1})
            } else {
                json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1})
            };
            return Reply::json(
                200,
                json!({"metadata": {"name": name, "generation": 2}, "spec": {"replicas": 1, "selector": {"matchLabels": {"component": component}}}, "status": status}),
            );
        }
        Reply::json(
            404,
            json!({"kind": "Status", "message": format!("the server could not find {path}"), "code": 404}),
        )
    })
}

/// The course's tree copied into a build dir of its own, with the decrypted service-account key
/// at `gke-key.json` in it (a deploy reads only files of the build dir).
fn with_key(course: &Path, key_file: &Path) -> tempfile::TempDir {
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
    std::fs::copy(key_file, build.path().join("gke-key.json")).unwrap();
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
    ctx.endpoints.gke_token = Some(format!("{}/token", standin.url));
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
    // The key's token_uri is the JWT audience; the endpoint override sends the exchange to the stand-in.
    let (_keys, key_file, public) = service_account("https://oauth2.example.invalid/token");
    let aud = Arc::new(std::sync::Mutex::new(
        "https://oauth2.example.invalid/token".to_owned(),
    ));
    let standin = cluster(public, &[], aud);

    let build = with_key(&dir, &key_file);
    let d = planned(build.path());
    let ctx = k8s_context(build.path(), &standin);
    let log = MemorySink::default();
    let out = run_deploy(&d, &ctx, &log).await;
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?} {:#?}", log.lines())
    };
    assert_eq!(
        summary,
        "14 object(s) applied, 3 image(s) set, 5 rollout(s) complete"
    );

    let requests = standin.requests();
    let seq: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let ns = "/namespaces/default";
    let expected: Vec<String> = [
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
    ]
    .into_iter()
    .collect();
    assert_eq!(seq, expected);

    // Server-side apply for manifests and the Secret; strategic merge for `set image`.
    let applies: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    for r in &applies[..14] {
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/apply-patch+yaml"),
            "{}",
            r.path
        );
        assert_eq!(r.query, "fieldManager=slipway&force=true");
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
            r.json(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": c, "image": format!("stephengrider/multi-{c}:{SHA}")}]}}}})
        );
    }
    let text = log.lines().join("\n");
    assert!(
        !text.contains("pg-secret") && !text.contains("ya29.test-token"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rollout_stuck_on_an_image_pull_fails_with_the_pods_reason() {
    let Some(dir) = course("multi-k8s") else {
        return;
    };
    let aud = Arc::new(std::sync::Mutex::new(String::new()));
    let (_keys, key_file, public) = service_account("https://oauth2.example.invalid/token");
    let standin = cluster(public, &["server-deployment"], aud.clone());
    *aud.lock().unwrap() = "https://oauth2.example.invalid/token".into();
    let build = with_key(&dir, &key_file);
    let mut d = planned(build.path());
    d.options.insert("timeout".into(), json!(1));
    let ctx = k8s_context(build.path(), &standin);
    let log = MemorySink::default();
    let Outcome::Failed(e) = run_deploy(&d, &ctx, &log).await else {
        panic!("{:#?}", log.lines())
    };
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
    let (_keys, key_file, _) = service_account("https://oauth2.example.invalid/token");
    let (_other, _, wrong_public) = service_account("https://oauth2.example.invalid/token");
    let aud = Arc::new(std::sync::Mutex::new(
        "https://oauth2.example.invalid/token".to_owned(),
    ));
    let standin = cluster(wrong_public, &[], aud);
    let build = with_key(&dir, &key_file);
    let d = planned(build.path());
    let ctx = k8s_context(build.path(), &standin);
    let Outcome::Failed(e) = run_deploy(&d, &ctx, &MemorySink::default()).await else {
        panic!()
    };
    assert_eq!(
        e.one_line(),
        "gke: OAuth token exchange failed: HTTP 400: invalid_grant: Invalid JWT Signature. (service account deployer@my-project.iam.gserviceaccount.com)"
    );
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
    let d = Deploy {
        provider: "kubernetes".into(),
        options: json!({"manifests": "k8s", "timeout": 300})
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .collect(),
        decision: slipway_pipelines::plan::Decision {
            included: true,
            reason: "test".into(),
        },
        skip_cleanup: true,
        allow_failure: false,
        edge: None,
        condition: vec![],
    };
    // The cluster's kubeconfig is outside the build dir: given as the server would give it.
    let mut ctx = context(dir.path());
    ctx.credentials = slipway_providers::Credentials::Repository(Some(Arc::new(
        slipway_providers::RepoCredentials {
            kubeconfig: Some(kubeconfig.split(':').next().unwrap_or_default().into()),
            ..Default::default()
        },
    )));
    let log = MemorySink::default();
    let out = run_deploy(&d, &ctx, &log).await;
    assert!(
        matches!(out, Outcome::Deployed(_)),
        "{out:?} {:#?}",
        log.lines()
    );
}
