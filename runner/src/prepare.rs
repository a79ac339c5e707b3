//! Job preparation: from a plan's job to the container spec, the compiled script, the values
//! the log masks and the notices the log starts with, without touching the engine.

use slipway_pipelines::plan::{Context, EnvValue, EventType, Job, Plan};

use crate::cache;
use crate::env::{self, BuildInfo, EnvInputs};
use crate::executor::{FileSpec, JobSpec, ServiceSpec, VolumeMount};
use crate::runner::{Runner, RunnerOptions, build_dir};
use crate::scope::{CacheScope, Owner, Trust};
use crate::script::{self, CompiledScript, DeployKind, DeployStep, ScriptEnv, ScriptInputs};
use crate::secret_source::{RunVar, SecretSource};
use crate::services;
use crate::workspace::Workspace;
use slipway_pipelines::placement::{self, Placement};
use slipway_secrets::Secret;

/// A job prepared for an executor: the container spec and the compiled script.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    /// What the executor creates.
    pub spec: JobSpec,
    /// The compiled script (`spec.files` holds its text with secrets).
    pub script: CompiledScript,
    /// The script as shown to people: secrets as `[secure]`.
    pub display_script: String,
    /// Values the log masks.
    pub secrets: Vec<Secret<String>>,
    /// Notices for the start of the log.
    pub notices: Vec<String>,
    /// The owner whose cache the job restores (its own or a read-only fallback), if any.
    pub cache_restore: Option<Owner>,
}

/// Why a job could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PrepareError(pub String);

impl Runner {
    /// Builds the executor spec and script of a job, without touching the engine.
    /// `cache_restore` is the owner whose cache the job restores (its own, or a read-only
    /// fallback of its [`CacheScope`]); `None` when none has a cache yet.
    pub fn prepare(
        &self,
        plan: &Plan,
        job: &Job,
        build: &BuildInfo,
        workspace: Option<&Workspace>,
        cache_restore: Option<Owner>,
    ) -> Result<PreparedJob, PrepareError> {
        let ctx = &plan.context;
        let build_dir = build_dir(&self.options.build_root, &ctx.repo);
        let mut p = Preparing::new(&self.options, ctx, job);
        let (image, platform) = p.placement()?;
        // `git: clone: false`: nothing of the repository goes in, as on Travis.
        let workspace = workspace.filter(|_| job.git.clone);
        if !job.git.clone {
            p.notices.push(format!(
                "Skipping the clone (git: clone: false): the job starts in an empty {build_dir}"
            ));
        }
        let script_env = p.script_env()?;
        let env = p.container_env(build, &build_dir);
        let (service_specs, docker_socket) = p.services()?;
        if Trust::of(ctx) == Trust::Untrusted {
            p.notices.push(
                "This build is not trusted (a pull request from a fork): its containers run on a network of their own, shared with no other build".into(),
            );
        }
        let (cache_dirs, mut volumes) = p.cache_volumes(cache_restore.clone());
        // Workspaces of this build, beside the caches and in the build's own cache scope.
        let scope = CacheScope::for_build(ctx, &self.options.default_branch);
        volumes.extend(crate::build_workspaces::mounts(job, &scope, build.number));
        for name in &job.workspaces.uses {
            p.notices
                .push(format!("Using workspace {name} of this build"));
        }
        let deploys = p.deploy_steps()?;
        let nonce = {
            let mut b = [0u8; 12];
            getrandom::fill(&mut b).map_err(|e| PrepareError(format!("random nonce: {e}")))?;
            hex::encode(b)
        };
        let artifacts = p.artifacts_step();
        let addon_steps = crate::addons::steps(job, &self.options.apt_sources);
        p.notices.extend(addon_steps.notices);
        let sinputs = ScriptInputs {
            job,
            nonce: &nonce,
            env: script_env,
            cache_dirs,
            cache_archive: self.options.cache_backend.archives().is_some(),
            deploys,
            notices: Vec::new(),
            addons: addon_steps.script,
            workspace_restore: crate::build_workspaces::restore_script(job),
            workspace_save: crate::build_workspaces::save_script(job),
            artifacts,
        };
        let compiled = script::compile(&sinputs, true);
        let display_script = script::compile(&sinputs, false).text.into_exposed();

        let mut files = vec![
            FileSpec {
                path: script::SCRIPT_PATH.into(),
                contents: Secret::new(compiled.text.expose().clone().into_bytes()),
                mode: 0o755,
                // It holds the values of the job's secrets whenever the job has any.
                secret: !p.secrets.is_empty(),
            },
            crate::sudo::shim_file(),
        ];
        files.extend(p.secret_files(workspace, &build_dir)?);

        let spec = JobSpec {
            job_id: format!("{}-{}", build.id, job.number),
            build_id: build.id.clone(),
            owner: self.owner.clone(),
            image,
            env,
            working_dir: build_dir,
            cmd: script::container_command(),
            files,
            workspace_tar: workspace.map(|w| w.tar.to_path_buf()),
            services: service_specs,
            volumes,
            docker_socket,
            pipeline_file: plan.file.clone(),
            own_network: Trust::of(ctx) == Trust::Untrusted,
            limits: self.options.limits,
            open_stdin: compiled.needs_stdin,
            platform,
        };
        Ok(PreparedJob {
            spec,
            script: compiled,
            display_script,
            secrets: p.secrets,
            notices: p.notices,
            cache_restore,
        })
    }
}

/// One job's preparation under way: what it reads, and the values the log masks and the notices
/// the log starts with, gathered step by step in the order the log shows them.
struct Preparing<'a> {
    options: &'a RunnerOptions,
    ctx: &'a Context,
    job: &'a Job,
    /// Secrets are decrypted only for trusted builds on a runner that has a key.
    can_decrypt: bool,
    /// Why secrets are withheld, for the log: the fork rule, or no key here.
    withheld_because: String,
    secrets: Vec<Secret<String>>,
    notices: Vec<String>,
}

impl<'a> Preparing<'a> {
    fn new(options: &'a RunnerOptions, ctx: &'a Context, job: &'a Job) -> Self {
        let withheld_because = if ctx.fork {
            "this is a pull request from a fork, and secrets go only to trusted builds".to_string()
        } else {
            format!("no key for {} is present here", ctx.repo)
        };
        Preparing {
            options,
            ctx,
            job,
            can_decrypt: options.secrets.is_some() && !ctx.fork,
            withheld_because,
            secrets: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// The secret source, when this build may decrypt.
    fn decrypter(&self) -> Option<&'a dyn SecretSource> {
        let options: &'a RunnerOptions = self.options;
        options.secrets.as_deref().filter(|_| self.can_decrypt)
    }

    /// The image and platform the job runs with here, or why it is not run here.
    fn placement(&mut self) -> Result<(String, Option<String>), PrepareError> {
        let job = self.job;
        match placement::place(job, &self.options.hosting) {
            Placement::Here { image, platform } => {
                if let Some(image) = &image {
                    self.notices.push(format!(
                        "os: {} runs in the image {image}, as the operator configured",
                        job.matrix
                            .get("os")
                            .and_then(|v| v.as_str())
                            .unwrap_or("linux")
                    ));
                }
                if let Some(platform) = &platform {
                    self.notices
                        .push(format!("The job runs as {platform} through emulation"));
                }
                let image =
                    image.unwrap_or_else(|| self.mapped("The job's image", &job.image.name));
                Ok((image, platform))
            }
            Placement::NotHere(why) => Err(PrepareError(format!("not run here: {why}"))),
        }
    }

    /// `image` through the operator's image map, with a notice saying what it became and why.
    fn mapped(&mut self, what: &str, image: &str) -> String {
        let mapped = self.options.images.map(image);
        if let Some(why) = &mapped.why {
            self.notices.push(format!(
                "{what} {image} is pulled as {} ({why})",
                mapped.image
            ));
        }
        mapped.image
    }

    /// The script's variables: settings variables, then those given for this run, then the
    /// file's `env:`, secure values decrypted when the build may have them and named as withheld
    /// when not.
    fn script_env(&mut self) -> Result<Vec<ScriptEnv>, PrepareError> {
        let ctx = self.ctx;
        let mut script_env = Vec::new();
        let mut secure_skipped = Vec::new();
        if let (Some(src), false) = (&self.options.secrets, self.can_decrypt) {
            // Names only: a fork's log says which settings variables it does not get.
            let names: Vec<String> = src
                .settings(&ctx.repo)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            if !names.is_empty() {
                self.notices.push(format!(
                    "Settings variables are not exported because {}: {}",
                    self.withheld_because,
                    names.join(", ")
                ));
            }
        }
        if let Some(src) = self.decrypter() {
            let settings = src.settings(&ctx.repo).map_err(|e| {
                PrepareError(format!("reading the repository's settings variables: {e}"))
            })?;
            for (name, value) in settings {
                self.secrets.push(value.clone());
                script_env.push(ScriptEnv::Secret { name, value });
            }
        }
        self.run_vars(&mut script_env);
        for var in &self.job.env {
            match (&var.value, self.decrypter()) {
                (EnvValue::Plain(v), _) => script_env.push(ScriptEnv::Shell {
                    name: var.name.clone(),
                    value: v.clone(),
                }),
                (EnvValue::Secure(cipher), Some(src)) => {
                    let (_, value) = src.decrypt_env(&ctx.repo, cipher).map_err(|e| {
                        PrepareError(format!("decrypting the secure value of {}: {e}", var.name))
                    })?;
                    self.secrets.push(value.clone());
                    script_env.push(ScriptEnv::Secret {
                        name: var.name.clone(),
                        value,
                    });
                }
                (EnvValue::Secure(_), None) => secure_skipped.push(var.name.clone()),
                (EnvValue::SecureAssignment(cipher), Some(src)) => {
                    let (name, value) = src
                        .decrypt_env(&ctx.repo, cipher)
                        .map_err(|e| PrepareError(format!("decrypting a secure env entry: {e}")))?;
                    self.secrets.push(value.clone());
                    script_env.push(ScriptEnv::Secret { name, value });
                }
                (EnvValue::SecureAssignment(_), None) => {
                    secure_skipped.push("(a secure env entry)".into());
                }
            }
        }
        if !secure_skipped.is_empty() {
            self.notices.push(format!(
                "Secure variables are unset because {}: {}",
                self.withheld_because,
                secure_skipped.join(", ")
            ));
        }
        Ok(script_env)
    }

    /// The variables given for this run (`--env`, `--secret`): plain ones quoted so the shell
    /// takes them literally, secret ones masked and withheld from forks like settings variables.
    fn run_vars(&mut self, script_env: &mut Vec<ScriptEnv>) {
        let mut withheld = Vec::new();
        for var in &self.options.run_vars {
            match var {
                RunVar::Plain { name, value } => script_env.push(ScriptEnv::Shell {
                    name: name.clone(),
                    value: script::sh_quote(value),
                }),
                RunVar::Secret { name, .. } if self.ctx.fork => withheld.push(name.clone()),
                RunVar::Secret { name, value } => {
                    self.secrets.push(value.clone());
                    script_env.push(ScriptEnv::Secret {
                        name: name.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        if !withheld.is_empty() {
            self.notices.push(format!(
                "Secrets given for this run are not exported because this is a pull request from a fork, and secrets go only to trusted builds: {}",
                withheld.join(", ")
            ));
        }
    }

    /// The container's environment: Travis's variables, and git trusting the workspace.
    fn container_env(&self, build: &BuildInfo, build_dir: &str) -> Vec<(String, String)> {
        let inputs = EnvInputs {
            context: self.ctx,
            job: self.job,
            build,
            build_dir,
            secure_env_vars: self.can_decrypt,
        };
        let mut env = env::job_environment(&inputs);
        // Git refuses repositories owned by another user; the workspace is ours to trust.
        env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
        env.push(("GIT_CONFIG_KEY_0".into(), "safe.directory".into()));
        env.push(("GIT_CONFIG_VALUE_0".into(), "*".into()));
        env
    }

    /// The job's service containers, and whether it gets the engine's socket (`services: docker`,
    /// trusted builds only).
    fn services(&mut self) -> Result<(Vec<ServiceSpec>, bool), PrepareError> {
        let (job, ctx) = (self.job, self.ctx);
        let mut service_specs = Vec::new();
        let mut docker_socket = false;
        for name in &crate::addons::services(job) {
            if name == "docker" {
                if !self.options.trusted || ctx.fork {
                    return Err(PrepareError(
                        "services: docker gives the job the Docker engine, which only trusted builds get; this build is not trusted".into(),
                    ));
                }
                docker_socket = true;
                self.notices.push(
                    "services: docker: this job can use the host's Docker engine (trusted build); containers it starts are not cleaned up by Slipway".into(),
                );
                continue;
            }
            let mut spec = self.service_spec(name)?;
            if !self.options.service_overrides.contains_key(name) {
                spec.image = self.mapped(&format!("Service {name}'s image"), &spec.image);
            }
            self.notices.push(format!(
                "Service {} ({}) is reachable on localhost and as {}",
                spec.name,
                spec.image,
                std::iter::once(&spec.name)
                    .chain(&spec.aliases)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            service_specs.push(spec);
        }
        Ok((service_specs, docker_socket))
    }

    /// The operator's override of a service, else the table's entry with the job's image.
    fn service_spec(&self, name: &str) -> Result<ServiceSpec, PrepareError> {
        self.options
            .service_overrides
            .get(name)
            .cloned()
            .or_else(|| {
                let mut spec = services::default_spec(name)?;
                if let Some(image) =
                    crate::addons::service_image(&self.job.addons, name, &spec.image)
                {
                    spec.image = image;
                }
                Some(spec)
            })
            .ok_or_else(|| {
                PrepareError(format!(
                    "unknown service {name}; known: docker, {}",
                    services::SERVICES
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The cached directories and the cache volumes: the build's own, and a read-only fallback
    /// it restores from; no volume when caches are archives the runner moves.
    fn cache_volumes(&mut self, cache_restore: Option<Owner>) -> (Vec<String>, Vec<VolumeMount>) {
        let (job, ctx) = (self.job, self.ctx);
        let cache_dirs = if self.options.cache {
            cache::directories(job)
        } else {
            Vec::new()
        };
        let mut volumes = Vec::new();
        if cache_dirs.is_empty() {
            return (cache_dirs, volumes);
        }
        let key = cache::job_key(job);
        let scope = CacheScope::for_build(ctx, &self.options.default_branch);
        let cache_restore_is_own = cache_restore.as_ref() == Some(&scope.own);
        let archived = self.options.cache_backend.archives().is_some();
        let mut labels = vec![("dev.slipway.cache.repo".into(), ctx.repo.clone())];
        labels.extend(scope.own.labels());
        labels.push(("dev.slipway.cache.key".into(), key.clone()));
        if !archived {
            volumes.push(VolumeMount {
                volume: cache::volume_name(&ctx.repo, &scope.own, &key),
                target: script::CACHE_MOUNT.into(),
                read_only: false,
                labels,
            });
        }
        // Only a fallback of the build's own scope is ever mounted, and only read-only.
        let own = &scope.own;
        let fallback = cache_restore.filter(|o| scope.fallbacks.contains(o));
        self.notices.push(match (&fallback, cache_restore_is_own) {
            (Some(from), _) => format!(
                "Cache: restoring the cache of {from} (read-only for this build); saving into the cache of {own}"
            ),
            (None, true) => format!("Cache: restoring and saving the cache of {own}"),
            (None, false) => format!(
                "Cache: nothing is cached yet for {own} nor what it may start from; saving into the cache of {own}"
            ),
        });
        if let Some(from) = fallback.filter(|_| !archived) {
            volumes.push(VolumeMount {
                volume: cache::volume_name(&ctx.repo, &from, &key),
                target: script::CACHE_FALLBACK_MOUNT.into(),
                read_only: true,
                labels: Vec::new(),
            });
        }
        (cache_dirs, volumes)
    }

    /// Every deploy is a step, in file order: the ones that do not run for this event say why
    /// where they would have run.
    fn deploy_steps(&mut self) -> Result<Vec<DeployStep>, PrepareError> {
        let (job, ctx) = (self.job, self.ctx);
        if ctx.event == EventType::PullRequest && !job.deploys.is_empty() {
            self.notices.push(format!(
                "Deploys do not run for pull requests{}: {}",
                if ctx.fork {
                    " (this one is from a fork)"
                } else {
                    ""
                },
                job.deploys
                    .iter()
                    .map(|d| d.provider.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut deploys = Vec::new();
        for (index, d) in job.deploys.iter().enumerate() {
            let kind = if ctx.event == EventType::PullRequest {
                DeployKind::Skipped("deploys never run on pull request builds".into())
            } else if !d.decision.included {
                DeployKind::Skipped(d.decision.reason.clone())
            } else if d.provider == "script" {
                let cmd = d
                    .options
                    .get("script")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        PrepareError("deploy provider script needs a `script:` command".into())
                    })?;
                DeployKind::Script(cmd.to_string())
            } else {
                DeployKind::Hook
            };
            // A provider or a script that prints a decrypted deploy option shows `[secure]`:
            // the options' secure values join the masker before anything runs.
            if let (Some(src), DeployKind::Script(_) | DeployKind::Hook) = (self.decrypter(), &kind)
            {
                let mut ciphertexts = Vec::new();
                for value in d.options.values() {
                    secure_values(value, &mut ciphertexts);
                }
                // One that does not decrypt fails its deploy later, naming the option.
                self.secrets.extend(
                    ciphertexts
                        .into_iter()
                        .filter_map(|c| src.decrypt_env(&ctx.repo, c).ok())
                        .map(|(_, value)| value),
                );
            }
            let job_step = match (&kind, &self.options.deploy_hook) {
                (DeployKind::Hook, Some(hook)) => hook.job_step(d),
                _ => None,
            };
            deploys.push(DeployStep {
                index,
                provider: d.provider.clone(),
                kind,
                allow_failure: d.allow_failure,
                conditions: d.condition.clone(),
                cleanup: !d.skip_cleanup,
                job_step,
            });
        }
        Ok(deploys)
    }

    /// The `addons.artifacts` step, its secure options decrypted when the build may have them.
    fn artifacts_step(&mut self) -> Option<script::ArtifactsStep> {
        let options = self.job.addons.artifacts.as_ref()?;
        let decrypter = self.decrypter();
        let repo = &self.ctx.repo;
        let decrypt = |cipher: &str| {
            decrypter
                .and_then(|src| src.decrypt_env(repo, cipher).ok())
                .map(|(_, v)| v)
        };
        let env = crate::artifacts::script_env(options, &decrypt);
        for var in &env {
            if let ScriptEnv::Secret { value, .. } = var {
                self.secrets.push(value.clone());
            }
        }
        let branch = options
            .get("branch")
            .and_then(|b| b.as_str())
            .map(str::to_owned);
        Some(script::ArtifactsStep { env, branch })
    }

    /// The job's encrypted files, decrypted into the build dir when the build may have them.
    fn secret_files(
        &mut self,
        workspace: Option<&Workspace>,
        build_dir: &str,
    ) -> Result<Vec<FileSpec>, PrepareError> {
        let job = self.job;
        let mut files = Vec::new();
        if job.secret_files.is_empty() {
            return Ok(files);
        }
        match (self.decrypter(), self.can_decrypt, workspace) {
            (Some(src), true, Some(ws)) => {
                for f in &job.secret_files {
                    let data = std::fs::read(ws.root.join(f))
                        .map_err(|e| PrepareError(format!("reading encrypted file {f}: {e}")))?;
                    let plain = src
                        .decrypt_file(&self.ctx.repo, &data)
                        .map_err(|e| PrepareError(format!("decrypting {f}: {e}")))?;
                    let target = f.strip_suffix(".age").unwrap_or(f);
                    // A job that prints the file shows `[secure]`, line by line.
                    if let Ok(text) = std::str::from_utf8(plain.expose()) {
                        self.secrets.push(Secret::new(text.to_string()));
                    }
                    files.push(FileSpec {
                        path: format!("{build_dir}/{target}"),
                        contents: plain,
                        mode: 0o600,
                        secret: true,
                    });
                }
            }
            (_, true, None) => self.notices.push(format!(
                "Encrypted files are not decrypted because the job has no workspace to read them from: {}",
                job.secret_files.join(", ")
            )),
            _ => self.notices.push(format!(
                "Encrypted files are not decrypted because {}: {}",
                self.withheld_because,
                job.secret_files.join(", ")
            )),
        }
        Ok(files)
    }
}

/// The `{secure: …}` ciphertexts anywhere in a deploy option (per-branch maps and lists included).
fn secure_values<'v>(value: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (1, Some(serde_json::Value::String(c))) = (map.len(), map.get("secure")) {
                out.push(c);
                return;
            }
            for v in map.values() {
                secure_values(v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                secure_values(v, out);
            }
        }
        _ => {}
    }
}
