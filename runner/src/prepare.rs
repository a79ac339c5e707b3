//! Job preparation: from a plan's job to the container spec, the compiled script, the values
//! the log masks and the notices the log starts with, without touching the engine.

use slipway_pipelines::plan::{EnvValue, EventType, Job, Plan};

use crate::cache;
use crate::env::{self, BuildInfo, EnvInputs};
use crate::executor::{FileSpec, JobSpec, VolumeMount};
use crate::runner::{Runner, build_dir};
use crate::scope::{CacheScope, Owner, Trust};
use crate::script::{self, CompiledScript, DeployKind, DeployStep, ScriptEnv, ScriptInputs};
use crate::services;
use crate::workspace::Workspace;
use slipway_pipelines::placement::{self, Placement};

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
    pub secrets: Vec<String>,
    /// Notices for the start of the log.
    pub notices: Vec<String>,
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
        let mut notices = Vec::new();
        let (image, platform) = match placement::place(job, &self.options.hosting) {
            Placement::Here { image, platform } => {
                if let Some(image) = &image {
                    notices.push(format!(
                        "os: {} runs in the image {image}, as the operator configured",
                        job.matrix
                            .get("os")
                            .and_then(|v| v.as_str())
                            .unwrap_or("linux")
                    ));
                }
                if let Some(platform) = &platform {
                    notices.push(format!("The job runs as {platform} through emulation"));
                }
                (image.unwrap_or_else(|| job.image.name.clone()), platform)
            }
            Placement::NotHere(why) => return Err(PrepareError(format!("not run here: {why}"))),
        };
        // `git: clone: false`: nothing of the repository goes in, as on Travis.
        let workspace = workspace.filter(|_| job.git.clone);
        if !job.git.clone {
            notices.push(format!(
                "Skipping the clone (git: clone: false): the job starts in an empty {build_dir}"
            ));
        }
        let can_decrypt = self.options.secrets.is_some() && !ctx.fork;
        // Why secrets are withheld, for the log: the fork rule, or no key here.
        let withheld_because = if ctx.fork {
            "this is a pull request from a fork, and secrets go only to trusted builds".to_string()
        } else {
            format!("no key for {} is present here", ctx.repo)
        };
        let mut secrets = Vec::new();
        let mut script_env = Vec::new();
        let mut secure_skipped = Vec::new();
        if let (Some(src), false) = (&self.options.secrets, can_decrypt) {
            // Names only: a fork's log says which settings variables it does not get.
            let names: Vec<String> = src
                .settings(&ctx.repo)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            if !names.is_empty() {
                notices.push(format!(
                    "Settings variables are not exported because {withheld_because}: {}",
                    names.join(", ")
                ));
            }
        }
        if let (Some(src), true) = (&self.options.secrets, can_decrypt) {
            let settings = src.settings(&ctx.repo).map_err(|e| {
                PrepareError(format!("reading the repository's settings variables: {e}"))
            })?;
            for (name, value) in settings {
                secrets.push(value.clone());
                script_env.push(ScriptEnv::Secret { name, value });
            }
        }
        for var in &job.env {
            match &var.value {
                EnvValue::Plain(v) => script_env.push(ScriptEnv::Shell {
                    name: var.name.clone(),
                    value: v.clone(),
                }),
                EnvValue::Secure(cipher) => match (&self.options.secrets, can_decrypt) {
                    (Some(src), true) => {
                        let (_, value) = src.decrypt_env(&ctx.repo, cipher).map_err(|e| {
                            PrepareError(format!(
                                "decrypting the secure value of {}: {e}",
                                var.name
                            ))
                        })?;
                        secrets.push(value.clone());
                        script_env.push(ScriptEnv::Secret {
                            name: var.name.clone(),
                            value,
                        });
                    }
                    _ => secure_skipped.push(var.name.clone()),
                },
                EnvValue::SecureAssignment(cipher) => match (&self.options.secrets, can_decrypt) {
                    (Some(src), true) => {
                        let (name, value) = src.decrypt_env(&ctx.repo, cipher).map_err(|e| {
                            PrepareError(format!("decrypting a secure env entry: {e}"))
                        })?;
                        secrets.push(value.clone());
                        script_env.push(ScriptEnv::Secret { name, value });
                    }
                    _ => secure_skipped.push("(a secure env entry)".into()),
                },
            }
        }
        if !secure_skipped.is_empty() {
            notices.push(format!(
                "Secure variables are unset because {withheld_because}: {}",
                secure_skipped.join(", ")
            ));
        }
        let secure_env_vars = can_decrypt;
        let inputs = EnvInputs {
            context: ctx,
            job,
            build,
            build_dir: &build_dir,
            secure_env_vars,
        };
        let mut env = env::job_environment(&inputs);
        // Git refuses repositories owned by another user; the workspace is ours to trust.
        env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
        env.push(("GIT_CONFIG_KEY_0".into(), "safe.directory".into()));
        env.push(("GIT_CONFIG_VALUE_0".into(), "*".into()));

        // Services.
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
                notices.push(
                    "services: docker: this job can use the host's Docker engine (trusted build); containers it starts are not cleaned up by Slipway".into(),
                );
                continue;
            }
            let spec = self
                .options
                .service_overrides
                .get(name)
                .cloned()
                .or_else(|| {
                    let mut spec = services::default_spec(name)?;
                    if let Some(image) =
                        crate::addons::service_image(&job.addons, name, &spec.image)
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
                })?;
            notices.push(format!(
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

        if Trust::of(ctx) == Trust::Untrusted {
            notices.push(
                "This build is not trusted (a pull request from a fork): its containers run on a network of their own, shared with no other build".into(),
            );
        }

        // Cache.
        let cache_dirs = if self.options.cache {
            cache::directories(job)
        } else {
            Vec::new()
        };
        let mut volumes = Vec::new();
        if !cache_dirs.is_empty() {
            let key = cache::job_key(job);
            let scope = CacheScope::for_build(ctx, &self.options.default_branch);
            let cache_restore_is_own = cache_restore.as_ref() == Some(&scope.own);
            let mut labels = vec![("dev.slipway.cache.repo".into(), ctx.repo.clone())];
            labels.extend(scope.own.labels());
            labels.push(("dev.slipway.cache.key".into(), key.clone()));
            volumes.push(VolumeMount {
                volume: cache::volume_name(&ctx.repo, &scope.own, &key),
                target: script::CACHE_MOUNT.into(),
                read_only: false,
                labels,
            });
            // Only a fallback of the build's own scope is ever mounted, and only read-only.
            let own = &scope.own;
            let fallback = cache_restore.filter(|o| scope.fallbacks.contains(o));
            notices.push(match (&fallback, cache_restore_is_own) {
                (Some(from), _) => format!(
                    "Cache: restoring the cache of {from} (read-only for this build); saving into the cache of {own}"
                ),
                (None, true) => format!("Cache: restoring and saving the cache of {own}"),
                (None, false) => format!(
                    "Cache: nothing is cached yet for {own} nor what it may start from; saving into the cache of {own}"
                ),
            });
            if let Some(from) = fallback {
                volumes.push(VolumeMount {
                    volume: cache::volume_name(&ctx.repo, &from, &key),
                    target: script::CACHE_FALLBACK_MOUNT.into(),
                    read_only: true,
                    labels: Vec::new(),
                });
            }
        }

        // Workspaces of this build, beside the caches and in the build's own cache scope.
        let scope = CacheScope::for_build(ctx, &self.options.default_branch);
        volumes.extend(crate::build_workspaces::mounts(job, &scope, build.number));
        for name in &job.workspaces.uses {
            notices.push(format!("Using workspace {name} of this build"));
        }

        // Every deploy is a step, in file order: the ones that do not run for this event say why
        // where they would have run.
        let mut deploys = Vec::new();
        if ctx.event == EventType::PullRequest && !job.deploys.is_empty() {
            notices.push(format!(
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
            if let (Some(src), true, DeployKind::Script(_) | DeployKind::Hook) =
                (&self.options.secrets, can_decrypt, &kind)
            {
                let mut ciphertexts = Vec::new();
                for value in d.options.values() {
                    secure_values(value, &mut ciphertexts);
                }
                // One that does not decrypt fails its deploy later, naming the option.
                secrets.extend(
                    ciphertexts
                        .into_iter()
                        .filter_map(|c| src.decrypt_env(&ctx.repo, c).ok())
                        .map(|(_, value)| value),
                );
            }
            deploys.push(DeployStep {
                index,
                provider: d.provider.clone(),
                kind,
                allow_failure: d.allow_failure,
                conditions: d.condition.clone(),
                cleanup: !d.skip_cleanup,
            });
        }

        let nonce = {
            let mut b = [0u8; 12];
            getrandom::fill(&mut b).map_err(|e| PrepareError(format!("random nonce: {e}")))?;
            hex::encode(b)
        };
        let artifacts = job.addons.artifacts.as_ref().map(|options| {
            let decrypt = |cipher: &str| match (&self.options.secrets, can_decrypt) {
                (Some(src), true) => src.decrypt_env(&ctx.repo, cipher).ok().map(|(_, v)| v),
                _ => None,
            };
            let env = crate::artifacts::script_env(options, &decrypt);
            for var in &env {
                if let ScriptEnv::Secret { value, .. } = var {
                    secrets.push(value.clone());
                }
            }
            let branch = options
                .get("branch")
                .and_then(|b| b.as_str())
                .map(str::to_owned);
            script::ArtifactsStep { env, branch }
        });
        let addon_steps = crate::addons::steps(job, &self.options.apt_sources);
        notices.extend(addon_steps.notices);
        let sinputs = ScriptInputs {
            job,
            nonce: &nonce,
            env: script_env,
            cache_dirs,
            deploys,
            notices: Vec::new(),
            addons: addon_steps.script,
            workspace_restore: crate::build_workspaces::restore_script(job),
            workspace_save: crate::build_workspaces::save_script(job),
            artifacts,
        };
        let compiled = script::compile(&sinputs, true);
        let display_script = script::compile(&sinputs, false).text;

        let mut files = vec![
            FileSpec {
                path: script::SCRIPT_PATH.into(),
                contents: compiled.text.clone().into_bytes(),
                mode: 0o755,
            },
            crate::sudo::shim_file(),
        ];
        if !job.secret_files.is_empty() {
            match (&self.options.secrets, can_decrypt, workspace) {
                (Some(src), true, Some(ws)) => {
                    for f in &job.secret_files {
                        let data = std::fs::read(ws.root.join(f)).map_err(|e| {
                            PrepareError(format!("reading encrypted file {f}: {e}"))
                        })?;
                        let plain = src
                            .decrypt_file(&ctx.repo, &data)
                            .map_err(|e| PrepareError(format!("decrypting {f}: {e}")))?;
                        let target = f.strip_suffix(".age").unwrap_or(f);
                        // A job that prints the file shows `[secure]`, line by line.
                        if let Ok(text) = std::str::from_utf8(&plain) {
                            secrets.push(text.to_string());
                        }
                        files.push(FileSpec {
                            path: format!("{build_dir}/{target}"),
                            contents: plain,
                            mode: 0o600,
                        });
                    }
                }
                (_, true, None) => notices.push(format!(
                    "Encrypted files are not decrypted because the job has no workspace to read them from: {}",
                    job.secret_files.join(", ")
                )),
                _ => notices.push(format!(
                    "Encrypted files are not decrypted because {withheld_because}: {}",
                    job.secret_files.join(", ")
                )),
            }
        }

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
            own_network: Trust::of(ctx) == Trust::Untrusted,
            limits: self.options.limits,
            open_stdin: compiled.needs_stdin,
            platform,
        };
        Ok(PreparedJob {
            spec,
            script: compiled,
            display_script,
            secrets,
            notices,
        })
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
