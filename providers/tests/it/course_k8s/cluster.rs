//! A stand-in for what a `gke` deploy talks to: the OAuth token endpoint (checking the signed
//! assertion), the GKE API's cluster lookup, and the Kubernetes API server's discovery,
//! server-side apply, strategic-merge patches of deployments, reading and watching a
//! deployment and listing pods. Every body the deploy sends is read into its `k8s-openapi` type
//! where one exists (`slipway_runner::kubernetes::checked`, fields the type does not know
//! refused) and held to the rules the API server keeps (names and namespaces matching the path,
//! a field manager on every apply); so are the query parameters. Applied objects are kept and
//! served back, so what a deployment reports is what was applied and patched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, ObjectMeta};
use serde_json::{Value, json};
use slipway_runner::kubernetes::checked::read_value;

use slipway_providers::testing::Request;

use crate::util::{Reply, StandIn};

/// The access token the token endpoint hands out.
pub const TOKEN: &str = "ya29.test-token";
/// The domain of the APIs the test keys are for.
pub const UNIVERSE: &str = "cloud.example.invalid";

/// (group version, plural, kind, namespaced) of every resource the stand-in serves.
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("v1", "services", "Service", true),
    (
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    ),
    ("v1", "secrets", "Secret", true),
    ("v1", "pods", "Pod", true),
    ("v1", "pods/log", "Pod", true),
    ("apps/v1", "deployments", "Deployment", true),
    ("apps/v1", "deployments/scale", "Scale", true),
    ("extensions/v1beta1", "ingresses", "Ingress", true),
    (
        "certmanager.k8s.io/v1alpha1",
        "certificates",
        "Certificate",
        true,
    ),
    (
        "certmanager.k8s.io/v1alpha1",
        "clusterissuers",
        "ClusterIssuer",
        false,
    ),
];

/// How the stand-in's deployments roll out.
#[derive(Default)]
pub struct Behaviour {
    /// Never roll out; their pods cannot pull their image.
    pub stuck: &'static [&'static str],
    /// Not yet available when first read; a watch sees them roll out.
    pub slow: &'static [&'static str],
}

/// What the stand-in holds.
#[derive(Default)]
struct State {
    /// The service account's public key (DER) and the token endpoint's own URL (the audience).
    public: Vec<u8>,
    audience: String,
    /// Applied objects by path.
    objects: BTreeMap<String, Value>,
    /// Each object's generation, by path.
    generations: BTreeMap<String, i64>,
}

/// The stand-in and what it was sent.
pub struct Cluster {
    pub standin: StandIn,
    state: Arc<Mutex<State>>,
}

impl Cluster {
    /// Starts a stand-in accepting assertions signed by the key whose public half is `public`.
    pub fn start(public: Vec<u8>, behaviour: Behaviour) -> Cluster {
        let state = Arc::new(Mutex::new(State {
            public,
            ..State::default()
        }));
        let shared = state.clone();
        let standin = StandIn::start(move |r| handle(&shared, &behaviour, r));
        state.lock().unwrap().audience = format!("{}/token", standin.url);
        Cluster { standin, state }
    }

    /// The token endpoint, as the key's `token_uri` names it.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.standin.url)
    }

    /// The object applied at `path`, as the stand-in holds it.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }
}

/// A Kubernetes `Status` answer.
fn status(code: u16, reason: &str, message: impl Into<String>) -> Reply {
    Reply::json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message.into(), "reason": reason, "code": code}),
    )
}

fn query(r: &Request, allowed: &[&str]) -> Result<BTreeMap<String, String>, Reply> {
    let pairs = r.query_pairs();
    match pairs.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(status(
            400,
            "BadRequest",
            format!("unknown query parameter {k:?}"),
        )),
        None => Ok(pairs),
    }
}

fn handle(state: &Mutex<State>, behaviour: &Behaviour, r: &Request) -> Reply {
    if r.method == "POST" && r.path == "/token" {
        let s = state.lock().unwrap();
        return match check_assertion(&r.form(), &s.public, &s.audience) {
            Ok(()) => Reply::json(
                200,
                json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}),
            ),
            Err(e) => Reply::json(
                400,
                json!({"error": "invalid_grant", "error_description": e}),
            ),
        };
    }
    if r.header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if r.path == "/v1/projects/my-project/locations/us-central1-a/clusters/multi-cluster" {
        return Reply::json(
            200,
            json!({"name": "multi-cluster", "endpoint": "127.0.0.1", "status": "RUNNING",
                   "masterAuth": {"clusterCaCertificate": ""}}),
        );
    }
    if r.method == "GET"
        && let Some(list) = discovery(&r.path)
    {
        return list;
    }
    let Some(target) = Target::parse(&r.path) else {
        return status(
            404,
            "NotFound",
            format!("the server could not find {}", r.path),
        );
    };
    match (r.method.as_str(), target.name.is_some(), target.plural) {
        ("PATCH", true, _) => match r.header("content-type").as_deref() {
            Some("application/apply-patch+yaml") => apply(state, &target, r),
            Some("application/strategic-merge-patch+json") => set_image(state, &target, r),
            other => status(
                415,
                "UnsupportedMediaType",
                format!("content type {other:?}"),
            ),
        },
        ("GET", true, "deployments") => read_deployment(state, behaviour, &target, r),
        ("GET", false, "deployments") => watch(state, behaviour, &target, r),
        ("GET", false, "pods") => pods(behaviour, &target, r),
        _ => status(405, "MethodNotAllowed", format!("{} {}", r.method, r.path)),
    }
}

/// An `APIResourceList` for a group version the stand-in serves.
fn discovery(path: &str) -> Option<Reply> {
    let gv = path
        .strip_prefix("/api/")
        .or_else(|| path.strip_prefix("/apis/"))?;
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|(g, ..)| *g == gv)
        .map(|(_, plural, kind, namespaced)| {
            json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                   "kind": kind, "verbs": ["get", "list", "watch", "patch"]})
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let list = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources});
    read_value::<APIResourceList>(&list).expect("the stand-in's own discovery is well-formed");
    Some(Reply::json(200, list))
}

/// An object (or a collection) of a resource the stand-in serves, from its path.
struct Target {
    group_version: String,
    namespace: Option<String>,
    plural: &'static str,
    kind: &'static str,
    name: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Target> {
        let (gv, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
            ("v1".to_owned(), rest)
        } else {
            let rest = path.strip_prefix("/apis/")?;
            let mut parts = rest.splitn(3, '/');
            let (g, v, rest) = (parts.next()?, parts.next()?, parts.next()?);
            (format!("{g}/{v}"), rest)
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (namespace, plural, name) = match parts.as_slice() {
            ["namespaces", ns, plural] => (Some(*ns), *plural, None),
            ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
            [plural] => (None, *plural, None),
            [plural, name] => (None, *plural, Some(*name)),
            _ => return None,
        };
        let &(_, plural, kind, namespaced) = RESOURCES
            .iter()
            .find(|(g, p, ..)| *g == gv && *p == plural)?;
        if namespaced != namespace.is_some() {
            return None;
        }
        Some(Target {
            group_version: gv,
            namespace: namespace.map(str::to_owned),
            plural,
            kind,
            name: name.map(str::to_owned),
        })
    }
}

/// Server-side apply: the body must be the object the path names, of its type.
fn apply(state: &Mutex<State>, t: &Target, r: &Request) -> Reply {
    let q = match query(r, &["fieldManager", "force", "dryRun", "fieldValidation"]) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    if q.get("fieldManager").is_none_or(String::is_empty) {
        return status(400, "BadRequest", "PATCH with apply requires fieldManager");
    }
    let body: Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", format!("not JSON: {e}")),
    };
    if body["apiVersion"] != t.group_version.as_str() || body["kind"] != t.kind {
        return status(400, "BadRequest", "apiVersion and kind must match the path");
    }
    if body["metadata"]["name"].as_str() != t.name.as_deref() {
        return status(400, "BadRequest", "metadata.name must match the path");
    }
    if body["metadata"].get("namespace").is_some()
        && body["metadata"]["namespace"].as_str() != t.namespace.as_deref()
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the object does not match the path",
        );
    }
    let typed = match t.kind {
        "Secret" => read_value::<Secret>(&body).map(drop),
        "Service" => read_value::<Service>(&body).map(drop),
        "PersistentVolumeClaim" => read_value::<PersistentVolumeClaim>(&body).map(drop),
        "Deployment" => read_value::<Deployment>(&body).map(drop),
        // Kinds k8s-openapi has no type for (CRDs, retired versions): their metadata at least.
        _ => read_value::<ObjectMeta>(&body["metadata"]).map(drop),
    };
    if let Err(why) = typed {
        return status(
            400,
            "BadRequest",
            format!("{} {}: {why}", t.kind, t.name.as_deref().unwrap_or("")),
        );
    }
    let mut s = state.lock().unwrap();
    let generation = s.generations.entry(r.path.clone()).or_insert(0);
    *generation += 1;
    let mut stored = body;
    stored["metadata"]["generation"] = json!(*generation);
    stored["metadata"]["resourceVersion"] = json!(generation.to_string());
    s.objects.insert(r.path.clone(), stored.clone());
    Reply::json(200, stored)
}

/// `kubectl set image`: a strategic-merge patch of the deployment's containers' images.
fn set_image(state: &Mutex<State>, t: &Target, r: &Request) -> Reply {
    if let Err(reply) = query(r, &["fieldManager", "dryRun", "fieldValidation"]) {
        return reply;
    }
    if t.plural != "deployments" {
        return status(
            415,
            "UnsupportedMediaType",
            "the stand-in merges only deployments",
        );
    }
    let patch: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let only = |v: &Value, key: &str| {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && o.contains_key(key))
    };
    if !(only(&patch, "spec")
        && only(&patch["spec"], "template")
        && only(&patch["spec"]["template"], "spec")
        && only(&patch["spec"]["template"]["spec"], "containers"))
    {
        return status(400, "BadRequest", format!("not a set-image patch: {patch}"));
    }
    let containers =
        match read_value::<Vec<Container>>(&patch["spec"]["template"]["spec"]["containers"]) {
            Ok(c) => c,
            Err(why) => return status(400, "BadRequest", why),
        };
    let mut s = state.lock().unwrap();
    let Some(mut stored) = s.objects.get(&r.path).cloned() else {
        return status(
            404,
            "NotFound",
            format!(
                "deployments.apps \"{}\" not found",
                t.name.as_deref().unwrap_or("")
            ),
        );
    };
    for c in &containers {
        let Some(target) = stored["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .and_then(|list| list.iter_mut().find(|x| x["name"] == c.name.as_str()))
        else {
            return status(
                422,
                "Invalid",
                format!("spec.template.spec.containers: no container {:?}", c.name),
            );
        };
        target["image"] = json!(c.image);
    }
    let generation = s.generations.entry(r.path.clone()).or_insert(0);
    *generation += 1;
    stored["metadata"]["generation"] = json!(*generation);
    stored["metadata"]["resourceVersion"] = json!(generation.to_string());
    s.objects.insert(r.path.clone(), stored.clone());
    Reply::json(200, stored)
}

/// The stored deployment with the status its behaviour gives it.
fn deployment(stored: &Value, behaviour: &Behaviour, done: bool) -> Value {
    let name = stored["metadata"]["name"].as_str().unwrap_or("");
    let want = stored["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = stored["metadata"]["generation"].clone();
    let status = if behaviour.stuck.contains(&name) {
        json!({"observedGeneration": generation, "replicas": want + 1, "updatedReplicas": want,
               "availableReplicas": want, "unavailableReplicas": 1})
    } else if behaviour.slow.contains(&name) && !done {
        json!({"observedGeneration": generation, "replicas": want, "updatedReplicas": want,
               "availableReplicas": 0, "unavailableReplicas": want})
    } else {
        json!({"observedGeneration": generation, "replicas": want, "updatedReplicas": want,
               "availableReplicas": want})
    };
    let mut d = stored.clone();
    d["status"] = status;
    read_value::<Deployment>(&d).expect("the stand-in serves well-formed deployments");
    d
}

fn read_deployment(state: &Mutex<State>, behaviour: &Behaviour, t: &Target, r: &Request) -> Reply {
    if let Err(reply) = query(r, &[]) {
        return reply;
    }
    match state.lock().unwrap().objects.get(&r.path) {
        Some(stored) => Reply::json(200, deployment(stored, behaviour, false)),
        None => status(
            404,
            "NotFound",
            format!(
                "deployments.apps \"{}\" not found",
                t.name.as_deref().unwrap_or("")
            ),
        ),
    }
}

/// A watch of one deployment: a slow one's rollout arrives as a `MODIFIED` event; otherwise
/// nothing happens until the watch's time is up (at most a few seconds here).
fn watch(state: &Mutex<State>, behaviour: &Behaviour, t: &Target, r: &Request) -> Reply {
    let q = match query(
        r,
        &[
            "watch",
            "fieldSelector",
            "labelSelector",
            "timeoutSeconds",
            "resourceVersion",
            "allowWatchBookmarks",
        ],
    ) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    if q.get("watch").map(String::as_str) != Some("true") {
        return status(
            405,
            "MethodNotAllowed",
            "the stand-in lists deployments only as a watch",
        );
    }
    let Some(name) = q
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
    else {
        return status(
            400,
            "BadRequest",
            "the stand-in watches one deployment by metadata.name",
        );
    };
    let seconds: u64 = match q.get("timeoutSeconds").map(|s| s.parse()) {
        Some(Ok(s)) => s,
        _ => return status(400, "BadRequest", "timeoutSeconds must be a number"),
    };
    let path = format!(
        "/apis/apps/v1/namespaces/{}/deployments/{name}",
        t.namespace.as_deref().unwrap_or("")
    );
    let Some(stored) = state.lock().unwrap().objects.get(&path).cloned() else {
        return Reply::json(200, json!(null));
    };
    if behaviour.slow.contains(&name) {
        std::thread::sleep(Duration::from_millis(100));
        let event = json!({"type": "MODIFIED", "object": deployment(&stored, behaviour, true)});
        return Reply::Respond {
            status: 200,
            content_type: "application/json",
            body: format!("{event}\n"),
        };
    }
    std::thread::sleep(Duration::from_secs(seconds.min(3)));
    Reply::Respond {
        status: 200,
        content_type: "application/json",
        body: String::new(),
    }
}

/// The pods of a deployment: a stuck one's cannot pull their image.
fn pods(behaviour: &Behaviour, t: &Target, r: &Request) -> Reply {
    let q = match query(
        r,
        &["labelSelector", "fieldSelector", "limit", "resourceVersion"],
    ) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    let component = q
        .get("labelSelector")
        .and_then(|s| s.strip_prefix("component="))
        .unwrap_or("");
    let items: Vec<Value> = if behaviour
        .stuck
        .contains(&format!("{component}-deployment").as_str())
    {
        vec![json!({
            "metadata": {"name": format!("{component}-deployment-7d9f-x2k4p"), "namespace": t.namespace,
                         "labels": {"component": component}},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": component, "ready": false, "restartCount": 0, "imageID": "",
                "image": format!("stephengrider/multi-{component}:{}", super::SHA),
                "state": {"waiting": {"reason": "ImagePullBackOff",
                    "message": format!("Back-off pulling image \"stephengrider/multi-{component}:{}\"", super::SHA)}}}]}
        })]
    } else {
        Vec::new()
    };
    let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items});
    read_value::<k8s_openapi::List<Pod>>(&list).expect("the stand-in serves well-formed pods");
    Reply::json(200, list)
}

/// Verifies the JWT-bearer assertion: RS256 signature by the service account, its claims.
fn check_assertion(
    form: &BTreeMap<String, String>,
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
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let keys: BTreeSet<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    if header["alg"] != "RS256"
        || claims["iss"] != "deployer@my-project.iam.gserviceaccount.com"
        || claims["aud"] != aud
        || claims["scope"] != format!("https://www.{UNIVERSE}/auth/cloud-platform")
        || claims["exp"].as_u64().unwrap_or(0) != claims["iat"].as_u64().unwrap_or(0) + 3600
        || keys != BTreeSet::from(["aud", "exp", "iat", "iss", "scope"])
    {
        return Err(format!("bad claims {claims}"));
    }
    Ok(())
}
