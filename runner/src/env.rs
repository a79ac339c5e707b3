//! The one registry of environment variables a job gets from Slipway, which also renders the docs.
//!
//! Every variable is declared once in [`VARIABLES`] with its meaning and how its value is
//! computed, so the job environment, `slipway run --dry-run` and the table in `docs/runner.md`
//! can never disagree. Variables a job's own `env:` defines come after these, in the order the
//! plan lists them, and are evaluated by the job's shell (see [`crate::script`]).

use slipway_pipelines::plan::{Context, EventType, Job};

/// Everything the registry's values are computed from.
#[derive(Debug, Clone, Copy)]
pub struct EnvInputs<'a> {
    /// The event the build is for.
    pub context: &'a Context,
    /// The job being run.
    pub job: &'a Job,
    /// The build this job belongs to.
    pub build: &'a BuildInfo,
    /// The directory the code is checked out to inside the container.
    pub build_dir: &'a str,
    /// Whether `secure:` values were decrypted for this job.
    pub secure_env_vars: bool,
}

/// Identity of a build, given by whoever starts it (the service's database, or `slipway run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Unique id, used in resource names and labels (letters, digits and `-` only).
    pub id: String,
    /// The human build number shown as `TRAVIS_BUILD_NUMBER` and the job number's prefix.
    pub number: u64,
}

/// When a variable gets its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Set before the first command runs.
    Start,
    /// Set by the job's shell after `script` (so `after_*` phases can read it).
    AfterScript,
    /// Set by the job's shell when it starts.
    Shell,
}

/// One variable of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    /// What it means, for the docs.
    pub description: &'static str,
    /// When it is set.
    pub timing: Timing,
    /// Its value for a job; `None` leaves it unset (e.g. `TRAVIS_NODE_VERSION` outside node jobs).
    pub value: fn(&EnvInputs<'_>) -> Option<String>,
}

fn yes(_: &EnvInputs<'_>) -> Option<String> {
    Some("true".into())
}

fn set_by_shell(_: &EnvInputs<'_>) -> Option<String> {
    None
}

fn matrix_version(i: &EnvInputs<'_>, key: &str) -> Option<String> {
    match i.job.matrix.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The registry, in the order the variables are exported.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "CI",
        description: "Always `true`: the code runs under continuous integration.",
        timing: Timing::Start,
        value: yes,
    },
    Variable {
        name: "CONTINUOUS_INTEGRATION",
        description: "Always `true` (Travis compatibility).",
        timing: Timing::Start,
        value: yes,
    },
    Variable {
        name: "TRAVIS",
        description: "Always `true`, so scripts written for Travis take their CI branch.",
        timing: Timing::Start,
        value: yes,
    },
    Variable {
        name: "HAS_JOSH_K_SEAL_OF_APPROVAL",
        description: "Always `true` (Travis compatibility).",
        timing: Timing::Start,
        value: yes,
    },
    Variable {
        name: "TRAVIS_BUILD_DIR",
        description: "Absolute path of the checked-out code; the job starts in it.",
        timing: Timing::Start,
        value: |i| Some(i.build_dir.to_string()),
    },
    Variable {
        name: "TRAVIS_BRANCH",
        description: "The branch built; for a pull request its base branch; for a tag push the tag.",
        timing: Timing::Start,
        value: |i| Some(i.context.branch.clone()),
    },
    Variable {
        name: "TRAVIS_COMMIT",
        description: "The commit SHA built.",
        timing: Timing::Start,
        value: |i| Some(i.context.commit.clone().unwrap_or_default()),
    },
    Variable {
        name: "TRAVIS_COMMIT_MESSAGE",
        description: "The commit's message.",
        timing: Timing::Start,
        value: |i| Some(i.context.commit_message.clone()),
    },
    Variable {
        name: "TRAVIS_EVENT_TYPE",
        description: "`push`, `pull_request`, `api` or `cron`.",
        timing: Timing::Start,
        value: |i| Some(i.context.event.as_str().to_string()),
    },
    Variable {
        name: "TRAVIS_PULL_REQUEST",
        description: "The pull request number, or `false` when the build is not for a pull request.",
        timing: Timing::Start,
        value: |i| {
            Some(match (i.context.event, i.context.pull_request) {
                (EventType::PullRequest, Some(n)) => n.to_string(),
                _ => "false".into(),
            })
        },
    },
    Variable {
        name: "TRAVIS_PULL_REQUEST_BRANCH",
        description: "The pull request's head branch; empty when not a pull request.",
        timing: Timing::Start,
        value: |i| {
            Some(match i.context.event {
                EventType::PullRequest => i.context.head_branch.clone().unwrap_or_default(),
                _ => String::new(),
            })
        },
    },
    Variable {
        name: "TRAVIS_PULL_REQUEST_SLUG",
        description: "`owner/name` of the pull request's head repository; empty when not a pull request.",
        timing: Timing::Start,
        value: |i| {
            Some(match i.context.event {
                EventType::PullRequest => i.context.head_repo.clone().unwrap_or_default(),
                _ => String::new(),
            })
        },
    },
    Variable {
        name: "TRAVIS_TAG",
        description: "The tag name for a tag push; empty otherwise.",
        timing: Timing::Start,
        value: |i| Some(i.context.tag.clone().unwrap_or_default()),
    },
    Variable {
        name: "TRAVIS_REPO_SLUG",
        description: "`owner/name` of the repository built.",
        timing: Timing::Start,
        value: |i| Some(i.context.repo.clone()),
    },
    Variable {
        name: "TRAVIS_BUILD_NUMBER",
        description: "The build's number.",
        timing: Timing::Start,
        value: |i| Some(i.build.number.to_string()),
    },
    Variable {
        name: "TRAVIS_BUILD_ID",
        description: "The build's unique id.",
        timing: Timing::Start,
        value: |i| Some(i.build.id.clone()),
    },
    Variable {
        name: "TRAVIS_JOB_NUMBER",
        description: "`BUILD.JOB`, e.g. `12.3` for the third job of build 12.",
        timing: Timing::Start,
        value: |i| Some(format!("{}.{}", i.build.number, i.job.number)),
    },
    Variable {
        name: "TRAVIS_JOB_ID",
        description: "The job's unique id (`BUILDID-JOB`).",
        timing: Timing::Start,
        value: |i| Some(format!("{}-{}", i.build.id, i.job.number)),
    },
    Variable {
        name: "TRAVIS_JOB_NAME",
        description: "The job's `name:`; empty when it has none.",
        timing: Timing::Start,
        value: |i| Some(i.job.name.clone().unwrap_or_default()),
    },
    Variable {
        name: "TRAVIS_BUILD_STAGE_NAME",
        description: "The name of the job's stage.",
        timing: Timing::Start,
        value: |i| Some(i.job.stage.clone()),
    },
    Variable {
        name: "TRAVIS_ALLOW_FAILURE",
        description: "`true` when the job's failure does not fail the build.",
        timing: Timing::Start,
        value: |i| Some(i.job.allow_failure.to_string()),
    },
    Variable {
        name: "TRAVIS_SECURE_ENV_VARS",
        description: "`true` when `secure:` values were decrypted for this job (never for fork pull requests).",
        timing: Timing::Start,
        value: |i| Some(i.secure_env_vars.to_string()),
    },
    Variable {
        name: "TRAVIS_OS_NAME",
        description: "The job's `os:`: `linux`, or the OS an operator's `[os_images]` entry runs in a Linux image (jobs of other OSes are not run).",
        timing: Timing::Start,
        value: |i| Some(matrix_version(i, "os").unwrap_or_else(|| "linux".into())),
    },
    Variable {
        name: "TRAVIS_CPU_ARCH",
        description: "The job's `arch:` when given (run through emulation when not the host's), else the host's (`amd64`).",
        timing: Timing::Start,
        value: |i| {
            Some(matrix_version(i, "arch").unwrap_or_else(|| {
                slipway_pipelines::placement::travis_arch(std::env::consts::ARCH).to_owned()
            }))
        },
    },
    Variable {
        name: "TRAVIS_DIST",
        description: "The job's `dist:` as written; empty when not given.",
        timing: Timing::Start,
        value: |i| Some(matrix_version(i, "dist").unwrap_or_default()),
    },
    Variable {
        name: "TRAVIS_NODE_VERSION",
        description: "The job's `node_js:` version (node jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "node_js"),
    },
    Variable {
        name: "TRAVIS_PYTHON_VERSION",
        description: "The job's `python:` version (python jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "python"),
    },
    Variable {
        name: "TRAVIS_RUBY_VERSION",
        description: "The job's `rvm:` version (ruby jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "rvm"),
    },
    Variable {
        name: "TRAVIS_GO_VERSION",
        description: "The job's `go:` version (go jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "go"),
    },
    Variable {
        name: "TRAVIS_JDK_VERSION",
        description: "The job's `jdk:` (java jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "jdk"),
    },
    Variable {
        name: "TRAVIS_PHP_VERSION",
        description: "The job's `php:` version (php jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "php"),
    },
    Variable {
        name: "TRAVIS_RUST_VERSION",
        description: "The job's `rust:` toolchain (rust jobs only).",
        timing: Timing::Start,
        value: |i| matrix_version(i, "rust"),
    },
    Variable {
        name: "TRAVIS_TEST_RESULT",
        description: "`0` when every `script` command passed, `1` otherwise; set after `script`.",
        timing: Timing::AfterScript,
        value: set_by_shell,
    },
    Variable {
        name: "SLIPWAY",
        description: "Always `true`: the job runs under Slipway.",
        timing: Timing::Start,
        value: yes,
    },
    Variable {
        name: "SLIPWAY_IMAGE",
        description: "The image the job runs in.",
        timing: Timing::Start,
        value: |i| Some(i.job.image.name.clone()),
    },
    Variable {
        name: "SLIPWAY_SHELL",
        description: "The shell running the job's commands: `bash` when the image has it, else `sh`.",
        timing: Timing::Shell,
        value: set_by_shell,
    },
];

/// The variables set before the first command, in registry order, with their values for a job.
pub fn job_environment(inputs: &EnvInputs<'_>) -> Vec<(String, String)> {
    VARIABLES
        .iter()
        .filter(|v| v.timing == Timing::Start)
        .filter_map(|v| (v.value)(inputs).map(|value| (v.name.to_string(), value)))
        .collect()
}

/// The Markdown table of every variable, as `docs/runner.md` carries it.
pub fn docs_table() -> String {
    let mut out = String::from("| variable | set | meaning |\n| --- | --- | --- |\n");
    for v in VARIABLES {
        let when = match v.timing {
            Timing::Start => "at start",
            Timing::AfterScript => "after `script`",
            Timing::Shell => "by the job's shell",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            v.name, when, v.description
        ));
    }
    out
}
