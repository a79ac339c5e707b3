//! A stand-in for the Kubernetes API server: the subset of the Pod, Secret and Event API the
//! Kubernetes executor uses (pods: create, get, list, delete, log with follow, attach and exec
//! over the `v5.channel.k8s.io` WebSocket protocol; secrets: create), on 127.0.0.1. Every request
//! body is read into its `k8s-openapi` type and refused (400, with the reason) when it holds a
//! field the type does not know or breaks a rule the real API server enforces; so are unknown
//! query parameters. The pod's containers run on the local Docker engine ([`pods`]), so a job's
//! real output and exit code flow end to end; a pod's secret volume is its Secret's data written
//! to a directory bind-mounted read-only, once the Secret exists, and a Secret goes when its
//! owner pod does, as the garbage collector removes it.

mod pods;
pub mod rbac;
mod secrets;
mod validate;
mod ws;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use slipway_runner::kubernetes::{KubernetesConfig, KubernetesExecutor};

pub use pods::PodEntry;

/// The stand-in's state, shared by its handlers and the tests.
pub struct StandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    pub(crate) docker: bollard::Docker,
    pub(crate) pods: Mutex<BTreeMap<String, PodEntry>>,
    /// Secrets by name, as created (with their uid).
    pub(crate) secrets: Mutex<BTreeMap<String, Secret>>,
    /// The events of pods already deleted, for the tests' leak checks.
    pub(crate) past_events: Mutex<Vec<Event>>,
    /// Pods already deleted, as created (with their uid).
    pub(crate) past_pods: Mutex<Vec<Pod>>,
    /// Every request as `METHOD path?query` and its body, for the tests' leak checks.
    pub requests: Mutex<Vec<String>>,
    /// Ends each pod's first log stream after this many lines (0: never), as a broken
    /// connection would.
    pub break_logs_after: AtomicUsize,
}

impl StandIn {
    /// Starts a stand-in on a free loopback port.
    pub async fn start(docker: bollard::Docker) -> Arc<StandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(StandIn {
            addr,
            docker,
            pods: Mutex::new(BTreeMap::new()),
            secrets: Mutex::new(BTreeMap::new()),
            past_events: Mutex::new(Vec::new()),
            past_pods: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            break_logs_after: AtomicUsize::new(0),
        });
        let pod_path = "/api/v1/namespaces/{ns}/pods/{name}";
        let app = Router::new()
            .route("/version", get(version))
            .route(
                "/api/v1/namespaces/{ns}/pods",
                get(list_pods).post(create_pod),
            )
            .route(pod_path, get(get_pod).delete(delete_pod))
            .route(&format!("{pod_path}/log"), get(pod_log))
            .route(&format!("{pod_path}/attach"), get(ws::attach))
            .route(&format!("{pod_path}/exec"), get(ws::exec))
            .route(
                "/api/v1/namespaces/{ns}/secrets",
                axum::routing::post(secrets::create),
            )
            .route("/api/v1/namespaces/{ns}/events", get(list_events))
            .fallback(unknown)
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        state
    }

    /// An executor talking to this stand-in in namespace `ns`.
    pub fn executor(&self, config: KubernetesConfig) -> KubernetesExecutor {
        let url: axum::http::Uri = format!("http://{}", self.addr).parse().unwrap();
        let mut client_config = kube::Config::new(url);
        client_config.default_namespace = config.namespace.clone();
        let client = kube::Client::try_from(client_config).unwrap();
        KubernetesExecutor::with_client(client, config)
    }

    /// Names of the pods it holds.
    pub fn pod_names(&self) -> Vec<String> {
        self.pods.lock().unwrap().keys().cloned().collect()
    }

    /// The pod as it was created, by name.
    pub fn created(&self, name: &str) -> Option<Pod> {
        self.pods
            .lock()
            .unwrap()
            .get(name)
            .map(|p| p.created.clone())
    }

    /// Names of the Secrets it holds.
    pub fn secret_names(&self) -> Vec<String> {
        self.secrets.lock().unwrap().keys().cloned().collect()
    }

    /// Every Secret the executor asked to create, as sent.
    pub fn secrets_received(&self) -> Vec<Secret> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| {
                let (line, body) = r.split_once('\n')?;
                let uri = line.strip_prefix("POST ")?;
                let path = uri.split('?').next().unwrap_or(uri);
                path.ends_with("/secrets")
                    .then(|| serde_json::from_str(body).unwrap())
            })
            .collect()
    }

    /// The requests whose path is under `pods` (creates, reads, logs, attach and exec).
    pub fn pod_requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.lines().next().is_some_and(|l| l.contains("/pods")))
            .cloned()
            .collect()
    }

    /// The pods deleted so far, as created.
    pub fn past_pods(&self) -> Vec<Pod> {
        self.past_pods.lock().unwrap().clone()
    }

    /// Every event of every pod, deleted ones included.
    pub fn all_events(&self) -> Vec<Event> {
        let mut events = self.past_events.lock().unwrap().clone();
        for entry in self.pods.lock().unwrap().values() {
            events.extend(entry.events.iter().cloned());
        }
        events
    }

    /// How many requests so far held `needle`.
    pub fn requests_with(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(needle))
            .count()
    }

    /// Puts a pod in place as if a runner had created it (sweep tests).
    pub async fn plant(self: &Arc<Self>, pod: Pod) {
        pods::create(self, pod).await;
    }
}

/// A Kubernetes `Status` answer.
pub(crate) fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

pub(crate) fn bad_request(message: impl Into<String>) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn not_found(name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("pods \"{name}\" not found"),
    )
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(serde_json::to_value(value).unwrap()).into_response()
}

async fn record(
    State(s): State<Arc<StandIn>>,
    req: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    s.requests.lock().unwrap().push(format!(
        "{} {}\n{}",
        parts.method,
        parts.uri,
        String::from_utf8_lossy(&bytes)
    ));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn unknown(method: Method, uri: Uri) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("the stand-in does not serve {method} {uri}"),
    )
}

async fn version() -> Response {
    axum::Json(serde_json::json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-slipway-stand-in",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go", "compiler": "gc", "platform": "linux/amd64"
    }))
    .into_response()
}

/// The query's pairs, or a 400 naming a parameter outside `allowed`.
pub(crate) fn query(
    raw: Option<String>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "unknown query parameter {k:?} (the stand-in knows {allowed:?})"
            ));
        }
    }
    Ok(pairs)
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// What every create request must pass, as the API server checks it: only the query parameters
/// a create takes, a body that is exactly a `T`, and `rules` for namespace `ns` (422 when broken).
pub(crate) fn creating<T: serde::de::DeserializeOwned + serde::Serialize>(
    q: Option<String>,
    body: &Bytes,
    ns: &str,
    rules: fn(&T, &str) -> Result<(), String>,
) -> Result<T, Box<Response>> {
    query(q, &["fieldManager", "dryRun", "fieldValidation"])
        .map_err(|why| Box::new(bad_request(why)))?;
    let object: T = validate::body(body).map_err(|why| Box::new(bad_request(why)))?;
    rules(&object, ns)
        .map_err(|why| Box::new(status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", why)))?;
    Ok(object)
}

async fn create_pod(
    State(s): State<Arc<StandIn>>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let pod: Pod = match creating(q, &body, &ns, validate::pod) {
        Ok(pod) => pod,
        Err(refused) => return *refused,
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    if s.pods.lock().unwrap().contains_key(&name) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("pods \"{name}\" already exists"),
        );
    }
    let created = pods::create(&s, pod).await;
    (StatusCode::CREATED, json(&created)).into_response()
}

async fn get_pod(
    State(s): State<Arc<StandIn>>,
    Path((_ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(why) = query(q, &[]) {
        return bad_request(why);
    }
    match pods::current(&s, &name).await {
        Some(pod) => json(&pod),
        None => not_found(&name),
    }
}

async fn list_pods(
    State(s): State<Arc<StandIn>>,
    Path(_ns): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = match query(q, &["labelSelector", "fieldSelector"]) {
        Ok(p) => p,
        Err(why) => return bad_request(why),
    };
    let selector = param(&pairs, "labelSelector").unwrap_or("");
    let wanted: Vec<(&str, &str)> = match selector
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.split_once('='))
        .collect::<Option<Vec<_>>>()
    {
        Some(w) => w,
        None => {
            return bad_request(format!(
                "the stand-in reads only key=value selectors: {selector:?}"
            ));
        }
    };
    let names = s.pod_names();
    let mut items = Vec::new();
    for name in names {
        if let Some(pod) = pods::current(&s, &name).await {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if wanted
                .iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            {
                items.push(serde_json::to_value(&pod).unwrap());
            }
        }
    }
    axum::Json(serde_json::json!({
        "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items
    }))
    .into_response()
}

async fn delete_pod(
    State(s): State<Arc<StandIn>>,
    Path((_ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(why) = query(q, &["gracePeriodSeconds", "dryRun", "propagationPolicy"]) {
        return bad_request(why);
    }
    if !body.is_empty()
        && let Err(why) = validate::body::<DeleteOptions>(&body)
    {
        return bad_request(why);
    }
    let Some(pod) = pods::current(&s, &name).await else {
        return not_found(&name);
    };
    pods::delete(&s, &name).await;
    json(&pod)
}

async fn list_events(
    State(s): State<Arc<StandIn>>,
    Path(_ns): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = match query(q, &["fieldSelector"]) {
        Ok(p) => p,
        Err(why) => return bad_request(why),
    };
    let object =
        param(&pairs, "fieldSelector").and_then(|f| f.strip_prefix("involvedObject.name="));
    let items: Vec<Event> = s
        .pods
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, _)| object.is_none_or(|o| o == name.as_str()))
        .flat_map(|(_, p)| p.events.clone())
        .collect();
    axum::Json(serde_json::json!({
        "apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items
    }))
    .into_response()
}

async fn pod_log(
    State(s): State<Arc<StandIn>>,
    Path((_ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = match query(
        q,
        &[
            "container",
            "follow",
            "timestamps",
            "sinceTime",
            "sinceSeconds",
            "tailLines",
            "limitBytes",
            "previous",
            "pretty",
        ],
    ) {
        Ok(p) => p,
        Err(why) => return bad_request(why),
    };
    let since = match param(&pairs, "sinceTime").map(str::parse::<jiff::Timestamp>) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return bad_request(format!("sinceTime: {e}")),
    };
    let container = param(&pairs, "container").unwrap_or("");
    let first = {
        let mut pods = s.pods.lock().unwrap();
        let Some(entry) = pods.get_mut(&name) else {
            return not_found(&name);
        };
        entry.log_requests += 1;
        entry.log_requests == 1
    };
    let Some(docker_name) = pods::docker_name(&s, &name, container) else {
        return bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start"
        ));
    };
    let follow = param(&pairs, "follow") == Some("true");
    let timestamps = param(&pairs, "timestamps") == Some("true");
    let cut = if first {
        s.break_logs_after.load(Ordering::Relaxed)
    } else {
        0
    };
    let stream = pods::logs(&s, &docker_name, follow, timestamps, since, cut);
    Response::new(Body::from_stream(stream))
}

/// The cluster a suite runs against.
pub struct Cluster {
    /// The executor.
    pub exec: Arc<KubernetesExecutor>,
    /// The stand-in, unless the suite runs against a real cluster.
    pub standin: Option<Arc<StandIn>>,
}

/// A real cluster from `KUBECONFIG` when `SLIPWAY_TEST_KUBERNETES=1` (`scripts/test-kubernetes`,
/// namespace `SLIPWAY_TEST_KUBERNETES_NAMESPACE`), else the stand-in on the local Docker engine
/// with `images` present; `None` (skipped) when that is missing outside CI.
pub async fn cluster(images: &[&str], mut config: KubernetesConfig) -> Option<Cluster> {
    if std::env::var("SLIPWAY_TEST_KUBERNETES").is_ok_and(|v| v == "1") {
        config.namespace =
            std::env::var("SLIPWAY_TEST_KUBERNETES_NAMESPACE").unwrap_or_else(|_| "default".into());
        let exec = KubernetesExecutor::connect(config)
            .await
            .unwrap_or_else(|e| panic!("SLIPWAY_TEST_KUBERNETES=1 but no cluster: {e}"));
        return Some(Cluster {
            exec: Arc::new(exec),
            standin: None,
        });
    }
    let docker = super::engine(images).await?;
    let standin = StandIn::start(docker.client().clone()).await;
    Some(Cluster {
        exec: Arc::new(standin.executor(config)),
        standin: Some(standin),
    })
}

impl Cluster {
    /// Pods and Secrets of build `id` still in the cluster. A real cluster's garbage collector
    /// deletes a Secret shortly after its pod: it is given 30 s.
    pub async fn left(&self, id: &str) -> Vec<String> {
        let client = self.exec.client().clone();
        let ns = &self.exec.config().namespace;
        let selector = format!(
            "dev.slipway.build={}",
            slipway_runner::kubernetes::pod::label_value(id)
        );
        let params = kube::api::ListParams::default().labels(&selector);
        let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), ns);
        let mut left: Vec<String> = pods
            .list(&params)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        match &self.standin {
            // Read in place: the executor's Role cannot list Secrets, and the suite checks every
            // request the stand-in receives against it.
            Some(standin) => left.extend(standin.secrets_of_build(id)),
            None => {
                let secrets: kube::Api<Secret> = kube::Api::namespaced(client, ns);
                let started = std::time::Instant::now();
                loop {
                    let names: Vec<String> = secrets
                        .list(&params)
                        .await
                        .unwrap()
                        .items
                        .into_iter()
                        .filter_map(|s| s.metadata.name)
                        .collect();
                    if names.is_empty() || started.elapsed() > std::time::Duration::from_secs(30) {
                        left.extend(names);
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
        left
    }
}
