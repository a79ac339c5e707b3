//! The course's Elastic Beanstalk pipelines, planned from their own files and deployed: S3 is
//! moto, Beanstalk is a stand-in that checks the exact requests (moto cannot create versions or
//! update environments) and answers like the real service.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::*;
use serde_json::json;
use slipway_pipelines::plan::{Context, Deploy, EventType};
use slipway_providers::{EnvValue, MemorySink, Outcome, bundle, run_deploy};
use slipway_secrets::Secret;

const SHA: &str = "c0ffee1234567890c0ffee1234567890c0ffee12";
const LABEL: &str = "slipway-c0ffee1234567890c0ffee1234567890c0ffee12-1700000000";

/// The deploy the planner makes of a course pipeline for a push to master.
fn planned_deploy(dir: &Path) -> Deploy {
    let bytes = std::fs::read(dir.join(".travis.yml")).unwrap();
    let ctx = Context {
        event: EventType::Push,
        branch: "master".into(),
        repo: "octo/app".into(),
        commit: Some(SHA.into()),
        commit_message: "Deploy the thing".into(),
        ..Context::default()
    };
    let plan = slipway_pipelines::plan(".travis.yml", &bytes, &ctx).unwrap();
    let deploys: Vec<Deploy> = plan
        .stages
        .iter()
        .flat_map(|s| &s.jobs)
        .flat_map(|j| j.deploys.clone())
        .collect();
    assert_eq!(deploys.len(), 1);
    assert!(deploys[0].decision.included, "{:?}", deploys[0].decision);
    deploys.into_iter().next().unwrap()
}

/// The course files read their keys from settings variables `$AWS_ACCESS_KEY` / `$AWS_SECRET_KEY`.
fn course_context(dir: &Path, s3: &str, eb: &str) -> slipway_providers::DeployContext {
    let mut ctx = context(dir).with_env("AWS_ACCESS_KEY", "AKIDCOURSE");
    ctx.env.insert(
        "AWS_SECRET_KEY".into(),
        EnvValue::Secret(Secret::new("course-secret".into())),
    );
    ctx.endpoints.s3 = Some(s3.into());
    ctx.endpoints.elasticbeanstalk = Some(eb.into());
    ctx
}

fn env_xml(app: &str, env: &str, label: &str, status: &str) -> String {
    format!(
        "<DescribeEnvironmentsResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><DescribeEnvironmentsResult><Environments><member><EnvironmentName>{env}</EnvironmentName><ApplicationName>{app}</ApplicationName><VersionLabel>{label}</VersionLabel><Status>{status}</Status><Health>Green</Health></member></Environments></DescribeEnvironmentsResult></DescribeEnvironmentsResponse>"
    )
}

fn events_xml(events: &[(&str, &str)]) -> String {
    let members: String = events
        .iter()
        .enumerate()
        .map(|(i, (sev, msg))| format!("<member><EventDate>2023-11-14T22:13:2{i}Z</EventDate><Message>{msg}</Message><Severity>{sev}</Severity></member>"))
        .collect();
    format!(
        "<DescribeEventsResponse><DescribeEventsResult><Events>{members}</Events></DescribeEventsResult></DescribeEventsResponse>"
    )
}

fn ok_xml(action: &str) -> String {
    format!("<{action}Response><{action}Result></{action}Result></{action}Response>")
}

/// A Beanstalk that has the application and environment, goes Updating, then Ready with the new
/// version; `error_event` makes it report an ERROR event instead.
fn beanstalk(app: &'static str, env: &'static str, error_event: bool) -> StandIn {
    let describes = Arc::new(AtomicUsize::new(0));
    StandIn::start(move |r| match r.action().as_str() {
        "DescribeApplications" => Reply::xml(
            200,
            format!(
                "<DescribeApplicationsResponse><DescribeApplicationsResult><Applications><member><ApplicationName>{app}</ApplicationName></member></Applications></DescribeApplicationsResult></DescribeApplicationsResponse>"
            ),
        ),
        "CreateApplicationVersion" => Reply::xml(200, ok_xml("CreateApplicationVersion")),
        "UpdateEnvironment" => Reply::xml(200, ok_xml("UpdateEnvironment")),
        "DescribeEnvironments" => match describes.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::xml(200, env_xml(app, env, "old-version", "Ready")),
            1 => Reply::xml(200, env_xml(app, env, LABEL, "Updating")),
            _ => Reply::xml(200, env_xml(app, env, LABEL, "Ready")),
        },
        "DescribeEvents" if error_event => Reply::xml(
            200,
            events_xml(&[
                ("INFO", "Environment update is starting."),
                (
                    "ERROR",
                    "Failed to pull Docker image stephengrider/multi-client: not found.\nCheck snapshot logs.",
                ),
            ]),
        ),
        "DescribeEvents" => Reply::xml(
            200,
            events_xml(&[
                ("INFO", "Environment update is starting."),
                ("INFO", "Environment update completed successfully."),
            ]),
        ),
        other => Reply::xml(
            400,
            format!(
                "<ErrorResponse><Error><Code>Unexpected</Code><Message>{other}</Message></Error></ErrorResponse>"
            ),
        ),
    })
}

async fn bundle_entries(
    moto: &str,
    region: &str,
    bucket: &str,
    key: &str,
) -> Vec<(String, Vec<u8>)> {
    let s3 = s3_at(moto, region).await;
    let obj = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let bytes = obj.body.collect().await.unwrap().into_bytes().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut content).unwrap();
        out.push((name, content));
    }
    out.sort();
    out
}

/// Beanstalk actions in order, and the parameters of each.
fn eb_calls(standin: &StandIn) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    standin
        .requests()
        .iter()
        .map(|r| (r.action(), r.form()))
        .collect()
}

/// Deletes the bucket's objects and the bucket, so reruns against a shared moto start clean.
async fn drop_bucket(moto: &str, region: &str, bucket: &str) {
    let s3 = s3_at(moto, region).await;
    if let Ok(list) = s3.list_objects_v2().bucket(bucket).send().await {
        for o in list.contents() {
            let _ = s3
                .delete_object()
                .bucket(bucket)
                .key(o.key().unwrap())
                .send()
                .await;
        }
        let _ = s3.delete_bucket().bucket(bucket).send().await;
    }
}

#[tokio::test]
async fn docker_react_deploys_to_elastic_beanstalk_and_waits_until_ready() {
    let Some(dir) = course("DockerCasts/frontend") else {
        return;
    };
    let Some(moto) = moto() else { return };
    let d = planned_deploy(&dir);
    let bucket = d.options["bucket"].as_str().unwrap().to_owned();
    drop_bucket(&moto, "us-west-2", &bucket).await;
    let eb = beanstalk("docker", "Docker-env", false);
    let ctx = course_context(&dir, &moto, &eb.url);
    let (summary, log) = deployed(&d, &ctx).await;
    assert_eq!(
        summary,
        format!("environment Docker-env is Ready with version {LABEL}")
    );

    let key = format!("docker/{LABEL}.zip");
    let entries = bundle_entries(&moto, "us-west-2", &bucket, &key).await;
    let expected = bundle::files(&dir).unwrap();
    assert_eq!(
        entries.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        expected
    );
    for (name, content) in &entries {
        assert_eq!(content, &std::fs::read(dir.join(name)).unwrap(), "{name}");
    }
    let calls = eb_calls(&eb);
    let actions: Vec<&str> = calls.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "DescribeApplications",
            "CreateApplicationVersion",
            "DescribeEnvironments",
            "UpdateEnvironment",
            "DescribeEvents",
            "DescribeEnvironments",
            "DescribeEvents",
            "DescribeEnvironments"
        ]
    );
    let version = &calls[1].1;
    assert_eq!(version["ApplicationName"], "docker");
    assert_eq!(version["VersionLabel"], LABEL);
    assert_eq!(version["SourceBundle.S3Bucket"], bucket);
    assert_eq!(version["SourceBundle.S3Key"], key);
    let update = &calls[3].1;
    assert_eq!(update["EnvironmentName"], "Docker-env");
    assert_eq!(update["VersionLabel"], LABEL);
    // Requests are signed for the file's region with the key from $AWS_ACCESS_KEY.
    let auth = eb.requests()[0].header("authorization").unwrap();
    assert!(
        auth.contains("Credential=AKIDCOURSE/") && auth.contains("/us-west-2/elasticbeanstalk/"),
        "{auth}"
    );
    assert!(!log.lines().join("\n").contains("course-secret"));
}

#[tokio::test]
async fn multi_docker_bundle_pins_the_pushed_images_and_updates_the_environment() {
    let Some(dir) = course("multi-docker") else {
        return;
    };
    let Some(moto) = moto() else { return };
    let d = planned_deploy(&dir);
    let bucket = d.options["bucket"].as_str().unwrap().to_owned();
    drop_bucket(&moto, "us-west-1", &bucket).await;
    let eb = beanstalk("multi-docker", "MultiDocker-env", false);
    let mut ctx = course_context(&dir, &moto, &eb.url);
    ctx.pushed_images = ["client", "nginx", "server", "worker"]
        .iter()
        .flat_map(|n| {
            [
                format!("stephengrider/multi-{n}:latest"),
                format!("stephengrider/multi-{n}:{SHA}"),
            ]
        })
        .collect();
    deployed(&d, &ctx).await;

    let entries = bundle_entries(
        &moto,
        "us-west-1",
        &bucket,
        &format!("docker-multi/{LABEL}.zip"),
    )
    .await;
    assert_eq!(
        entries.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        bundle::files(&dir).unwrap()
    );
    for (name, content) in &entries {
        if name != "Dockerrun.aws.json" {
            assert_eq!(content, &std::fs::read(dir.join(name)).unwrap(), "{name}");
        }
    }
    let (_, dockerrun) = entries
        .iter()
        .find(|(n, _)| n == "Dockerrun.aws.json")
        .unwrap();
    let mut original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("Dockerrun.aws.json")).unwrap()).unwrap();
    for c in original["containerDefinitions"].as_array_mut().unwrap() {
        let image = c["image"].as_str().unwrap().to_owned();
        c["image"] = json!(format!("{image}:{SHA}"));
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(dockerrun).unwrap(),
        original
    );
    let actions: Vec<String> = eb_calls(&eb).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        &actions[..4],
        [
            "DescribeApplications",
            "CreateApplicationVersion",
            "DescribeEnvironments",
            "UpdateEnvironment"
        ]
    );
    assert_eq!(actions.last().unwrap(), "DescribeEnvironments");
}

#[tokio::test]
async fn an_eb_error_event_fails_the_deploy_in_one_line() {
    let Some(moto) = moto() else { return };
    let eb = beanstalk("web", "web-env", true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM nginx\n").unwrap();
    let mut ctx = context(dir.path());
    ctx.endpoints.s3 = Some(moto.clone());
    ctx.endpoints.elasticbeanstalk = Some(eb.url.clone());
    let d = deploy_eb(json!({"app": "web", "env": "web-env", "bucket": unique("eb-error")}));
    let (e, log) = failed(&d, &ctx).await;
    assert_eq!(
        e.one_line(),
        "elasticbeanstalk: environment web-env reported an ERROR event: Failed to pull Docker image stephengrider/multi-client: not found. Check snapshot logs."
    );
    assert_eq!(
        log.lines().last().unwrap(),
        &format!("Deploy failed: {}", e.one_line())
    );
}

fn deploy_eb(options: serde_json::Value) -> Deploy {
    Deploy {
        provider: "elasticbeanstalk".into(),
        options: options.as_object().unwrap().clone().into_iter().collect(),
        decision: slipway_pipelines::plan::Decision {
            included: true,
            reason: "test".into(),
        },
        skip_cleanup: false,
        allow_failure: false,
        edge: None,
        condition: vec![],
    }
}

#[tokio::test]
async fn missing_bucket_permissions_fail_the_upload_in_one_line() {
    // S3 lets the bucket be seen but refuses the upload, as for a key without s3:PutObject.
    let s3 = StandIn::start(|r| match r.method.as_str() {
        "HEAD" => Reply::xml(200, ""),
        _ => Reply::xml(
            403,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>",
        ),
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.js"), "x").unwrap();
    let mut ctx = context(dir.path());
    ctx.endpoints.s3 = Some(s3.url.clone());
    ctx.endpoints.elasticbeanstalk = Some("http://127.0.0.1:9".into());
    let d = deploy_eb(json!({"app": "web", "env": "web-env", "bucket": "locked"}));
    let (e, _) = failed(&d, &ctx).await;
    assert_eq!(
        e.one_line(),
        format!(
            "elasticbeanstalk: PutObject s3://locked/{LABEL}.zip failed: AccessDenied: Access Denied"
        )
    );
}

#[tokio::test]
async fn bad_credentials_fail_with_the_services_message() {
    let eb = StandIn::start(|_| {
        Reply::xml(
            403,
            "<ErrorResponse xmlns=\"http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/\"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>1</RequestId></ErrorResponse>",
        )
    });
    let Some(moto) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.js"), "x").unwrap();
    let mut ctx = context(dir.path());
    ctx.endpoints.s3 = Some(moto);
    ctx.endpoints.elasticbeanstalk = Some(eb.url.clone());
    let d = deploy_eb(
        json!({"app": "web", "env": "web-env", "bucket": unique("eb-creds"),
                             "access_key_id": "AKIDWRONG", "secret_access_key": "wrong"}),
    );
    let (e, _) = failed(&d, &ctx).await;
    assert_eq!(
        e.one_line(),
        "elasticbeanstalk: DescribeApplications failed: InvalidClientTokenId: The security token included in the request is invalid."
    );
}

#[tokio::test]
async fn allow_failure_keeps_the_job_going() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut d = deploy_eb(json!({"app": "web", "bucket": "b"}));
    d.allow_failure = true;
    let out = run_deploy(&d, &ctx, &MemorySink::default()).await;
    let Outcome::FailedAllowed(e) = &out else {
        panic!("{out:?}")
    };
    assert!(!out.errors_job());
    assert_eq!(
        e.one_line(),
        "elasticbeanstalk: option `env`: is required unless only_create_app_version is true"
    );
}
