//! docs/scale-out.md's Kubernetes manifests stay true: each one reads into its `k8s-openapi`
//! type with no field the type does not know, the configuration in its Secret is one Slipway
//! accepts, and the objects name each other consistently (the Role is in the jobs' namespace and
//! bound to the account the Deployments run as, the Service reaches the servers' port, the
//! Secret holds every key the Deployments read).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The documents of every fenced `yaml` block of the page, as JSON.
fn manifests(page: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let mut docs = Vec::new();
    for block in blocks {
        for doc in block.split("\n---\n") {
            let node = slipway_pipelines::yaml::load(doc.as_bytes(), Default::default())
                .unwrap_or_else(|e| panic!("{e}:\n{doc}"))
                .expect("an empty document");
            docs.push(node.to_json());
        }
    }
    docs
}

/// Reads `doc` into `T` and checks that writing it back gives the same document: a misspelt
/// or misplaced field would be dropped on the way in and missing on the way out.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let value: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let back = serde_json::to_value(&value).unwrap();
    assert_eq!(
        &back, doc,
        "a field the Kubernetes API does not know, or a wrong type"
    );
    value
}

struct Objects {
    namespaces: Vec<Namespace>,
    secrets: Vec<Secret>,
    accounts: Vec<ServiceAccount>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
}

fn objects() -> Objects {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scale-out.md")).unwrap();
    let mut o = Objects {
        namespaces: vec![],
        secrets: vec![],
        accounts: vec![],
        roles: vec![],
        bindings: vec![],
        deployments: vec![],
        services: vec![],
    };
    for doc in manifests(&page) {
        match doc["kind"].as_str().unwrap_or_default() {
            "Namespace" => o.namespaces.push(typed(&doc)),
            "Secret" => o.secrets.push(typed(&doc)),
            "ServiceAccount" => o.accounts.push(typed(&doc)),
            "Role" => o.roles.push(typed(&doc)),
            "RoleBinding" => o.bindings.push(typed(&doc)),
            "Deployment" => o.deployments.push(typed(&doc)),
            "Service" => o.services.push(typed(&doc)),
            other => panic!("a manifest of kind {other:?} this test does not check: {doc}"),
        }
    }
    o
}

fn ns(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

#[test]
fn the_manifests_read_as_their_kubernetes_types_and_name_each_other() {
    let o = objects();
    assert_eq!(
        (o.secrets.len(), o.roles.len(), o.bindings.len()),
        (1, 1, 1)
    );
    assert_eq!((o.deployments.len(), o.services.len()), (2, 1));
    let namespaces: Vec<&str> = o
        .namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();

    // The configuration every process reads is one Slipway accepts, and runs jobs as pods in
    // the namespace the Role is for.
    let secret = &o.secrets[0];
    let data = secret.string_data.as_ref().expect("stringData");
    let config = slipway_webhook::Config::parse(&data["config.toml"]).unwrap();
    assert_eq!(
        config.executor,
        slipway_runner::executor::ExecutorKind::Kubernetes
    );
    assert_eq!(config.workers, 0, "the servers run no jobs");
    let jobs_ns = config.kubernetes.namespace.as_str();
    assert!(namespaces.contains(&jobs_ns), "{jobs_ns} is not created");
    assert!(
        slipway_webhook::store::PgUrl::parse(&data["store"]).is_ok(),
        "the store key is a PostgreSQL URL"
    );

    let role = &o.roles[0];
    let binding = &o.bindings[0];
    assert_eq!(ns(&role.metadata), jobs_ns);
    assert_eq!(ns(&binding.metadata), jobs_ns);
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());

    for d in &o.deployments {
        check_deployment(d, &o, &namespaces);
    }

    // The Service reaches the servers' named port.
    let service = o.services[0].spec.as_ref().unwrap();
    let server = o
        .deployments
        .iter()
        .find(|d| {
            let labels = &d
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels;
            service
                .selector
                .as_ref()
                .unwrap()
                .iter()
                .all(|(k, v)| labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        })
        .expect("the Service selects no Deployment");
    let pod = server
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(pod.containers[0].args.as_ref().unwrap()[0], "serve");
    let ports = pod.containers[0].ports.clone().unwrap_or_default();
    for p in service.ports.as_deref().unwrap_or_default() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let found = match p.target_port.as_ref().unwrap() {
            IntOrString::String(name) => ports.iter().any(|c| c.name.as_ref() == Some(name)),
            IntOrString::Int(n) => ports.iter().any(|c| c.container_port == *n),
        };
        assert!(found, "the Service's target port is not the server's");
    }
}

/// A Deployment runs as an account bound to the Role, in a namespace that is created, selects
/// its own pods, and reads only keys the Secret holds.
fn check_deployment(d: &Deployment, o: &Objects, namespaces: &[&str]) {
    let secret = &o.secrets[0];
    let data = secret.string_data.as_ref().expect("stringData");
    let binding = &o.bindings[0];
    let name = d.metadata.name.as_deref().unwrap();
    assert_eq!(ns(&d.metadata), ns(&secret.metadata), "{name}");
    assert!(namespaces.contains(&ns(&d.metadata)), "{name}");
    let spec = d.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    // Runs as the account the Role is bound to.
    let account = pod.service_account_name.as_deref().unwrap();
    assert!(
        o.accounts
            .iter()
            .any(|a| a.metadata.name.as_deref() == Some(account)
                && ns(&a.metadata) == ns(&d.metadata)),
        "{name}: no ServiceAccount {account}"
    );
    let subjects = binding.subjects.as_deref().unwrap_or_default();
    assert!(
        subjects.iter().any(|s| s.kind == "ServiceAccount"
            && s.name == account
            && s.namespace.as_deref() == Some(ns(&d.metadata))),
        "{name}: {account} is not bound to the Role"
    );
    // The selector picks the template's pods.
    let labels = spec.template.metadata.as_ref().unwrap().labels.clone();
    let wanted = spec.selector.match_labels.clone().unwrap();
    assert!(
        wanted
            .iter()
            .all(|(k, v)| labels.as_ref().and_then(|l| l.get(k)) == Some(v)),
        "{name}: selector and labels differ"
    );
    // Every key it reads from a Secret is in the Secret.
    let container = &pod.containers[0];
    for e in container.env.as_deref().unwrap_or_default() {
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            assert_eq!(Some(&r.name), secret.metadata.name.as_ref(), "{name}");
            assert!(data.contains_key(&r.key), "{name}: no key {}", r.key);
        }
    }
    for v in pod.volumes.as_deref().unwrap_or_default() {
        if let Some(s) = &v.secret {
            for item in s.items.as_deref().unwrap_or_default() {
                assert!(data.contains_key(&item.key), "{name}: no key {}", item.key);
            }
        }
    }
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.first().is_some_and(|a| a == "serve" || a == "worker"),
        "{name}: {args:?}"
    );
}

#[test]
fn a_misspelt_field_in_a_manifest_is_caught() {
    let page = "```yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n  namespce: slipway\n```\n";
    let docs = manifests(page);
    let caught = std::panic::catch_unwind(|| typed::<ServiceAccount>(&docs[0]));
    assert!(caught.is_err(), "namespce was not caught");
}
