//! The resolved plan: what a pipeline file means for one event, with every choice explained.
//!
//! A [`Plan`] is the only thing downstream crates consume. It holds no unexpanded matrix, no
//! unevaluated condition and no decrypted secret: stages hold concrete jobs, each job holds its
//! phases as shell commands in order, and every job, stage and deploy that is left out is listed
//! with the reason, so `slipway plan` can answer "why did (or didn't) this run?".

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use crate::addons::{Addons, Apt, AptSource, NotHonoured};
pub use crate::notify::{Channel, Frequency, Notification, Outcome, Text, Triggers};

/// What kind of event asked for the build (Travis's `type` in conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A branch or tag push.
    #[default]
    Push,
    /// A pull request; the branch is the PR's base branch.
    PullRequest,
    /// A build requested through the API.
    Api,
    /// A scheduled build.
    Cron,
}

impl EventType {
    /// The name conditions and `TRAVIS_EVENT_TYPE` use.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Push => "push",
            EventType::PullRequest => "pull_request",
            EventType::Api => "api",
            EventType::Cron => "cron",
        }
    }
}

/// Everything about the triggering event that conditions, branch rules and deploy `on:` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Context {
    /// Push, pull request, API or cron.
    #[serde(rename = "type")]
    pub event: EventType,
    /// The branch built; for a pull request, its base branch. For a tag push, the tag name.
    pub branch: String,
    /// The tag, for tag pushes.
    pub tag: Option<String>,
    /// The pull request number.
    pub pull_request: Option<u64>,
    /// True when a pull request comes from another repository.
    pub fork: bool,
    /// `owner/name` of the repository built.
    pub repo: String,
    /// The head repository slug of a pull request.
    pub head_repo: Option<String>,
    /// The head branch of a pull request.
    pub head_branch: Option<String>,
    pub commit_message: String,
    /// The commit SHA, when known.
    pub commit: Option<String>,
    /// Login of whoever caused the event.
    pub sender: String,
    /// Repository settings variables visible to `env(NAME)` in conditions (values never secret here).
    pub env: IndexMap<String, String>,
    /// The repository's default branch when the event names it (GitHub's payloads do), so that
    /// kept state falls back to the branch the repository really builds from, not a guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// Where the event's changes can be seen (a push's compare view, a pull request's page), as
    /// Travis's notifications carry it in `compare_url`; planning never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_url: Option<String>,
}

/// The resolved pipeline for one [`Context`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The pipeline file the plan came from, as given.
    pub file: String,
    /// The event the plan was computed for.
    pub context: Context,
    /// Whether the request-level filters (root `if:` and `branches:`) let a build happen at all.
    pub build: Decision,
    /// Stages to run in order, each with at least one job.
    pub stages: Vec<Stage>,
    /// Stop waiting for allowed failures once the required jobs have finished (`fast_finish`).
    pub fast_finish: bool,
    /// Jobs and stages that were expanded but left out, with why.
    pub skipped: Vec<Skipped>,
    /// `notifications:` entries of the channels Slipway sends to, each with whether it is sent
    /// for this event. Absent from plans stored before the field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
}

/// An in/out decision and the reason for it, in words a user can check against the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// True when the thing is included.
    pub included: bool,
    /// Why, e.g. "if: branch = master is true" or "branch feature-x is not in branches.only".
    pub reason: String,
}

/// Something that was expanded but not planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// "stage NAME" or "job NAME/number".
    pub what: String,
    /// Why it is out.
    pub reason: String,
}

/// One stage: its jobs run in parallel; a failed stage cancels the later ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The stage name (`test` by default), as written.
    pub name: String,
    /// The stage's jobs in Travis's order.
    pub jobs: Vec<Job>,
}

/// One concrete job: an image, an environment and the phases to run in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// 1-based position among all planned jobs of the build (Travis's `TRAVIS_JOB_NUMBER` suffix).
    pub number: usize,
    /// The job's `name:`, if any.
    pub name: Option<String>,
    /// The stage it belongs to.
    pub stage: String,
    /// True when a failure of this job does not fail the build.
    pub allow_failure: bool,
    /// Why this job is in the plan.
    pub reason: String,
    /// The job's expanded keys under Travis's own names (`language`, `os`, `dist`, `node_js`,
    /// `python`, `env`, …), so a plan can be compared with Travis's job list mechanically.
    pub matrix: IndexMap<String, serde_json::Value>,
    /// The container image the job runs in and where that choice came from.
    pub image: Image,
    /// Environment variables in the order the job's shell must evaluate them (global first).
    pub env: Vec<EnvVar>,
    /// Lifecycle phases with their commands; phases not listed run nothing.
    pub phases: Vec<Phase>,
    /// Sidecar services (`postgresql`, `redis`, `docker`, …) as named in the file.
    pub services: Vec<String>,
    /// What to cache between builds.
    pub cache: Cache,
    /// How to check the code out.
    pub git: Git,
    /// Deploys in file order, each with whether it runs for this event.
    pub deploys: Vec<Deploy>,
    /// Age-encrypted files (`secrets: files:` in `.slipway.yml`), each decrypted inside the job to
    /// the same path without `.age` before `before_install`.
    pub secret_files: Vec<String>,
    /// `addons:`, applied inside the job before `before_install`. Absent from plans stored
    /// before the field existed.
    #[serde(default, skip_serializing_if = "Addons::is_empty")]
    pub addons: Addons,
    /// `workspaces:` this job creates and uses. Absent from plans stored before the field existed.
    #[serde(default, skip_serializing_if = "Workspaces::is_empty")]
    pub workspaces: Workspaces,
}

/// Files shared between the jobs of one build (`workspaces:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Workspaces {
    /// Workspaces restored into the build dir before `before_install`, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "use")]
    pub uses: Vec<String>,
    /// The workspace this job saves after `script`, with the paths it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<WorkspaceCreate>,
}

impl Workspaces {
    /// True when the job neither creates nor uses a workspace.
    pub fn is_empty(&self) -> bool {
        self.uses.is_empty() && self.create.is_none()
    }
}

/// `workspaces.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceCreate {
    /// The name later jobs `use`.
    pub name: String,
    /// Paths relative to the build dir (or absolute) archived into it.
    pub paths: Vec<String>,
}

/// A job's container image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// A reference such as `node:16` or `registry.local/team/ci:1`.
    pub name: String,
    /// Why this image: `image:` in the file, or the language table.
    pub source: ImageSource,
}

/// Where a job's image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// The file's `image:` key.
    File,
    /// The documented table from `language` and its version key.
    Language,
}

/// One environment variable of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// The variable name.
    pub name: String,
    /// Its value: text for the job's shell to evaluate, or an encrypted reference.
    pub value: EnvValue,
}

/// A variable's value as the plan holds it: plaintext is shell text, secure values stay encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvValue {
    /// Shell text, evaluated by the job's shell in order (so `SHA=$(git rev-parse HEAD)` works).
    Plain(String),
    /// A `secure:` value, still encrypted; only the runner of a trusted job decrypts it.
    Secure(String),
    /// A whole `- secure: …` env entry: the encrypted text is a `NAME=value` assignment (Travis
    /// encrypts name and value together), so the variable's name is only known after decryption
    /// and [`EnvVar::name`] is empty.
    SecureAssignment(String),
}

/// The lifecycle phases, in the order the runner considers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Before dependencies are installed; a failure errors the job.
    BeforeInstall,
    /// Installs dependencies; a failure errors the job.
    Install,
    /// Before the tests; a failure errors the job.
    BeforeScript,
    /// The tests: every command runs; any failure fails the job.
    Script,
    /// Just before the cache is saved.
    BeforeCache,
    /// After a passing script.
    AfterSuccess,
    /// After a failing script.
    AfterFailure,
    /// Before deploys, in the success branch of a non-PR build; a failure errors the job.
    BeforeDeploy,
    /// After deploys.
    AfterDeploy,
    /// Always last, whatever the result; never changes it.
    AfterScript,
}

impl PhaseName {
    /// Every phase, in lifecycle order.
    pub const ALL: [PhaseName; 10] = [
        PhaseName::BeforeInstall,
        PhaseName::Install,
        PhaseName::BeforeScript,
        PhaseName::Script,
        PhaseName::BeforeCache,
        PhaseName::AfterSuccess,
        PhaseName::AfterFailure,
        PhaseName::BeforeDeploy,
        PhaseName::AfterDeploy,
        PhaseName::AfterScript,
    ];

    /// The key the phase has in a pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::BeforeInstall => "before_install",
            PhaseName::Install => "install",
            PhaseName::BeforeScript => "before_script",
            PhaseName::Script => "script",
            PhaseName::BeforeCache => "before_cache",
            PhaseName::AfterSuccess => "after_success",
            PhaseName::AfterFailure => "after_failure",
            PhaseName::BeforeDeploy => "before_deploy",
            PhaseName::AfterDeploy => "after_deploy",
            PhaseName::AfterScript => "after_script",
        }
    }
}

/// A phase and its commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Which phase.
    pub name: PhaseName,
    /// Shell commands, each run as written.
    pub commands: Vec<String>,
    /// Whether the commands came from the file or from the language's defaults.
    pub source: PhaseSource,
}

/// Where a phase's commands came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseSource {
    /// Written in the pipeline file.
    File,
    /// The language's default (e.g. `npm test` for `node_js`).
    Default,
}

/// What a job caches between builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cache {
    /// Directories, relative to the build dir or absolute (`$HOME/.npm`).
    pub directories: Vec<String>,
    /// Language caches turned on (`npm`, `pip`, `bundler`, `cargo`, …).
    pub languages: Vec<String>,
}

/// Checkout settings from `git:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Git {
    /// Whether to clone at all: `git: clone: false` starts the job in an empty build dir, as
    /// Travis does. Plans stored before the field existed load with the default (`true`).
    #[serde(default = "yes")]
    pub clone: bool,
    /// Clone depth; `None` for a full clone.
    pub depth: Option<u32>,
    /// Whether to check out submodules.
    pub submodules: bool,
    /// Clone depth of submodules (`git submodule update --depth N`); `None` for their whole
    /// history. Absent from plans stored before the field existed.
    #[serde(default)]
    pub submodules_depth: Option<u32>,
    /// Whether to fetch Git LFS objects.
    pub lfs_skip_smudge: bool,
    /// Sparse checkout file, if any.
    pub sparse_checkout: Option<String>,
}

impl Default for Git {
    fn default() -> Self {
        Git {
            clone: true,
            depth: Some(50),
            submodules: true,
            submodules_depth: None,
            lfs_skip_smudge: false,
            sparse_checkout: None,
        }
    }
}

/// The default of fields that are on unless a stored plan says otherwise.
fn yes() -> bool {
    true
}

/// One deploy entry, resolved for the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    /// The provider name as written (`elasticbeanstalk`, `script`, `s3`, …).
    pub provider: String,
    /// The provider's options as written, minus the keys listed here; `secure:` values stay
    /// encrypted as `{"secure": "…"}` objects.
    pub options: IndexMap<String, serde_json::Value>,
    /// Whether this deploy runs for this event, and why.
    pub decision: Decision,
    /// Keep the build's working tree as the job left it instead of cleaning it before this
    /// deploy. With dpl v1 semantics (the default) the tree is cleaned unless `skip_cleanup: true`
    /// (or `cleanup: false`); with `edge` (dpl v2) it is kept unless `cleanup: true`.
    pub skip_cleanup: bool,
    /// A failing deploy does not error the job.
    pub allow_failure: bool,
    /// Use the next version of the provider (`edge`, dpl v2), recorded as written; it changes the
    /// cleanup default (see [`Deploy::skip_cleanup`]).
    pub edge: Option<serde_json::Value>,
    /// `on.condition` shell tests, not evaluated at planning time: the runner evaluates each in
    /// the job's shell just before the deploy, which runs only when all of them succeed.
    #[serde(default)]
    pub condition: Vec<String>,
}
