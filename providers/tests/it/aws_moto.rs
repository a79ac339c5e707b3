//! Providers against real AWS APIs served locally by moto, through the official SDK crates.

use crate::util::*;
use serde_json::json;

#[tokio::test]
async fn s3_uploads_land_in_the_bucket_under_upload_dir_with_types_cache_control_and_encoding() {
    let Some(moto) = moto() else { return };
    let bucket = unique("site");
    let s3 = s3_at(&moto, "us-east-1").await;
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
    deployed(&d, &ctx).await;

    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let mut keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort();
    assert_eq!(keys, ["v1/index.html", "v1/js/app.js", "v1/js/app.js.gz"]);
    let html = head(&s3, &bucket, "v1/index.html").await;
    assert_eq!(html.content_type(), Some("text/html"));
    assert_eq!(html.cache_control(), Some("no-cache"));
    let js = head(&s3, &bucket, "v1/js/app.js").await;
    assert_eq!(js.content_type(), Some("application/javascript"));
    assert_eq!(js.cache_control(), Some("max-age=3600"));
    assert_eq!(js.content_encoding(), None);
    let gz = head(&s3, &bucket, "v1/js/app.js.gz").await;
    assert_eq!(gz.content_encoding(), Some("gzip"));
}

/// The object's metadata, as S3 answers `HEAD`.
async fn head(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
}

/// A family's containers: name, image, memory (MiB).
type Containers<'a> = &'a [(&'a str, &'a str, i32)];

/// Creates, in moto's `region`, `cluster` with a task definition `family` of `containers` and a
/// service of the same name running `desired` tasks of it.
async fn ecs_setup(
    url: &str,
    region: &str,
    cluster: &str,
    family: &str,
    containers: Containers<'_>,
    desired: i32,
) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::types::ContainerDefinition;
    let conf = sdk(url, region).await;
    let ecs = aws_sdk_ecs::Client::new(&conf);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    let mut register = ecs.register_task_definition().family(family);
    for (name, image, memory) in containers {
        register = register.container_definitions(
            ContainerDefinition::builder()
                .name(*name)
                .image(*image)
                .memory(*memory)
                .build(),
        );
    }
    register.send().await.unwrap();
    ecs.create_service()
        .cluster(cluster)
        .service_name(family)
        .task_definition(family)
        .desired_count(desired)
        .send()
        .await
        .unwrap();
    ecs
}

/// The `web` family of the ECS tests: the deployed container and a sidecar.
const WEB: Containers = &[("web", "me/web:old", 128), ("sidecar", "me/proxy:1", 64)];

/// The latest revision of task definition `family`.
async fn task_definition(
    ecs: &aws_sdk_ecs::Client,
    family: &str,
) -> aws_sdk_ecs::types::TaskDefinition {
    let described = ecs
        .describe_task_definition()
        .task_definition(family)
        .send()
        .await
        .unwrap();
    described.task_definition().unwrap().clone()
}

/// The task definition service `service` of `cluster` runs.
async fn service_task_definition(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Option<String> {
    let svc = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap();
    svc.services()[0].task_definition().map(str::to_owned)
}

#[tokio::test]
async fn ecs_registers_a_revision_with_the_pushed_image_and_updates_the_service() {
    // moto reports MOTO_ECS_SERVICE_RUNNING tasks running, so the service can become stable.
    let Some(moto) = MotoServer::spawn_or_skip(&[("MOTO_ECS_SERVICE_RUNNING", "2")]) else {
        return;
    };
    let ecs = ecs_setup(&moto.url, "us-east-1", "prod", "web", WEB, 2).await;
    let mut ctx = context("/nonexistent");
    ctx.endpoints = aws_at(&moto.url);
    ctx.pushed_images = vec!["me/web:latest".into(), "me/web:c0ffee".into()];
    let d = deploy(
        "ecs",
        json!({"cluster": "prod", "service": "web", "task_definition": "web", "timeout": 10}),
    );
    let (summary, log) = deployed(&d, &ctx).await;
    assert!(summary.contains("web:2"), "{summary}");
    assert!(summary.contains("rollout COMPLETED"), "{summary}");

    let td = task_definition(&ecs, "web").await;
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
    assert_eq!(
        service_task_definition(&ecs, "prod", "web")
            .await
            .as_deref(),
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
    let ecs = ecs_setup(&moto.url, "us-east-1", "stuck", "web", WEB, 2).await;
    let mut ctx = context("/nonexistent");
    ctx.endpoints = aws_at(&moto.url);
    let d = deploy(
        "ecs",
        json!({"cluster": "stuck", "service": "web", "task_definition": "web",
               "container": "web", "image": "me/web:new", "timeout": 1, "rollback": true}),
    );
    let (e, _) = failed(&d, &ctx).await;
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
    let running = service_task_definition(&ecs, "stuck", "web").await;
    assert!(running.unwrap().ends_with("task-definition/web:1"));
}

#[tokio::test]
async fn multi_docker_deploys_to_ecs_from_its_dockerrun_file() {
    let Some(dir) = course("multi-docker") else {
        return;
    };
    let Some(moto) = MotoServer::spawn_or_skip(&[("MOTO_ECS_SERVICE_RUNNING", "1")]) else {
        return;
    };
    let nginx = [("nginx", "nginx", 128)];
    let ecs = ecs_setup(&moto.url, "us-west-1", "multi", "multi-docker", &nginx, 1).await;

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
    deployed(&d, &ctx).await;
    let td = task_definition(&ecs, "multi-docker").await;
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
    deployed(&d, &ctx).await;

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
    let s3 = s3_client(&conf);
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
