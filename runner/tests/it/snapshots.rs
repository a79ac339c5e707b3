//! Snapshots of the pure parts: the Docker requests a job makes and the script it runs.

use std::collections::HashMap;

use slipway_pipelines::plan::{Context, PhaseName};
use slipway_runner::docker::requests::job_requests;
use slipway_runner::markers::{Marker, ScriptResult};
use slipway_runner::script::{self, DeployKind, DeployStep, ScriptEnv, ScriptInputs};
use slipway_runner::{BuildInfo, Runner, RunnerOptions, ServiceSpec};
use slipway_secrets::Secret;

use crate::util::bare_inputs;

fn plan(yaml: &str) -> slipway_pipelines::plan::Plan {
    let ctx = Context {
        branch: "feature".into(),
        repo: "acme/app".into(),
        commit: Some("c0ffee".into()),
        commit_message: "msg".into(),
        ..Default::default()
    };
    slipway_pipelines::plan(".slipway.yml", yaml.as_bytes(), &ctx).unwrap()
}

#[test]
fn docker_requests_for_a_job_with_services_cache_and_the_docker_socket() {
    let plan = plan(
        "image: ci/app:1\nlanguage: shell\nservices: [postgresql, redis, docker]\ncache:\n  directories: [node_modules]\nscript: make test\n",
    );
    let job = &plan.stages[0].jobs[0];
    let options = RunnerOptions {
        trusted: true,
        service_overrides: HashMap::from([(
            "redis".to_string(),
            ServiceSpec {
                name: "redis".into(),
                image: "local/redis:test".into(),
                env: vec![],
                cmd: Some(vec!["redis-server".into()]),
                ready: None,
                aliases: vec![],
            },
        )]),
        ..Default::default()
    };
    let runner = Runner::new(
        slipway_runner::fake::FakeExecutor::new(|_| Default::default()),
        options,
    );
    let build = BuildInfo {
        id: "b42".into(),
        number: 42,
    };
    let prepared = runner
        .prepare(
            &plan,
            job,
            &build,
            None,
            Some(slipway_runner::Owner::Branch("master".into())),
        )
        .unwrap();
    let req = job_requests(&prepared.spec, "/var/run/docker.sock", None);
    let value = serde_json::json!({
        "volumes": req.volumes,
        "network": req.network,
        "netns": req.netns,
        "services": req.services,
        "job": req.job,
    });
    insta::with_settings!({sort_maps => true}, {
        insta::assert_json_snapshot!(value, {
            ".**.Labels[\"dev.slipway.owner\"]" => "[owner]",
            ".**.labels[\"dev.slipway.owner\"]" => "[owner]",
            ".**.TRAVIS_CPU_ARCH" => "[arch]",
        });
    });
}

#[test]
fn the_compiled_script_for_every_phase_and_a_deploy() {
    let plan = plan(
        r#"
language: shell
before_install: echo bi
install: echo in
before_script: echo bs
script: [echo one, echo two]
before_cache: echo bc
after_success: echo as
after_failure: echo af
before_deploy: echo bd
after_deploy: echo ad
after_script: echo ascript
"#,
    );
    let job = &plan.stages[0].jobs[0];
    let inputs = ScriptInputs {
        job,
        nonce: "n0nce",
        env: vec![
            ScriptEnv::Shell {
                name: "SHA".into(),
                value: "$(git rev-parse HEAD)".into(),
            },
            ScriptEnv::Secret {
                name: "TOKEN".into(),
                value: Secret::new("it's-secret".into()),
            },
        ],
        cache_dirs: vec!["$HOME/.npm".into()],
        cache_archive: false,
        deploys: vec![
            DeployStep {
                index: 0,
                provider: "script".into(),
                kind: DeployKind::Script("./deploy.sh".into()),
                allow_failure: false,
                conditions: vec!["$TRAVIS_EVENT_TYPE = push".into()],
                cleanup: false,
                job_step: None,
            },
            DeployStep {
                index: 1,
                provider: "ecs".into(),
                kind: DeployKind::Skipped("branch feature is not on.branch (main)".into()),
                allow_failure: false,
                conditions: vec![],
                cleanup: true,
                job_step: None,
            },
            DeployStep {
                index: 2,
                provider: "s3".into(),
                kind: DeployKind::Hook,
                allow_failure: true,
                conditions: vec![],
                cleanup: true,
                job_step: None,
            },
        ],
        notices: vec![],
        addons: String::new(),
        workspace_restore: String::new(),
        workspace_save: String::new(),
        artifacts: None,
    };
    let shown = script::compile(&inputs, false);
    assert!(!shown.text.expose().contains("it's-secret"));
    assert!(
        script::compile(&inputs, true)
            .text
            .expose()
            .contains(r"export TOKEN='it'\''s-secret'")
    );
    assert!(shown.needs_stdin);
    insta::assert_snapshot!(shown.text.expose());
}

#[test]
fn the_docs_carry_the_generated_tables() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/runner.md");
    let docs = std::fs::read_to_string(&path).unwrap();
    let env = slipway_runner::env::docs_table();
    let services = slipway_runner::services::docs_table();
    let fresh = regenerate(&docs, "env", &env);
    let fresh = regenerate(&fresh, "services", &services);
    if std::env::var("SLIPWAY_UPDATE_DOCS").is_ok() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    assert_eq!(
        docs, fresh,
        "docs/runner.md is stale: run with SLIPWAY_UPDATE_DOCS=1"
    );
}

fn regenerate(doc: &str, name: &str, table: &str) -> String {
    let start = format!("<!-- generated:{name} -->\n");
    let end = format!("<!-- end:{name} -->");
    let a = doc
        .find(&start)
        .unwrap_or_else(|| panic!("no {start:?} in docs/runner.md"))
        + start.len();
    let b = doc[a..].find(&end).unwrap() + a;
    format!("{}{}{}", &doc[..a], table, &doc[b..])
}

#[test]
fn clone_false_gives_the_job_no_workspace_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.txt"), "x").unwrap();
    let ws = slipway_runner::workspace::pack(dir.path(), "/home/travis/build/acme/app").unwrap();
    let runner = Runner::new(
        slipway_runner::fake::FakeExecutor::new(|_| Default::default()),
        RunnerOptions::default(),
    );
    let build = BuildInfo {
        id: "b1".into(),
        number: 1,
    };
    let cloned = plan("language: shell\nscript: ls\n");
    let prepared =
        (runner.prepare(&cloned, &cloned.stages[0].jobs[0], &build, Some(&ws), None)).unwrap();
    assert!(prepared.spec.workspace_tar.is_some());
    assert!(!prepared.notices.iter().any(|n| n.contains("clone")));

    let skipped = plan("language: shell\ngit:\n  clone: false\nscript: ls\n");
    let prepared = (runner.prepare(
        &skipped,
        &skipped.stages[0].jobs[0],
        &build,
        Some(&ws),
        None,
    ))
    .unwrap();
    assert_eq!(prepared.spec.workspace_tar, None);
    assert!(
        prepared
            .notices
            .iter()
            .any(|n| n.starts_with("Skipping the clone (git: clone: false)")),
        "{:?}",
        prepared.notices
    );
}

/// Every marker the compiled script writes reads back as the runner's typed `Marker`, once the
/// values only the shell knows (exit codes, the result, its version) are in place.
#[test]
fn every_marker_the_compiled_script_writes_reads_back() {
    let plan = plan("language: shell\nscript: [echo one, echo two]\nbefore_deploy: echo bd\n");
    let job = &plan.stages[0].jobs[0];
    let deploy = |index, kind| DeployStep {
        index,
        provider: "script".into(),
        kind,
        allow_failure: false,
        conditions: vec![],
        cleanup: false,
        job_step: None,
    };
    let inputs = ScriptInputs {
        cache_dirs: vec!["deps".into()],
        cache_archive: true,
        deploys: vec![
            deploy(0, DeployKind::Script("./deploy.sh".into())),
            deploy(1, DeployKind::Hook),
        ],
        ..bare_inputs(job, "n0nce")
    };
    let text = script::compile(&inputs, true).text.into_exposed();
    let shell_values = [
        ("$slipway_rc", "3"),
        ("$slipway_result", "failed"),
        ("$BASH_VERSION", "5.2.15(1)-release"),
        ("${1:-0}", "4"),
    ];
    let mut read = Vec::new();
    for written in text.split("slipway_m ").skip(1) {
        let quote = written.chars().next().unwrap();
        if quote != '\'' && quote != '"' {
            continue;
        }
        let mut marker = written[1..].split(quote).next().unwrap().to_string();
        for (name, value) in shell_values {
            marker = marker.replace(name, value);
        }
        let parsed = Marker::parse(&marker);
        assert!(
            parsed.is_some(),
            "the script writes a marker the runner cannot read: {marker}"
        );
        read.extend(parsed);
    }
    for expected in [
        Marker::Shell(Some("5.2.15(1)-release".into())),
        Marker::Shell(None),
        Marker::PhaseStart(PhaseName::Script),
        Marker::CommandStart {
            phase: PhaseName::Script,
            index: 1,
        },
        Marker::CommandEnd {
            phase: PhaseName::Script,
            index: 1,
            exit_code: 3,
        },
        Marker::PhaseEnd(PhaseName::BeforeDeploy),
        Marker::DeployStart(0),
        Marker::DeployEnd {
            index: 0,
            exit_code: 3,
        },
        Marker::DeployRequest(1),
        Marker::CacheRestoreRequest,
        Marker::CacheSaveRequest,
        Marker::Terminate(4),
        Marker::Error("cannot enter the build dir".into()),
        Marker::Result(ScriptResult::Failed),
    ] {
        assert!(read.contains(&expected), "{expected:?} is not written");
    }
}

#[test]
fn an_archived_cache_is_asked_for_before_before_install_and_handed_over_after_before_cache() {
    let plan = plan(
        "language: shell\ncache: {directories: [deps]}\nbefore_install: echo bi\nscript: echo one\nbefore_cache: echo bc\nafter_success: echo as\n",
    );
    let job = &plan.stages[0].jobs[0];
    let inputs = |cache_archive| ScriptInputs {
        cache_dirs: vec!["deps".into()],
        cache_archive,
        ..bare_inputs(job, "n0nce")
    };
    let archived = script::compile(&inputs(true), true);
    assert!(archived.needs_stdin, "the runner's answers come on stdin");
    let text = archived.text.into_exposed();
    let at = |needle: &str| {
        text.rfind(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {text}"))
    };
    assert!(at("\nslipway_cache_fetch\n") < at("slipway_cache_restore "));
    assert!(at("slipway_cache_restore ") < at("phase-start before_install"));
    assert!(at("phase-end before_cache") < at("slipway_cache_save "));
    assert!(at("slipway_cache_save ") < at("\nslipway_cache_upload\n"));
    assert!(at("\nslipway_cache_upload\n") < at("phase-start after_success"));

    let volumes = script::compile(&inputs(false), true);
    assert!(!volumes.needs_stdin);
    let text = volumes.text.into_exposed();
    assert!(!text.contains("cache-restore-request") && !text.contains("slipway_cache_upload"));
}
