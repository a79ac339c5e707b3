//! The course's manifests deployed with `provider: kubernetes` and a kubeconfig: one of the
//! build (its files confined to the build dir, no plugin may run) and the server's own for the
//! repository (kube-rs runs its exec plugin, as kubectl would).

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use slipway_pipelines::plan::Deploy;
use slipway_providers::RepoCredentials;

use super::cluster::{Behaviour, Cluster, TOKEN};
use crate::util::*;

/// A `kubernetes` deploy of two of the course's manifests, with `extra` options.
fn two_manifests(extra: serde_json::Value) -> Deploy {
    let mut options = json!({
        "manifests": ["k8s/redis-deployment.yaml", "k8s/redis-cluster-ip-service.yaml"],
        "timeout": 20,
    });
    options
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    deploy("kubernetes", options)
}

/// A build dir holding the course's manifests and `files`.
fn build_with(course: &Path, files: &[(&str, String)]) -> tempfile::TempDir {
    let build = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(build.path().join("k8s")).unwrap();
    for m in ["redis-deployment.yaml", "redis-cluster-ip-service.yaml"] {
        std::fs::copy(course.join("k8s").join(m), build.path().join("k8s").join(m)).unwrap();
    }
    for (name, text) in files {
        let path = build.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    build
}

/// A kubeconfig for the stand-in at `server` whose user is `user` (YAML, indented under `user:`).
fn kubeconfig(server: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: standin\nclusters:\n- name: standin\n  cluster:\n    server: {server}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: deployer\n    namespace: prod\nusers:\n- name: deployer\n  user:\n{user}"
    )
}

fn standin() -> Option<(std::path::PathBuf, Cluster)> {
    let course = course("multi-k8s")?;
    Some((course, Cluster::start(Vec::new(), Behaviour::default())))
}

/// The error of a deploy with a kubeconfig of the build whose user is `user`, which must fail.
async fn refused(course: &Path, cluster: &Cluster, user: &str) -> slipway_providers::Error {
    let build = build_with(
        course,
        &[("deploy/kubeconfig", kubeconfig(&cluster.standin.url, user))],
    );
    let d = two_manifests(json!({"kubeconfig": "deploy/kubeconfig"}));
    failed(&d, &context(build.path())).await.0
}

#[tokio::test]
async fn a_kubeconfig_of_the_build_with_a_token_file_applies_into_its_contexts_namespace() {
    let Some((course, cluster)) = standin() else {
        return;
    };
    let build = build_with(
        &course,
        &[
            (
                "deploy/kubeconfig",
                kubeconfig(&cluster.standin.url, "    tokenFile: token\n"),
            ),
            ("deploy/token", format!("{TOKEN}\n")),
        ],
    );
    let d = two_manifests(json!({"kubeconfig": "deploy/kubeconfig"}));
    let (summary, _) = deployed(&d, &context(build.path())).await;
    assert_eq!(
        summary,
        "2 object(s) applied, 0 image(s) set, 1 rollout(s) complete"
    );
    assert_eq!(
        cluster.standin.actions(),
        [
            "GET /apis/apps/v1",
            "PATCH /apis/apps/v1/namespaces/prod/deployments/redis-deployment",
            "GET /api/v1",
            "PATCH /api/v1/namespaces/prod/services/redis-cluster-ip-service",
            "GET /apis/apps/v1/namespaces/prod/deployments/redis-deployment",
        ]
    );
}

#[tokio::test]
async fn a_kubeconfig_of_the_build_may_not_name_files_outside_it() {
    let Some((course, cluster)) = standin() else {
        return;
    };
    let outside = tempfile::tempdir().unwrap();
    let token = outside.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let user = format!("    tokenFile: {}\n", token.display());
    let e = refused(&course, &cluster, &user).await;
    assert!(
        e.one_line()
            .starts_with("kubernetes: option `kubeconfig tokenFile`: "),
        "{}",
        e.one_line()
    );
    assert!(e.one_line().contains("is outside the build dir"));
    assert!(cluster.standin.requests().is_empty());
}

#[tokio::test]
async fn a_kubeconfig_of_the_build_may_not_run_a_plugin_on_this_machine() {
    let Some((course, cluster)) = standin() else {
        return;
    };
    let marker = tempfile::tempdir().unwrap();
    let ran = marker.path().join("ran");
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args: [\"-c\", \"touch {}; echo '{{}}'\"]\n",
        ran.display()
    );
    let e = refused(&course, &cluster, &user).await;
    assert!(
        e.one_line().ends_with(
            "deploy/kubeconfig: user deployer authenticates through a plugin, which a kubeconfig of the build may not run; give a token or client certificate (or use provider gke)"
        ),
        "{}",
        e.one_line()
    );
    assert!(!ran.exists());
    assert!(cluster.standin.requests().is_empty());
}

#[tokio::test]
async fn the_servers_kubeconfig_may_authenticate_through_an_exec_plugin() {
    let Some((course, cluster)) = standin() else {
        return;
    };
    let server = tempfile::tempdir().unwrap();
    let plugin = server.path().join("credential.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'\n"
        ),
    )
    .unwrap();
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args: [\"{}\"]\n",
        plugin.display()
    );
    let path = server.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig(&cluster.standin.url, &user)).unwrap();
    let build = build_with(&course, &[]);
    let mut ctx = context(build.path());
    ctx.credentials = slipway_providers::Credentials::Repository(Some(Arc::new(RepoCredentials {
        kubeconfig: Some(path),
        ..Default::default()
    })));
    deployed(&two_manifests(json!({})), &ctx).await;
    assert!(
        cluster
            .standin
            .requests()
            .iter()
            .all(|r| r.header("authorization").as_deref() == Some(&format!("Bearer {TOKEN}")))
    );
}
