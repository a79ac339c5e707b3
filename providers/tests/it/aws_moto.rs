//! Providers against real AWS APIs served locally by moto, through the official SDK crates.

use crate::util::*;
use serde_json::json;
use slipway_providers::{MemorySink, Outcome, run_deploy};

#[tokio::test]
async fn s3_uploads_land_in_the_bucket_under_upload_dir_with_types_cache_control_and_encoding() {
    let Some(moto) = moto() else { return };
    let bucket = unique("site");
    let conf = sdk(&moto, "us-east-1").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    let dir = tree(&[
        ("dist/index.html", "<h1>hi</h1>"),
        ("dist/js/app.js", "console.log(1)"),
        ("dist/.hidden", "x"),
        ("src/main.js", "not uploaded"),
    ]);
    // gzip's magic bytes: `detect_encoding` sends `Content-Encoding: gzip` for this one only.
    std::fs::write(
        dir.path().join("dist/js/app.js.gz"),
        [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00],
    )
    .unwrap();
    let mut ctx = context(dir.path());
    ctx.endpoints = aws_at(&moto);
    let d = deploy(
        "s3",
        json!({"bucket": bucket, "local_dir": "dist", "upload_dir": "v1",
               "cache_control": ["no-cache: *.html", "max-age=3600"], "acl": "public_read",
               "detect_encoding": true}),
    );
    let log = MemorySink::default();
    let out = run_deploy(&d, &ctx, &log).await;
    assert!(
        matches!(out, Outcome::Deployed(_)),
        "{out:?} {:?}",
        log.lines()
    );

    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let mut keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort();
    assert_eq!(keys, ["v1/index.html", "v1/js/app.js", "v1/js/app.js.gz"]);
    let html = s3
        .head_object()
        .bucket(&bucket)
        .key("v1/index.html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.content_type(), Some("text/html"));
    assert_eq!(html.cache_control(), Some("no-cache"));
    let js = s3
        .head_object()
        .bucket(&bucket)
        .key("v1/js/app.js")
        .send()
        .await
        .unwrap();
    assert_eq!(js.content_type(), Some("application/javascript"));
    assert_eq!(js.cache_control(), Some("max-age=3600"));
    assert_eq!(js.content_encoding(), None);
    let gz = s3
        .head_object()
        .bucket(&bucket)
        .key("v1/js/app.js.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.content_encoding(), Some("gzip"));
}

/// Creates a cluster, a task definition family `web` and a service of `desired` tasks in moto.
async fn ecs_setup(url: &str, cluster: &str, desired: i32) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::types::ContainerDefinition;
    let conf = sdk(url, "us-east-1").await;
    let ecs = aws_sdk_ecs::Client::new(&conf);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("me/web:old")
                .memory(128)
                .build(),
        )
        .container_definitions(
            ContainerDefinition::builder()
                .name("sidecar")
                .image("me/proxy:1")
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(cluster)
        .service_name("web")
        .task_definition("web")
        .desired_count(desired)
        .send()
        .await
        .unwrap();
    ecs
}

#[tokio::test]
async fn ecs_registers_a_revision_with_the_pushed_image_and_updates_the_service() {
    // moto reports MOTO_ECS_SERVICE_RUNNING tasks running, so the service can become stable.
    let Some(moto) = MotoServer::spawn_or_skip(&[("MOTO_ECS_SERVICE_RUNNING", "2")]) else {
        return;
    };
    let ecs = ecs_setup(&moto.url, "prod", 2).await;
    let mut ctx = context("/nonexistent");
    ctx.endpoints = aws_at(&moto.url);
    ctx.pushed_images = vec!["me/web:latest".into(), "me/web:c0ffee".into()];
    let d = deploy(
        "ecs",
        json!({"cluster": "prod", "service": "web", "task_definition": "web", "timeout": 10}),
    );
    let log = MemorySink::default();
    let out = run_deploy(&d, &ctx, &log).await;
    let Outcome::Deployed(summary) = out else {
        panic!("{out:?} {:#?}", log.lines())
    };
    assert!(summary.contains("web:2"), "{summary}");
    assert!(summary.contains("rollout COMPLETED"), "{summary}");

    let td = ecs
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(td.revision(), 2);
    let images: Vec<_> = td
        .container_definitions()
        .iter()
        .map(|c| (c.name().unwrap(), c.image().unwrap()))
        .collect();
    assert_eq!(
        images,
        [("web", "me/web:c0ffee"), ("sidecar", "me/proxy:1")]
    );
    let svc = ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        svc.services()[0].task_definition(),
        td.task_definition_arn()
    );
    assert!(
        log.lines()
            .iter()
            .any(|l| l == "ecs: image web: me/web:old → me/web:c0ffee"),
        "{:#?}",
        log.lines()
    );
}

#[tokio::test]
async fn ecs_service_that_never_stabilises_times_out_and_rolls_back() {
    let Some(moto) = MotoServer::spawn_or_skip(&[("MOTO_ECS_SERVICE_RUNNING", "0")]) else {
        return;
    };
    let ecs = ecs_setup(&moto.url, "stuck", 2).await;
    let mut ctx = context("/nonexistent");
    ctx.endpoints = aws_at(&moto.url);
    let d = deploy(
        "ecs",
        json!({"cluster": "stuck", "service": "web", "task_definition": "web",
               "container": "web", "image": "me/web:new", "timeout": 1, "rollback": true}),
    );
    let log = MemorySink::default();
    let Outcome::Failed(e) = run_deploy(&d, &ctx, &log).await else {
        panic!("{:#?}", log.lines())
    };
    let line = e.one_line();
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with("ecs: service web becoming stable did not finish within 1 s: rollout IN_PROGRESS, 0 of 2 task(s) running"),
        "{line}"
    );
    assert!(
        line.ends_with("(rolled back to arn:aws:ecs:us-east-1:123456789012:task-definition/web:1)"),
        "{line}"
    );
    let svc = ecs
        .describe_services()
        .cluster("stuck")
        .services("web")
        .send()
        .await
        .unwrap();
    assert!(
        svc.services()[0]
            .task_definition()
            .unwrap()
            .ends_with("task-definition/web:1")
    );
}

#[tokio::test]
async fn multi_docker_deploys_to_ecs_from_its_dockerrun_file() {
    let Some(dir) = course("multi-docker") else {
        return;
    };
    let Some(moto) = MotoServer::spawn_or_skip(&[("MOTO_ECS_SERVICE_RUNNING", "1")]) else {
        return;
    };
    let conf = sdk(&moto.url, "us-west-1").await;
    let ecs = aws_sdk_ecs::Client::new(&conf);
    ecs.create_cluster()
        .cluster_name("multi")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("multi-docker")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("nginx")
                .image("nginx")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("multi")
        .service_name("multi-docker")
        .task_definition("multi-docker")
        .desired_count(1)
        .send()
        .await
        .unwrap();

    let sha = "c0ffee1234567890c0ffee1234567890c0ffee12";
    let mut ctx = context(&dir);
    ctx.endpoints = aws_at(&moto.url);
    ctx.pushed_images = ["client", "nginx", "server", "worker"]
        .iter()
        .map(|n| format!("stephengrider/multi-{n}:{sha}"))
        .collect();
    let d = deploy(
        "ecs",
        json!({"region": "us-west-1", "cluster": "multi", "service": "multi-docker", "timeout": 10}),
    );
    let log = MemorySink::default();
    let out = run_deploy(&d, &ctx, &log).await;
    assert!(
        matches!(out, Outcome::Deployed(_)),
        "{out:?} {:#?}",
        log.lines()
    );
    let td = ecs
        .describe_task_definition()
        .task_definition("multi-docker")
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(td.revision(), 2);
    let by_name: std::collections::BTreeMap<_, _> = td
        .container_definitions()
        .iter()
        .map(|c| (c.name().unwrap(), c))
        .collect();
    assert_eq!(by_name.len(), 4);
    for n in ["client", "nginx", "server", "worker"] {
        assert_eq!(
            by_name[n].image(),
            Some(format!("stephengrider/multi-{n}:{sha}").as_str())
        );
    }
    assert_eq!(by_name["nginx"].links(), ["client", "server"]);
    assert_eq!(by_name["nginx"].port_mappings()[0].host_port(), Some(80));
    assert_eq!(by_name["nginx"].essential(), Some(true));
}

#[tokio::test]
async fn elastic_beanstalk_creates_the_application_and_environment() {
    // moto answers S3 and Beanstalk's CreateApplication/CreateEnvironment/Describe*; it has no
    // CreateApplicationVersion or DescribeEvents, which the stand-in answers in front of it.
    let Some(moto) = moto() else { return };
    let app = unique("app");
    let env = "web-env";
    let standin = {
        let moto = moto.clone();
        StandIn::start(move |r| match r.action().as_str() {
            "CreateApplicationVersion" => Reply::xml(
                200,
                format!(
                    "<CreateApplicationVersionResponse><CreateApplicationVersionResult><ApplicationVersion><ApplicationName>{}</ApplicationName><VersionLabel>{}</VersionLabel><Status>UNPROCESSED</Status></ApplicationVersion></CreateApplicationVersionResult></CreateApplicationVersionResponse>",
                    r.form()["ApplicationName"],
                    r.form()["VersionLabel"]
                ),
            ),
            "DescribeEvents" => Reply::xml(
                200,
                "<DescribeEventsResponse><DescribeEventsResult><Events/></DescribeEventsResult></DescribeEventsResponse>",
            ),
            _ => Reply::Forward(moto.clone()),
        })
    };
    let dir = tree(&[
        ("Dockerfile", "FROM nginx\n"),
        (".gitignore", "node_modules\n"),
        ("node_modules/x.js", "x"),
    ]);
    let mut ctx = context(dir.path());
    ctx.endpoints = aws_at(&moto);
    ctx.endpoints.elasticbeanstalk = Some(standin.url.clone());
    let bucket = unique("eb-bundles");
    let d = deploy(
        "elasticbeanstalk",
        json!({"app": app, "env": env, "bucket": bucket, "bucket_path": "apps",
               "solution_stack": "64bit Amazon Linux 2 running Docker", "wait_until_deployed_timeout": 10}),
    );
    let log = MemorySink::default();
    let out = run_deploy(&d, &ctx, &log).await;
    assert!(
        matches!(out, Outcome::Deployed(_)),
        "{out:?} {:#?}",
        log.lines()
    );

    let conf = sdk(&moto, "us-east-1").await;
    let eb = aws_sdk_elasticbeanstalk::Client::new(&conf);
    let apps = eb
        .describe_applications()
        .application_names(&app)
        .send()
        .await
        .unwrap();
    // moto ignores the name filters, so filter here.
    assert!(
        apps.applications()
            .iter()
            .any(|a| a.application_name() == Some(app.as_str()))
    );
    let envs = eb
        .describe_environments()
        .application_name(&app)
        .send()
        .await
        .unwrap();
    let ours: Vec<_> = envs
        .environments()
        .iter()
        .filter(|e| e.application_name() == Some(app.as_str()))
        .map(|e| e.environment_name().unwrap())
        .collect();
    assert_eq!(ours, [env]);
    let label = "slipway-c0ffee1234567890c0ffee1234567890c0ffee12-1700000000";
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let obj = s3
        .get_object()
        .bucket(&bucket)
        .key(format!("apps/{label}.zip"))
        .send()
        .await
        .unwrap();
    let bytes = obj.body.collect().await.unwrap().into_bytes();
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, [".gitignore", "Dockerfile"]);
    let version = standin
        .requests()
        .into_iter()
        .find(|r| r.action() == "CreateApplicationVersion")
        .unwrap()
        .form();
    assert_eq!(version["VersionLabel"], label);
    assert_eq!(version["SourceBundle.S3Bucket"], bucket);
    assert_eq!(version["SourceBundle.S3Key"], format!("apps/{label}.zip"));
    assert_eq!(version["Description"], "Deploy the thing");
    let actions = standin.actions();
    assert_eq!(
        &actions[..4],
        [
            "DescribeApplications",
            "CreateApplication",
            "CreateApplicationVersion",
            "DescribeEnvironments"
        ]
    );
    assert_eq!(actions[4], "CreateEnvironment");
}
