//! Variables for one run, through the binary: `--env`, `--env-file`, `--secret`, `--secret-file`
//! and the repository's settings variables, resolved by name in `slipway plan` and
//! `slipway run --dry-run` (never decrypted or shown there) and exported by `slipway run`
//! (secrets masked, withheld from `--fork`). Tests that need the engine skip without it, and fail
//! under CI=true.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{busybox, ci, engine_ready, text};

/// `slipway ARGS` in `dir`, with its own data dir.
fn slipway_in(data: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .current_dir(dir)
        .env("SLIPWAY_DATA_DIR", data)
        .env_remove("AWS_ENDPOINT_URL")
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let all = text(out);
    assert!(out.status.success(), "{all}");
    all
}

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(!ci(), "the shared material is missing (CI=true)");
    eprintln!("skipped: the shared material (SLIPWAY_SHARED or ../shared) is missing");
    None
}

/// The course's multi-docker project as a git repository whose `origin` is the course's own.
fn multi_docker(shared: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_tree(&shared.join("corpus/course/multi-docker"), dir.path());
    crate::support::git(dir.path(), &["init", "-q", "-b", "master"]);
    crate::support::git(
        dir.path(),
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/StephenGrider/multi-docker.git",
        ],
    );
    crate::support::git(dir.path(), &["add", "."]);
    crate::support::git(dir.path(), &["commit", "-q", "-m", "course"]);
    dir
}

const ACCESS: &str = "AKIA-settings-value-7c1e";
const SECRET: &str = "settings-secret-value-93ab";

#[test]
fn the_course_deploy_dry_run_resolves_settings_variables_by_name_and_lists_its_calls() {
    let Some(shared) = shared_dir() else { return };
    let data = tempfile::tempdir().unwrap();
    let repo = multi_docker(&shared);
    let dir = repo.path();

    // Without the settings variables the deploy cannot be shown, and the plan says how to fix it.
    let before = ok(&slipway_in(data.path(), dir, &["plan"]));
    assert!(
        before.contains(
            "cannot run: elasticbeanstalk: option `access_key_id`: $AWS_ACCESS_KEY is not set"
        ),
        "{before}"
    );
    assert!(
        before.contains("value: $AWS_ACCESS_KEY is not set: give it with --env AWS_ACCESS_KEY=…"),
        "{before}"
    );
    assert!(
        !data.path().join("repos").exists(),
        "a plan must not make a key"
    );

    // Set for the repository the origin remote names (no --repo: the same default as plan).
    for (name, value) in [("AWS_ACCESS_KEY", ACCESS), ("AWS_SECRET_KEY", SECRET)] {
        ok(&slipway_in(
            data.path(),
            dir,
            &["secrets", "set", name, value],
        ));
    }
    let listed = ok(&slipway_in(
        data.path(),
        dir,
        &["secrets", "list", "--repo", "StephenGrider/multi-docker"],
    ));
    assert!(listed.contains("AWS_ACCESS_KEY"), "{listed}");

    for args in [&["plan"][..], &["run", "--dry-run"][..]] {
        let out = ok(&slipway_in(data.path(), dir, args));
        assert!(!out.contains("cannot run"), "{args:?}: {out}");
        for call in [
            "aws Credentials source=options (access_key_id [secure]) region=us-west-1",
            "s3 PutObject Bucket=elasticbeanstalk-us-west-1-306476627547 Key=docker-multi/",
            "elasticbeanstalk CreateApplicationVersion ApplicationName=multi-docker",
            "elasticbeanstalk UpdateEnvironment",
        ] {
            assert!(out.contains(call), "{args:?} lacks {call}: {out}");
        }
        for source in [
            "value: $AWS_ACCESS_KEY comes from the settings variable of StephenGrider/multi-docker, shown as [secure]",
            "value: $AWS_SECRET_KEY comes from the settings variable of StephenGrider/multi-docker, shown as [secure]",
            "AWS_ACCESS_KEY=[secure] (the settings variable of StephenGrider/multi-docker)",
        ] {
            assert!(out.contains(source), "{args:?} lacks {source}: {out}");
        }
        assert!(
            !out.contains(ACCESS) && !out.contains(SECRET),
            "{args:?} shows a value: {out}"
        );
    }
}

#[test]
fn flags_and_files_are_resolved_by_name_with_their_origin_and_secrets_never_shown() {
    let Some(shared) = shared_dir() else { return };
    let data = tempfile::tempdir().unwrap();
    let repo = multi_docker(&shared);
    let dir = repo.path();
    std::fs::write(
        dir.join("ci.env"),
        "# plain values\nexport AWS_ACCESS_KEY=AKIDFROMFILE\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("secrets.env"),
        "\nAWS_SECRET_KEY='file-secret-5d2'\n",
    )
    .unwrap();

    let out = ok(&slipway_in(
        data.path(),
        dir,
        &[
            "plan",
            "--env-file",
            "ci.env",
            "--secret-file",
            "secrets.env",
        ],
    ));
    assert!(
        out.contains("aws Credentials source=options (access_key_id AKIDFROMFILE)"),
        "{out}"
    );
    assert!(
        out.contains("value: $AWS_ACCESS_KEY comes from --env-file ci.env:2\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "value: $AWS_SECRET_KEY comes from --secret-file secrets.env:2, shown as [secure]"
        ),
        "{out}"
    );
    assert!(!out.contains("file-secret-5d2"), "{out}");

    // A flag beats a file, and `--secret NAME` takes the value from this shell, unshown.
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .current_dir(dir)
        .env("SLIPWAY_DATA_DIR", data.path())
        .env("AWS_SECRET_KEY", "shell-secret-0e4")
        .args([
            "plan",
            "--format",
            "json",
            "--env-file",
            "ci.env",
            "--env",
            "AWS_ACCESS_KEY=AKIDFLAG",
            "--secret",
            "AWS_SECRET_KEY",
        ])
        .output()
        .unwrap();
    let json = ok(&out);
    assert!(!json.contains("shell-secret-0e4"), "{json}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deploy = &plan["stages"][0]["jobs"][0]["deploys"][0];
    assert_eq!(
        deploy["sources"],
        serde_json::json!([
            "$AWS_ACCESS_KEY comes from --env",
            "$AWS_SECRET_KEY comes from --secret AWS_SECRET_KEY (from this shell's environment), shown as [secure]"
        ]),
        "{json}"
    );
    assert!(deploy.get("error").is_none(), "{json}");
    // Plain values reach the conditions' env(); secrets do not.
    assert_eq!(plan["context"]["env"]["AWS_ACCESS_KEY"], "AKIDFLAG");
    assert!(plan["context"]["env"].get("AWS_SECRET_KEY").is_none());
}

#[test]
fn a_bad_line_in_a_variables_file_names_file_line_and_fix_before_anything_runs() {
    let repo = crate::support::repo_with_pipeline(
        ".slipway.yml",
        "image: \"{busybox}\"\nlanguage: shell\nscript: echo hi\n",
    );
    let dir = repo.path();
    std::fs::write(dir.join("bad.env"), "GOOD=1\nTOKEN s3cr3t-not-shown\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    for args in [
        &["run", "--secret-file", "bad.env"][..],
        &["plan", "--env-file", "bad.env"][..],
    ] {
        let out = slipway_in(data.path(), dir, args);
        let all = text(&out);
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(
            all.contains("bad.env:2: expected NAME=VALUE; write the variable as NAME=VALUE"),
            "{args:?}: {all}"
        );
        assert!(!all.contains("s3cr3t-not-shown"), "{args:?}: {all}");
        assert!(!all.contains("$ echo hi"), "nothing ran: {all}");
    }
}

#[test]
fn without_origin_the_repository_is_named_after_the_directory_never_dot() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("shop-front");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join(".slipway.yml"),
        format!(
            "image: \"{}\"\nlanguage: shell\nscript: echo hi\n",
            busybox()
        ),
    )
    .unwrap();
    crate::support::commit_all(&dir, "pipeline");
    let data = tempfile::tempdir().unwrap();
    let run = ok(&slipway_in(data.path(), &dir, &["run", "--dry-run"]));
    assert!(run.contains("on main (local/shop-front)"), "{run}");
    assert!(run.contains("/home/travis/build/local/shop-front"), "{run}");
    let plan = ok(&slipway_in(
        data.path(),
        &dir,
        &["plan", "--format", "json"],
    ));
    assert!(plan.contains("\"repo\": \"local/shop-front\""), "{plan}");
    assert!(!run.contains("local/.") && !plan.contains("local/."));
}

#[test]
fn a_run_exports_flags_before_the_file_env_masks_secrets_and_withholds_them_from_forks() {
    if !engine_ready() {
        return;
    }
    let repo = crate::support::repo_with_pipeline(
        ".slipway.yml",
        "image: \"{busybox}\"\nlanguage: shell\nenv:\n  global:\n    - OVERRIDDEN=from-file\n\
         script:\n  - echo \"plain=$PLAIN file=$FROM_FILE over=$OVERRIDDEN lit=$LITERAL\"\n\
         \x20 - echo \"token=$TOKEN key=$KEY\"\n",
    );
    let dir = repo.path();
    std::fs::write(dir.join("vars.env"), "FROM_FILE=\"two words\"\n").unwrap();
    std::fs::write(dir.join("keys.env"), "KEY=key-value-61f0\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--env",
        "PLAIN=hello",
        "--env",
        "OVERRIDDEN=from-flag",
        "--env",
        "LITERAL=$(echo not-run)",
        "--env-file",
        "vars.env",
        "--secret",
        "TOKEN=token-value-2b7d",
        "--secret-file",
        "keys.env",
    ];
    let out = slipway_in(data.path(), dir, &[&["run"][..], &args].concat());
    let log = ok(&out);
    assert!(
        log.contains("plain=hello file=two words over=from-file lit=$(echo not-run)"),
        "{log}"
    );
    assert!(log.contains("token=[secure] key=[secure]"), "{log}");
    assert!(
        !log.contains("token-value-2b7d") && !log.contains("key-value-61f0"),
        "{log}"
    );

    // A fork's pull request gets the plain variables, not the secrets, and is told so.
    let fork = slipway_in(
        data.path(),
        dir,
        &[&["run", "--fork", "--event", "pull_request"][..], &args].concat(),
    );
    let log = ok(&fork);
    assert!(log.contains("plain=hello"), "{log}");
    assert!(log.contains("token= key="), "{log}");
    assert!(
        log.contains(
            "Secrets given for this run are not exported because this is a pull request from a fork"
        ),
        "{log}"
    );
    assert!(
        log.contains("KEY, TOKEN") || log.contains("TOKEN, KEY"),
        "{log}"
    );
}
