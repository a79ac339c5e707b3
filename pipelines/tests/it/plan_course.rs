//! The course pipelines Slipway's design grew from, planned and checked exactly.
//!
//! The files are read from the shared corpus (never copied); the expectations below restate what
//! each file says, so a planner change that alters any of it fails here.

use crate::util::{pull_request, push, shared_dir};
use serde_json::json;
use slipway_pipelines::plan::{EnvValue, EnvVar, ImageSource, Job, PhaseName, PhaseSource, Plan};

fn plan_course(path: &str, ctx: &slipway_pipelines::plan::Context) -> Option<Plan> {
    let shared = shared_dir()?;
    let bytes = std::fs::read(shared.join("corpus/course").join(path)).unwrap();
    Some(slipway_pipelines::plan(".travis.yml", &bytes, ctx).unwrap())
}

fn only_job(plan: &Plan) -> &Job {
    assert!(plan.build.included, "{}", plan.build.reason);
    assert_eq!(plan.stages.len(), 1);
    assert_eq!(plan.stages[0].name, "test");
    assert_eq!(plan.stages[0].jobs.len(), 1);
    &plan.stages[0].jobs[0]
}

fn commands(job: &Job, name: PhaseName) -> Vec<&str> {
    job.phases
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.commands.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn multi_docker_push_to_master_tests_pushes_images_and_deploys_to_beanstalk() {
    let Some(plan) = plan_course("multi-docker/.travis.yml", &push("master")) else {
        return;
    };
    let job = only_job(&plan);
    assert_eq!(job.number, 1);
    assert!(!job.allow_failure);
    assert_eq!(job.services, vec!["docker"]);
    assert_eq!(job.image.source, ImageSource::Language);
    assert_eq!(
        commands(job, PhaseName::BeforeInstall),
        vec!["docker build -t stephengrider/react-test -f ./client/Dockerfile.dev ./client"]
    );
    assert_eq!(
        commands(job, PhaseName::Script),
        vec!["docker run stephengrider/react-test npm test -- --coverage"]
    );
    assert_eq!(
        commands(job, PhaseName::AfterSuccess),
        vec![
            "docker build -t stephengrider/multi-client ./client",
            "docker build -t stephengrider/multi-nginx ./nginx",
            "docker build -t stephengrider/multi-server ./server",
            "docker build -t stephengrider/multi-worker ./worker",
            "echo \"$DOCKER_PASSWORD\" | docker login -u \"$DOCKER_ID\" --password-stdin",
            "docker push stephengrider/multi-client",
            "docker push stephengrider/multi-nginx",
            "docker push stephengrider/multi-server",
            "docker push stephengrider/multi-worker",
        ]
    );
    let script = job
        .phases
        .iter()
        .find(|p| p.name == PhaseName::Script)
        .unwrap();
    assert_eq!(script.source, PhaseSource::File);
    assert_eq!(job.deploys.len(), 1);
    let deploy = &job.deploys[0];
    assert_eq!(deploy.provider, "elasticbeanstalk");
    assert!(deploy.decision.included, "{}", deploy.decision.reason);
    assert_eq!(deploy.options["region"], json!("us-west-1"));
    assert_eq!(deploy.options["app"], json!("multi-docker"));
    assert_eq!(deploy.options["env"], json!("MultiDocker-env"));
    assert_eq!(
        deploy.options["bucket"],
        json!("elasticbeanstalk-us-west-1-306476627547")
    );
    assert_eq!(deploy.options["bucket_path"], json!("docker-multi"));
    assert_eq!(deploy.options["access_key_id"], json!("$AWS_ACCESS_KEY"));
    // The secure value stays an encrypted reference.
    assert_eq!(
        deploy.options["secret_access_key"],
        json!({"secure": "$AWS_SECRET_KEY"})
    );
    assert!(!deploy.options.contains_key("on"));
}

#[test]
fn multi_docker_does_not_deploy_on_a_pull_request_or_another_branch() {
    let Some(pr) = plan_course("multi-docker/.travis.yml", &pull_request("master")) else {
        return;
    };
    let deploy = &only_job(&pr).deploys[0];
    assert!(!deploy.decision.included);
    assert!(
        deploy.decision.reason.contains("pull request"),
        "{}",
        deploy.decision.reason
    );

    let other = plan_course("multi-docker/.travis.yml", &push("feature-x")).unwrap();
    let job = only_job(&other);
    // The job still runs (tests, image builds) ...
    assert_eq!(commands(job, PhaseName::AfterSuccess).len(), 9);
    // ... but the deploy does not.
    let deploy = &job.deploys[0];
    assert!(!deploy.decision.included);
    assert!(
        deploy.decision.reason.contains("feature-x"),
        "{}",
        deploy.decision.reason
    );
}

#[test]
fn multi_k8s_keeps_the_sha_env_for_the_shell_and_deploys_by_script_on_master_only() {
    let Some(plan) = plan_course("multi-k8s/.travis.yml", &push("master")) else {
        return;
    };
    let job = only_job(&plan);
    assert_eq!(
        job.env,
        vec![
            EnvVar {
                name: "SHA".to_owned(),
                value: EnvValue::Plain("$(git rev-parse HEAD)".to_owned()),
            },
            EnvVar {
                name: "CLOUDSDK_CORE_DISABLE_PROMPTS".to_owned(),
                value: EnvValue::Plain("1".to_owned()),
            },
        ]
    );
    assert_eq!(job.services, vec!["docker"]);
    assert_eq!(commands(job, PhaseName::BeforeInstall).len(), 10);
    let deploy = &job.deploys[0];
    assert_eq!(deploy.provider, "script");
    assert_eq!(deploy.options["script"], json!("bash ./deploy.sh"));
    assert!(deploy.decision.included, "{}", deploy.decision.reason);

    for ctx in [push("feature-x"), pull_request("master")] {
        let plan = plan_course("multi-k8s/.travis.yml", &ctx).unwrap();
        assert!(!only_job(&plan).deploys[0].decision.included);
    }
}
