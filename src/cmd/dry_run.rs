//! `slipway run --dry-run`: what a local run would create and run, without a Docker engine: each
//! job's volumes, networks, containers (image, command, mounts, limits, environment), the notices
//! its log would start with, its script (secrets as `[secure]`) and its deploys' API calls.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use bollard::models::ContainerCreateBody;
use slipway_pipelines::plan::{EventType, Job, Plan};
use slipway_runner::docker::{DEFAULT_SOCKET, requests};
use slipway_runner::runner::build_dir;
use slipway_runner::{BuildInfo, Runner, RunnerOptions};

use crate::cmd::preview;
use crate::cmd::vars::RunVars;

/// Prints the dry run of `plan` to standard output.
pub fn print(
    plan: &Plan,
    build: &BuildInfo,
    opts: RunnerOptions,
    dir: &Path,
    vars: &RunVars,
) -> anyhow::Result<()> {
    let disk_gib = opts.limits.disk_bytes >> 30;
    // A runner over an executor that is never called: preparing a job is pure.
    let runner = Runner::new(Arc::new(NoEngine), opts);
    let build_dir = build_dir(&runner.options().build_root, &plan.context.repo);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Dry run of {} for {} on {} ({}); nothing is created.",
        plan.file,
        plan.context.event.as_str(),
        plan.context.branch,
        plan.context.repo
    )?;
    writeln!(
        out,
        "The working tree is packed into each job container at {build_dir}."
    )?;
    if !vars.before_file.is_empty() {
        writeln!(out, "Variables exported before the file's env:")?;
        for line in vars.describe() {
            writeln!(out, "  {line}")?;
        }
    }
    for stage in &plan.stages {
        writeln!(out, "\n== stage {} ==", stage.name)?;
        for job in &stage.jobs {
            let prepared = match runner.prepare(plan, job, build, None, None) {
                Ok(prepared) => prepared,
                Err(e) if e.0.starts_with("not run here") => {
                    writeln!(out, "\njob {}: {e}", job.number)?;
                    continue;
                }
                Err(e) => {
                    writeln!(out, "\njob {}: would error: {e}", job.number)?;
                    continue;
                }
            };
            write!(out, "{}", describe_job(build, job, &prepared, disk_gib))?;
            // A pull request never deploys, whatever `on:` says.
            if plan.context.event != EventType::PullRequest {
                write!(out, "{}", describe_deploys(plan, job, dir, vars))?;
            }
        }
    }
    crate::cmd::notify::print_planned(&mut out, plan)?;
    Ok(())
}

/// A prepared job: its volumes, network, containers, notices and script.
fn describe_job(
    build: &BuildInfo,
    job: &Job,
    prepared: &slipway_runner::PreparedJob,
    disk_gib: u64,
) -> String {
    let req = requests::job_requests(
        &prepared.spec,
        DEFAULT_SOCKET,
        slipway_runner::docker::find_docker_cli().as_deref(),
    );
    let mut s = format!(
        "\n-- job {}.{}{}{} --\n",
        build.number,
        job.number,
        job.name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default(),
        if job.allow_failure {
            " (allowed to fail)"
        } else {
            ""
        }
    );
    for v in &req.volumes {
        s += &format!(
            "volume    {} (kept cache)\n",
            v.name.as_deref().unwrap_or("")
        );
    }
    if let Some(n) = &req.network {
        s += &format!("network   {} (bridge)\n", n.name);
    }
    let containers = req.netns.iter().chain(&req.services).chain([&req.job]);
    for (name, body) in containers {
        s += &describe_container(name, body, disk_gib);
    }
    for notice in &prepared.notices {
        s += &format!("  note     {notice}\n");
    }
    s += &format!(
        "  script   {} ({} bytes):\n",
        slipway_runner::script::SCRIPT_PATH,
        prepared.display_script.len()
    );
    for line in prepared.display_script.lines() {
        s += &format!("    | {line}\n");
    }
    s
}

/// One container as the engine would be asked to create it.
fn describe_container(name: &str, body: &ContainerCreateBody, disk_gib: u64) -> String {
    let hc = body.host_config.clone().unwrap_or_default();
    let mut s = format!(
        "container {name}\n  image    {}\n",
        body.image.as_deref().unwrap_or("")
    );
    if let Some(c) = body.entrypoint.as_ref().or(body.cmd.as_ref()) {
        s.push_str(&format!("  command  {}\n", c.join(" ")));
    }
    if let Some(n) = &hc.network_mode {
        s.push_str(&format!("  network  {n}\n"));
    }
    if let Some(h) = &hc.extra_hosts {
        s.push_str(&format!("  hosts    {}\n", h.join(" ")));
    }
    for m in hc.mounts.unwrap_or_default() {
        s.push_str(&format!(
            "  mount    {} -> {}{}\n",
            m.source.unwrap_or_default(),
            m.target.unwrap_or_default(),
            if m.read_only == Some(true) {
                " (read-only)"
            } else {
                ""
            }
        ));
    }
    s.push_str(&format!(
        "  limits   memory {} MiB, cpus {}, pids {}, disk {} GiB\n",
        hc.memory.unwrap_or(0) >> 20,
        hc.nano_cpus.unwrap_or(0) as f64 / 1e9,
        hc.pids_limit.unwrap_or(0),
        disk_gib
    ));
    s.push_str(&format!(
        "  security {}; capabilities {}\n",
        hc.security_opt.unwrap_or_default().join(", "),
        hc.cap_add.unwrap_or_default().join(" ")
    ));
    if let Some(env) = &body.env
        && !env.is_empty()
    {
        s.push_str("  env      ");
        s.push_str(&env.join("\n           "));
        s.push('\n');
    }
    s
}

/// Each deploy of `job`: its verdict, API calls and where its values come from.
fn describe_deploys(plan: &Plan, job: &Job, dir: &Path, vars: &RunVars) -> String {
    let mut text = String::new();
    let previews = preview::deploy_previews(plan, job, dir, vars);
    for (p, deploy) in previews.iter().zip(&job.deploys) {
        let verdict = if p.run.runs { "runs" } else { "skipped" };
        let cleanup = preview::cleanup_note(deploy);
        text += &format!(
            "deploy {}: {verdict}: {}{cleanup}\n",
            p.run.provider, p.run.reason
        );
        preview::write_preview(&mut text, "  ", p);
    }
    text
}

/// The executor `--dry-run` hands the runner: preparing jobs never calls it.
struct NoEngine;

#[async_trait::async_trait]
impl slipway_runner::Executor for NoEngine {
    async fn ensure_image(
        &self,
        _: &str,
        _: slipway_runner::executor::Progress<'_>,
    ) -> Result<(), slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn volume_exists(&self, _: &str) -> Result<bool, slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn setup(
        &self,
        _: &slipway_runner::JobSpec,
        _: slipway_runner::executor::Progress<'_>,
    ) -> Result<(), slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn start(
        &self,
        _: &slipway_runner::JobSpec,
    ) -> Result<slipway_runner::executor::JobStreams, slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn wait(&self, _: &str) -> Result<i64, slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn kill(&self, _: &str) -> Result<(), slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn download(&self, _: &str, _: &str) -> Result<Vec<u8>, slipway_runner::ExecError> {
        Err(no_engine())
    }
    async fn teardown(&self, _: &str) -> Result<(), slipway_runner::ExecError> {
        Ok(())
    }
    async fn sweep(
        &self,
    ) -> Result<slipway_runner::executor::SweepReport, slipway_runner::ExecError> {
        Ok(Default::default())
    }
}

fn no_engine() -> slipway_runner::ExecError {
    slipway_runner::ExecError::NoEngine {
        endpoint: "(dry run)".into(),
        reason: "a dry run uses no engine".into(),
    }
}
