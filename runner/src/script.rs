//! Compiles a job into ONE shell script that runs its whole lifecycle in one container.
//!
//! Starting a container is the floor of a job's cost and every `docker exec` adds tens of
//! milliseconds, so, like Travis, Slipway writes the job's phases into one script. The script
//! reports progress in-band with markers (see [`crate::markers`]): phase start/end, each
//! command's start and exit code, deploy steps and the final result. The runner timestamps the
//! markers as they arrive, which gives every command's duration without extra processes.
//!
//! The lifecycle is Travis's:
//! - `before_install`, `install`, `before_script`: the first failing command errors the job and
//!   stops it; nothing after it runs, not even `after_script`.
//! - `script`: every command runs; the job fails if any failed. `TRAVIS_TEST_RESULT` is set.
//! - `before_cache` and the cache save (only when the job has a cache).
//! - `after_success` or `after_failure` by the result; in the success branch, each deploy in file
//!   order: one the planner left out, or whose `on.condition` tests fail, prints why it is
//!   skipped; the others run `before_deploy` → cleanup of the build dir (unless skipped) →
//!   deploy → `after_deploy`, as dpl v1 does for every provider. A failing `before_deploy` or
//!   deploy errors the job (unless the deploy allows failure) and no later deploy runs.
//! - `after_script`, whatever the result. `after_*` phases never change the result.
//!
//! The script is POSIX `sh` and also valid `bash`; the container runs it with `bash` when the
//! image has it, else `sh`, and the first marker says which.

use sha2::{Digest, Sha256};
use slipway_pipelines::plan::{Job, PhaseName};
use slipway_secrets::Secret;

use crate::markers::{Marker, ScriptResult};

/// Where the script, cache volumes and helpers live inside the job container.
pub const SLIPWAY_DIR: &str = "/slipway";
/// Path of the compiled script inside the container.
pub const SCRIPT_PATH: &str = "/slipway/job.sh";
/// Mount point of the job's cache volume; with archived caches, the directory the cached
/// directories are gathered in and the runner's archive is unpacked into.
pub const CACHE_MOUNT: &str = "/slipway/cache";
/// Mount point of a fallback cache volume (read-only), when the job has no cache of its own yet.
pub const CACHE_FALLBACK_MOUNT: &str = "/slipway/cache-fallback";
/// A copy of the build dir (without `.git`) as the job started, taken before anything runs when a
/// deploy may clean the build dir: an archive (`/slipway/pristine.tar`) when the image has `tar`,
/// else this directory. The cleanup puts it back.
pub const PRISTINE_DIR: &str = "/slipway/pristine";
/// Where a job writes its environment (`env -0`, owner-only) just before a provider deploy, so the
/// provider sees variables as the job's shell evaluated them without them passing through the log;
/// removed as soon as the runner replied.
pub const DEPLOY_ENV_PATH: &str = "/slipway/deploy-env";

/// The container command: run the script with bash when present, else sh.
pub fn container_command() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "if command -v bash >/dev/null 2>&1; then exec bash {SCRIPT_PATH}; fi; exec sh {SCRIPT_PATH}"
        ),
    ]
}

/// One variable of the job's own `env:`, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptEnv {
    /// Shell text evaluated by the job's shell (`SHA=$(git rev-parse HEAD)` works).
    Shell {
        /// Variable name.
        name: String,
        /// Value as written.
        value: String,
    },
    /// A decrypted `secure:` value: exported literally, shown as `[secure]`.
    Secret {
        /// Variable name.
        name: String,
        /// Plaintext value.
        value: Secret<String>,
    },
}

/// How one deploy runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployKind {
    /// The `script` provider: a shell command run in the job.
    Script(String),
    /// Any other provider: the script asks the runner, which calls its [`crate::DeployHook`].
    Hook,
    /// The planner left it out for this event: the script says why where it would have run.
    Skipped(String),
}

/// One deploy of the job, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployStep {
    /// Index of the deploy in the plan job's `deploys`.
    pub index: usize,
    /// Provider name as written.
    pub provider: String,
    /// How it runs.
    pub kind: DeployKind,
    /// A failure does not error the job.
    pub allow_failure: bool,
    /// `on.condition` tests, each evaluated by the job's shell (`[[ … ]]` in bash, `[ … ]` in
    /// sh) right before the deploy; it runs only when all of them hold.
    pub conditions: Vec<String>,
    /// Put the build dir back as the job started before deploying (dpl's cleanup).
    pub cleanup: bool,
    /// For a provider deploy: shell text the job runs right before the request (after the
    /// cleanup), to build what the provider publishes with the job's own tools
    /// ([`crate::DeployHook::job_step`]). If it fails, the deploy fails and nothing is sent.
    pub job_step: Option<String>,
}

/// What the compiler needs besides the job.
#[derive(Debug, Clone)]
pub struct ScriptInputs<'a> {
    /// The planned job.
    pub job: &'a Job,
    /// The marker nonce.
    pub nonce: &'a str,
    /// The job's own variables, in order.
    pub env: Vec<ScriptEnv>,
    /// Cache directories (as written, relative to the build dir or absolute); empty: no cache.
    pub cache_dirs: Vec<String>,
    /// The runner moves the cache as an archive ([`crate::cache::transfer`]): the script asks
    /// for it before restoring and hands it over after saving, instead of using volumes.
    pub cache_archive: bool,
    /// Deploys to perform in the success branch.
    pub deploys: Vec<DeployStep>,
    /// Messages printed at the start of the log (e.g. which services run).
    pub notices: Vec<String>,
    /// Shell text applying the job's add-ons ([`crate::addons`]), run before the cache is
    /// restored and `before_install` starts.
    pub addons: String,
    /// Shell text restoring the workspaces the job uses ([`crate::build_workspaces`]).
    pub workspace_restore: String,
    /// Shell text saving the workspace the job creates, after `script` and the cache save.
    pub workspace_save: String,
    /// The artifacts upload after `after_script` (`addons.artifacts`), if any.
    pub artifacts: Option<ArtifactsStep>,
}

/// The `addons.artifacts` upload: the variables the job exports, and the branch it is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactsStep {
    /// `ARTIFACTS_*` exports (secure options decrypted).
    pub env: Vec<ScriptEnv>,
    /// `branch:`: upload only when building this branch.
    pub branch: Option<String>,
}

/// The compiled job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledScript {
    /// The script text: with secret values when compiled to reveal them, so kept as a secret
    /// either way.
    pub text: Secret<String>,
    /// Commands per phase, so markers can be mapped back to command text.
    pub phases: Vec<(PhaseName, Vec<String>)>,
    /// Deploy steps, by marker index.
    pub deploys: Vec<DeployStep>,
    /// True when the script reads deploy replies from its standard input.
    pub needs_stdin: bool,
}

impl CompiledScript {
    /// The commands of `phase`.
    pub fn commands(&self, phase: PhaseName) -> &[String] {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, c)| c.as_slice())
            .unwrap_or(&[])
    }
}

/// `s` on one line, for messages the script prints.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Quotes `s` for POSIX shells as one literal word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes `s` in double quotes, leaving `$VAR` expansion on (for cache paths like `$HOME/.npm`).
fn sh_double_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The key a cache directory is stored under inside the cache volume.
pub fn cache_dir_key(dir: &str) -> String {
    hex::encode(&Sha256::digest(dir.as_bytes())[..6])
}

/// The archived cache's requests to the runner ([`crate::cache::transfer`]), defined only in the
/// scripts of jobs that use them.
const CACHE_ARCHIVE_HELPERS: &str = r#"slipway_cache_fetch() {
  if ! command -v tar >/dev/null 2>&1 || ! command -v head >/dev/null 2>&1; then
    printf 'cache: this image has no tar or head; the cache is not restored\n'; return 0; fi
  slipway_m 'cache-restore-request'
  read -r slipway_cache_len <&3 || slipway_cache_len=0
  case $slipway_cache_len in ''|*[!0-9]*) slipway_cache_len=0 ;; esac
  [ "$slipway_cache_len" -gt 0 ] || return 0
  # The runner sends exactly this many bytes: all are read, even when tar gives up early.
  head -c "$slipway_cache_len" <&3 | (tar -xf - -C /slipway; slipway_cache_rc=$?; cat >/dev/null; exit $slipway_cache_rc) \
    || printf 'cache: unpacking the cache failed (ignored)\n'
}
slipway_cache_upload() {
  [ -d /slipway/cache ] || return 0
  slipway_m 'cache-save-request'
  read -r slipway_cache_rc <&3 || slipway_cache_rc=1
}
"#;

const HELPERS: &str = r#"slipway_m() { printf '\002slipway:%s:%s\n' "$slipway_nonce" "$*"; }
travis_fold() { printf 'travis_fold:%s:%s\r\n' "$1" "$2"; }
travis_retry() {
  slipway_retry_rc=0
  for slipway_retry_n in 1 2 3; do
    "$@" && return 0
    slipway_retry_rc=$?
    if [ "$slipway_retry_n" -lt 3 ]; then
      printf '\033[33;1mThe command "%s" failed. Retrying, %s of 3.\033[0m\n' "$*" "$((slipway_retry_n + 1))"
      sleep 1
    fi
  done
  printf '\033[33;1mThe command "%s" failed 3 times.\033[0m\n' "$*"
  return "$slipway_retry_rc"
}
travis_wait() {
  slipway_wait_min=20
  case "$1" in ''|*[!0-9]*) ;; *) slipway_wait_min=$1; shift ;; esac
  "$@" &
  slipway_wait_pid=$!
  slipway_wait_s=0
  while kill -0 "$slipway_wait_pid" 2>/dev/null; do
    sleep 1
    slipway_wait_s=$((slipway_wait_s + 1))
    if [ "$slipway_wait_s" -ge $((slipway_wait_min * 60)) ]; then
      kill "$slipway_wait_pid" 2>/dev/null
      printf '\033[31;1mTimeout (%s minutes) reached. Terminating "%s"\033[0m\n' "$slipway_wait_min" "$*"
      return 1
    fi
    [ $((slipway_wait_s % 60)) -eq 0 ] && printf 'Still running (%s of %s min): %s\n' "$((slipway_wait_s / 60))" "$slipway_wait_min" "$*"
  done
  wait "$slipway_wait_pid"
}
travis_terminate() {
  slipway_m "terminate ${1:-0}"
  exit "${1:-0}"
}
slipway_condition() {
  if [ -n "$BASH_VERSION" ]; then eval "[[ $1 ]]"; else eval "[ $1 ]"; fi
}
slipway_each_entry() {
  for slipway_entry in * .[!.]* ..?*; do
    [ -e "$slipway_entry" ] || [ -L "$slipway_entry" ] || continue
    [ "$slipway_entry" = .git ] && continue
    "$@" "$slipway_entry" || return 1
  done
}
slipway_snapshot() {
  printf '%s\n' 'Keeping a copy of the build dir as the job starts, for the cleanup before deploys'
  rm -rf /slipway/pristine /slipway/pristine.tar || return 1
  set --
  for slipway_entry in * .[!.]* ..?*; do
    [ -e "$slipway_entry" ] || [ -L "$slipway_entry" ] || continue
    [ "$slipway_entry" = .git ] || set -- "$@" "$slipway_entry"
  done
  # One archive is written much faster than a tree of files; cp serves images without tar.
  if [ $# -gt 0 ] && command -v tar >/dev/null 2>&1; then tar -cf /slipway/pristine.tar -- "$@"
  else mkdir -p /slipway/pristine && { [ $# -eq 0 ] || cp -a -- "$@" /slipway/pristine/; }; fi
}
slipway_restore() {
  if [ -f /slipway/pristine.tar ]; then tar -xf /slipway/pristine.tar; else cp -a /slipway/pristine/. .; fi
}
slipway_cleanup() {
  if [ "$slipway_pristine" != 1 ]; then
    printf '\033[31;1m%s\033[0m\n' 'The build dir cannot be cleaned: the copy of how the job started could not be made (see the start of the log).'
    return 1
  fi
  printf '%s\n' "Cleaning up the build dir for the $1 deploy: it is put back as the job started, build output removed and changes undone (.git is kept). skip_cleanup: true or cleanup: false keeps it as the job left it."
  slipway_cwd=$PWD
  cd "$TRAVIS_BUILD_DIR" && slipway_each_entry rm -rf -- && slipway_restore
  slipway_cleanup_rc=$?
  cd "$slipway_cwd" 2>/dev/null || cd "$TRAVIS_BUILD_DIR"
  [ "$slipway_cleanup_rc" -eq 0 ] || printf '\033[31;1m%s\033[0m\n' 'Cleaning up the build dir failed; nothing was deployed.'
  return "$slipway_cleanup_rc"
}
slipway_cache_restore() {
  if [ -d "/slipway/cache/$1" ]; then slipway_cache_src="/slipway/cache/$1"
  elif [ -d "/slipway/cache-fallback/$1" ]; then slipway_cache_src="/slipway/cache-fallback/$1"
  else printf 'cache: %s: nothing cached yet\n' "$2"; return 0; fi
  if mkdir -p "$2" && cp -a "$slipway_cache_src/." "$2/"; then printf 'cache: restored %s\n' "$2"
  else printf 'cache: restoring %s failed (ignored)\n' "$2"; fi
}
slipway_cache_save() {
  if [ ! -d "$2" ]; then printf 'cache: %s does not exist, not saved\n' "$2"; return 0; fi
  if rm -rf "/slipway/cache/$1.new" && mkdir -p "/slipway/cache/$1.new" && cp -a "$2/." "/slipway/cache/$1.new/" \
    && rm -rf "/slipway/cache/$1" && mv "/slipway/cache/$1.new" "/slipway/cache/$1"; then
    printf 'cache: saved %s\n' "$2"
  else printf 'cache: saving %s failed (ignored)\n' "$2"; fi
}
"#;

/// The lines that show and export one variable; a secret is shown as `[secure]`, and written as
/// `[secure]` too unless `reveal_secrets`.
fn export(var: &ScriptEnv, reveal_secrets: bool) -> String {
    match var {
        ScriptEnv::Shell { name, value } => format!(
            "printf '%s\\n' {}\nexport {name}={value}\n",
            sh_quote(&format!("$ export {name}={value}"))
        ),
        ScriptEnv::Secret { name, value } => {
            let shown = if reveal_secrets {
                sh_quote(value.expose())
            } else {
                "'[secure]'".to_string()
            };
            format!(
                "printf '%s\\n' {}\nexport {name}={shown}\n",
                sh_quote(&format!("$ export {name}=[secure]"))
            )
        }
    }
}

/// The upload of `addons.artifacts`, after `after_script`: only for pushes (and `branch:`), as
/// Travis did; the runner replies with the upload's status, which never changes the result.
fn artifacts(step: &ArtifactsStep, reveal_secrets: bool) -> String {
    let mut s = String::from("travis_fold start addons.artifacts\n");
    s.push_str("if [ \"$TRAVIS_PULL_REQUEST\" != false ]; then printf '%s\\n' 'addons.artifacts: not uploaded for pull requests (as on Travis)'\n");
    if let Some(branch) = &step.branch {
        s.push_str(&format!(
            "elif [ \"$TRAVIS_BRANCH\" != {b} ]; then printf '%s\\n' {why}\n",
            b = sh_quote(branch),
            why = sh_quote(&format!(
                "addons.artifacts: uploaded only for branch {} (artifacts.branch)",
                one_line(branch)
            ))
        ));
    }
    s.push_str(
        "else\nprintf '\\033[33;1m%s\\033[0m\\n' 'Uploading artifacts (addons.artifacts)'\n",
    );
    for var in &step.env {
        s.push_str(&export(var, reveal_secrets));
    }
    s.push_str(&format!(
        "[ -n \"$ARTIFACTS_PATHS\" ] || ARTIFACTS_PATHS=$(git ls-files -o 2>/dev/null | tr '\\n' ':')\nexport ARTIFACTS_PATHS\n\
         (umask 077; env -0 > {ARTIFACTS_ENV}) 2>/dev/null\nslipway_m 'artifacts-request'\nread -r slipway_rc <&3 || slipway_rc=1\nrm -f {ARTIFACTS_ENV}\nfi\ntravis_fold end addons.artifacts\n",
        ARTIFACTS_ENV = crate::artifacts::ENV_PATH
    ));
    s
}

/// Compiles the job. With `reveal_secrets` false, secret values are written as `[secure]`
/// (for `--dry-run` output); the script that runs gets them with `reveal_secrets` true.
pub fn compile(inputs: &ScriptInputs<'_>, reveal_secrets: bool) -> CompiledScript {
    let needs_stdin = inputs.artifacts.is_some()
        || (inputs.cache_archive && !inputs.cache_dirs.is_empty())
        || inputs
            .deploys
            .iter()
            .any(|d| matches!(d.kind, DeployKind::Hook));
    let mut w = ScriptWriter {
        job: inputs.job,
        s: prelude(inputs, needs_stdin, reveal_secrets),
        phases: Vec::new(),
    };

    // Cache restore happens before anything installs.
    if inputs.cache_archive && !inputs.cache_dirs.is_empty() {
        w.s.push_str(CACHE_ARCHIVE_HELPERS);
        w.s.push_str("slipway_cache_fetch\n");
    }
    w.caches("restore", &inputs.cache_dirs);

    w.s.push_str(&inputs.workspace_restore);

    for p in [
        PhaseName::BeforeInstall,
        PhaseName::Install,
        PhaseName::BeforeScript,
    ] {
        w.phase(
            p,
            &format!(
                "slipway_m '{}'; slipway_m '{}'; exit 2",
                Marker::PhaseEnd(p),
                Marker::Result(ScriptResult::Errored)
            ),
        );
    }
    w.phase(PhaseName::Script, "slipway_test_result=1");
    w.s.push_str("export TRAVIS_TEST_RESULT=$slipway_test_result\n");
    w.s.push_str("[ \"$slipway_test_result\" -eq 0 ] || slipway_result=failed\n");

    if !inputs.cache_dirs.is_empty() {
        w.phase(PhaseName::BeforeCache, "");
        w.caches("save", &inputs.cache_dirs);
        if inputs.cache_archive {
            w.s.push_str("slipway_cache_upload\n");
        }
    }

    w.s.push_str(&inputs.workspace_save);
    w.s.push_str("if [ \"$slipway_test_result\" -eq 0 ]; then\n:\n");
    w.phase(PhaseName::AfterSuccess, "");
    if !inputs.deploys.is_empty() {
        w.s.push_str("slipway_deploy_ok=1\n");
    }
    for (i, d) in inputs.deploys.iter().enumerate() {
        w.deploy(i, d);
    }
    w.s.push_str("else\n:\n");
    w.phase(PhaseName::AfterFailure, "");
    w.s.push_str("fi\n");
    w.phase(PhaseName::AfterScript, "");
    if let Some(step) = &inputs.artifacts {
        w.s.push_str(&artifacts(step, reveal_secrets));
    }
    w.s.push_str("slipway_m \"result $slipway_result\"\n");
    w.s.push_str("case $slipway_result in passed) exit 0 ;; failed) exit 1 ;; *) exit 2 ;; esac\n");

    // Phases were recorded in script order; sort into lifecycle order for lookups.
    let mut phases = w.phases;
    phases.sort_by_key(|(p, _)| *p);
    CompiledScript {
        text: Secret::new(w.s),
        phases,
        deploys: inputs.deploys.clone(),
        needs_stdin,
    }
}

/// The script's start: the header, the helpers, the shell's report, entering the build dir, the
/// notices, the deploys' snapshot, the variables, `sudo` and the addons.
fn prelude(inputs: &ScriptInputs<'_>, needs_stdin: bool, reveal_secrets: bool) -> String {
    let job = inputs.job;
    let mut s = String::new();
    let name = job
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    s.push_str(&format!(
        "# Slipway job {}{}, stage {}.\n",
        job.number,
        name.replace('\n', " "),
        job.stage.replace('\n', " ")
    ));
    s.push_str(&format!("slipway_nonce={}\n", inputs.nonce));
    s.push_str(HELPERS);
    if needs_stdin {
        s.push_str("exec 3<&0 </dev/null 2>&1\n");
    } else {
        s.push_str("exec </dev/null 2>&1\n");
    }
    s.push_str(
        "if [ -n \"$BASH_VERSION\" ]; then SLIPWAY_SHELL=bash; slipway_m \"shell bash $BASH_VERSION\"; else SLIPWAY_SHELL=sh; slipway_m 'shell sh'; fi\nexport SLIPWAY_SHELL\n",
    );
    s.push_str("slipway_test_result=0\nslipway_result=passed\n");
    // The build dir almost always exists (the workspace was unpacked into it): `mkdir` only runs,
    // a process of its own, when it does not.
    s.push_str("{ cd \"$TRAVIS_BUILD_DIR\" 2>/dev/null || { mkdir -p \"$TRAVIS_BUILD_DIR\" && cd \"$TRAVIS_BUILD_DIR\"; }; } || { slipway_m 'error cannot enter the build dir'; slipway_m 'result errored'; exit 2; }\n");
    for notice in &inputs.notices {
        s.push_str(&format!("printf '%s\\n' {}\n", sh_quote(notice)));
    }
    // The cleanup before a deploy puts back the build dir as it is now, before anything ran.
    if inputs
        .deploys
        .iter()
        .any(|d| d.cleanup && !matches!(d.kind, DeployKind::Skipped(_)))
    {
        s.push_str("slipway_pristine=0
if slipway_snapshot; then slipway_pristine=1; else printf '\\033[33;1m%s\\033[0m\\n' 'Copying the build dir failed: deploys that clean it up will fail.'; fi
");
    }

    if !inputs.env.is_empty() {
        s.push_str("printf '%s\\n' 'Setting environment variables from the pipeline file'\n");
        for var in &inputs.env {
            s.push_str(&export(var, reveal_secrets));
        }
    }

    // `sudo` works in root jobs of images without it, as on Travis's VMs.
    s.push_str(&crate::sudo::prelude());
    s.push_str(&inputs.addons);
    s
}

/// The script being written, and the commands of each phase written so far (markers name a
/// command by phase and index).
struct ScriptWriter<'a> {
    job: &'a Job,
    s: String,
    phases: Vec<(PhaseName, Vec<String>)>,
}

impl ScriptWriter<'_> {
    /// `slipway_cache_restore` or `slipway_cache_save` (`verb`) for each cached directory.
    fn caches(&mut self, verb: &str, dirs: &[String]) {
        for dir in dirs {
            self.s.push_str(&format!(
                "slipway_cache_{verb} {} {}\n",
                cache_dir_key(dir),
                sh_double_quote(dir)
            ));
        }
    }

    /// Writes phase `p`'s commands, each between its markers; `on_fail` runs after a command
    /// that failed (nothing when empty).
    fn phase(&mut self, p: PhaseName, on_fail: &str) {
        let cmds: Vec<String> = self
            .job
            .phases
            .iter()
            .filter(|ph| ph.name == p)
            .flat_map(|ph| ph.commands.iter().cloned())
            .collect();
        if cmds.is_empty() {
            return;
        }
        let s = &mut self.s;
        s.push_str(&format!("slipway_m '{}'\n", Marker::PhaseStart(p)));
        for (idx, cmd) in cmds.iter().enumerate() {
            s.push_str(&format!(
                "slipway_m '{start}'\neval {q}\nslipway_rc=$?\nslipway_m \"cmd-end {p} {idx} $slipway_rc\"\n",
                start = Marker::CommandStart {
                    phase: p,
                    index: idx
                },
                p = p.as_str(),
                q = sh_quote(cmd)
            ));
            if !on_fail.is_empty() {
                s.push_str(&format!(
                    "if [ \"$slipway_rc\" -ne 0 ]; then {on_fail}; fi\n"
                ));
            }
        }
        s.push_str(&format!("slipway_m '{}'\n", Marker::PhaseEnd(p)));
        // `before_deploy` and `after_deploy` are written once per deploy.
        if !self.phases.iter().any(|(q, _)| *q == p) {
            self.phases.push((p, cmds));
        }
    }

    /// Writes deploy step `i`: its conditions, `before_deploy`, the deploy itself between its
    /// markers, and `after_deploy`.
    fn deploy(&mut self, i: usize, d: &DeployStep) {
        // Once a deploy errored the job, no later deploy runs (dpl stops the job there).
        self.s
            .push_str("if [ \"$slipway_deploy_ok\" -eq 1 ]; then\n");
        if let DeployKind::Skipped(reason) = &d.kind {
            self.s.push_str(&format!(
                "printf '\\033[33;1m%s\\033[0m\\n' {}\n",
                sh_quote(&format!(
                    "Deploy skipped: {} (provider {})",
                    one_line(reason),
                    one_line(&d.provider)
                ))
            ));
            self.s.push_str("fi\n");
            return;
        }
        self.s.push_str("slipway_skip=\n");
        for c in &d.conditions {
            self.s.push_str(&format!(
                "[ -n \"$slipway_skip\" ] || slipway_condition {} || slipway_skip={}\n",
                sh_quote(c),
                sh_quote(&format!("on.condition `{}` does not hold", one_line(c)))
            ));
        }
        self.s.push_str("if [ -z \"$slipway_skip\" ]; then\n:\n");
        self.phase(
            PhaseName::BeforeDeploy,
            "slipway_deploy_ok=0; slipway_result=errored",
        );
        let s = &mut self.s;
        s.push_str("if [ \"$slipway_deploy_ok\" -eq 1 ]; then\n");
        s.push_str(&format!("slipway_m '{}'\n", Marker::DeployStart(i)));
        let run = match &d.kind {
            // dpl runs the command as a child process: `exit` or `cd` in it end there.
            DeployKind::Script(cmd) => format!("(eval {})\nslipway_rc=$?\n", sh_quote(cmd)),
            DeployKind::Hook => {
                let request = format!(
                    "(umask 077; env -0 > {DEPLOY_ENV_PATH}) 2>/dev/null\nslipway_m '{request}'\nslipway_rc=1\nread -r slipway_rc <&3 || slipway_rc=1\nrm -f {DEPLOY_ENV_PATH}\n",
                    request = Marker::DeployRequest(i)
                );
                match &d.job_step {
                    None => request,
                    // Run as a child process, like a `script` deploy; its failure fails the deploy.
                    Some(step) => format!(
                        "(eval {})\nslipway_rc=$?\nif [ \"$slipway_rc\" -eq 0 ]; then\n{request}else\nprintf '\\033[31;1m%s\\033[0m\\n' {}\nfi\n",
                        sh_quote(step),
                        sh_quote(&format!(
                            "The {} deploy's build step failed; nothing was deployed.",
                            one_line(&d.provider)
                        ))
                    ),
                }
            }
            DeployKind::Skipped(_) => unreachable!("handled above"),
        };
        if d.cleanup {
            s.push_str(&format!(
                "if slipway_cleanup {}; then\n{run}else\nslipway_rc=1\nfi\n",
                sh_quote(&one_line(&d.provider))
            ));
        } else {
            s.push_str(&run);
        }
        s.push_str(&format!("slipway_m \"deploy-end {i} $slipway_rc\"\n"));
        if !d.allow_failure {
            s.push_str(
                "if [ \"$slipway_rc\" -ne 0 ]; then slipway_deploy_ok=0; slipway_result=errored; fi\n",
            );
        }
        s.push_str("if [ \"$slipway_deploy_ok\" -eq 1 ]; then\n:\n");
        self.phase(PhaseName::AfterDeploy, "");
        self.s.push_str("fi\nfi\nelse\n");
        self.s.push_str(&format!(
            "printf '\\033[33;1mDeploy skipped: %s (provider %s)\\033[0m\\n' \"$slipway_skip\" {}\n",
            sh_quote(&one_line(&d.provider))
        ));
        self.s.push_str("fi\nfi\n");
    }
}
