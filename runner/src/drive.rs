//! One job from start to end: placement, preparation, setup, the output loop with its time
//! limits, the replies to the script's requests, and the teardown.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use slipway_pipelines::plan::{Job, PhaseName, Plan};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::deploy::{ChannelLog, ExecutorFiles, JobFiles, parse_env_dump};
use crate::env::BuildInfo;
use crate::executor::{InputWriter, JobSpec, JobStreams};
use crate::job::JobRun;
use crate::markers::{Marker, MarkerParser, Piece};
use crate::outcome::{BuildEvent, JobOutcome, JobResult};
use crate::prepare::PreparedJob;
use crate::runner::{Runner, fmt_duration};
use crate::scope::CacheScope;
use crate::workspace::Workspace;
use slipway_pipelines::placement::{self, Placement};

impl Runner {
    /// Runs one job to its end and tears it down, whatever happens; see the module docs.
    pub async fn run_job(
        &self,
        plan: &Plan,
        job: &Job,
        build: &BuildInfo,
        workspace: Option<&Workspace>,
        events: mpsc::Sender<BuildEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let started = Instant::now();
        let mut run = JobRun::new(job, events, &self.options);
        run.notice(&format!(
            "Slipway job {}.{}{} in stage {}, image {}",
            build.number,
            job.number,
            job.name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            job.stage,
            job.image.name
        ))
        .await;
        if let Placement::NotHere(why) = placement::place(job, &self.options.hosting) {
            run.notice(&format!("This job is not run here: {why}."))
                .await;
            return run
                .finish(
                    JobResult::NotRun,
                    Some(format!("not run here: {why}")),
                    started,
                    None,
                )
                .await;
        }

        // A workspace this build never created: say so before making anything.
        let scope = CacheScope::for_build(&plan.context, &self.options.default_branch);
        for name in &job.workspaces.uses {
            let volume = crate::build_workspaces::volume_name(&scope, build.number, name);
            if !self.executor.volume_exists(&volume).await.unwrap_or(true) {
                let why = crate::build_workspaces::missing(name);
                run.error(&why).await;
                return run
                    .finish(JobResult::Errored, Some(why), started, None)
                    .await;
            }
        }

        let restore = self.cache_to_restore(plan, job, &mut run).await;
        let prepared = match self.prepare(plan, job, build, workspace, restore) {
            Ok(p) => p,
            Err(e) => {
                run.error(&e.0).await;
                return run
                    .finish(JobResult::Errored, Some(e.0), started, None)
                    .await;
            }
        };
        // The one filter stage every log byte passes: the secrets masker.
        let (masker, warnings) = slipway_secrets::Masker::new(prepared.secrets.iter().cloned());
        run.set_filter(Box::new(masker));
        for w in warnings {
            run.notice(&w.to_string()).await;
        }
        for n in &prepared.notices {
            run.notice(n).await;
        }
        let job_id = prepared.spec.job_id.clone();
        let outcome = self.drive(plan, job, &prepared, &mut run, cancel).await;
        if let Err(e) = self.executor.teardown(&job_id).await {
            run.error(&format!("cleaning up the job's containers failed: {e}"))
                .await;
        }
        let (result, reason, exit) = outcome;
        run.finish(result, reason, started, exit).await
    }

    async fn drive(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
        cancel: CancellationToken,
    ) -> Ending {
        let spec = &prepared.spec;
        if let Err(ending) = self.set_up(spec, run, &cancel).await {
            return ending;
        }
        let streams = match self.executor.start(spec).await {
            Ok(s) => s,
            Err(e) => {
                run.error(&e.to_string()).await;
                return (JobResult::Errored, Some(e.to_string()), None);
            }
        };
        let stopped = self
            .follow(plan, job, prepared, run, streams, &cancel)
            .await;
        if let Some((result, why)) = stopped {
            if let Err(e) = self.executor.kill(&spec.job_id).await {
                run.error(&format!("stopping the job container failed: {e}"))
                    .await;
            }
            run.close_open_command();
            run.error(&why).await;
            return (result, Some(why), None);
        }
        let exit = match self.executor.wait(&spec.job_id).await {
            Ok(code) => code,
            Err(e) => {
                run.error(&e.to_string()).await;
                return (JobResult::Errored, Some(e.to_string()), None);
            }
        };
        ending_of_exit(run, exit).await
    }

    /// Pulls the images and sets up the job's containers, logging the engine's progress as
    /// notices; cancellable.
    async fn set_up(
        &self,
        spec: &JobSpec,
        run: &mut JobRun<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), Ending> {
        let setup = async {
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            let progress = move |line: &str| {
                let _ = tx.send(line.to_string());
            };
            let work = async {
                let mut images = vec![spec.image.clone()];
                images.extend(spec.services.iter().map(|s| s.image.clone()));
                for image in images {
                    self.executor.ensure_image(&image, &progress).await?;
                }
                self.executor.setup(spec, &progress).await
            };
            tokio::pin!(work);
            loop {
                tokio::select! {
                    r = &mut work => {
                        while let Ok(line) = rx.try_recv() { run.notice(&line).await; }
                        return r;
                    }
                    Some(line) = rx.recv() => run.notice(&line).await,
                }
            }
        };
        let setup_result = tokio::select! {
            r = setup => Some(r),
            _ = cancel.cancelled() => None,
        };
        match setup_result {
            None => {
                run.error("The job was canceled.").await;
                Err((JobResult::Canceled, Some("canceled".into()), None))
            }
            Some(Err(e)) => {
                run.error(&e.to_string()).await;
                Err((JobResult::Errored, Some(e.to_string()), None))
            }
            Some(Ok(())) => Ok(()),
        }
    }

    /// Reads the job's output to its end, logging it and acting on its markers, unless a time
    /// limit, the disk limit, a cancel or a broken stream stops the job first: then the result
    /// and why.
    async fn follow(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
        streams: JobStreams,
        cancel: &CancellationToken,
    ) -> Option<(JobResult, String)> {
        let spec = &prepared.spec;
        let (mut output, mut input) = (streams.output, streams.input);
        let nonce = prepared
            .script
            .text
            .expose()
            .lines()
            .find_map(|l| l.strip_prefix("slipway_nonce="))
            .unwrap_or_default()
            .to_string();
        let mut parser = MarkerParser::new(&nonce);
        let deadline = tokio::time::Instant::now() + self.options.job_timeout;
        let mut last_output = tokio::time::Instant::now();
        let mut pieces = Vec::new();
        let disk = crate::disk::watchdog(
            self.executor.as_ref(),
            &spec.job_id,
            spec.limits.disk_bytes,
            self.options.disk_check_interval,
        );
        tokio::pin!(disk);
        let stopped = loop {
            let silence_deadline = last_output + self.options.no_output_timeout;
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(bytes)) => {
                        last_output = tokio::time::Instant::now();
                        parser.push(bytes, &mut pieces);
                        for piece in pieces.drain(..) {
                            match piece {
                                Piece::Log(b) => run.log(b).await,
                                Piece::Marker(m) => self.on_marker(plan, job, prepared, run, &mut input, &m).await,
                            }
                        }
                    }
                    Some(Err(e)) => {
                        run.error(&e.to_string()).await;
                        break Some((JobResult::Errored, e.to_string()));
                    }
                    None => break None,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let why = format!("The job exceeded its time limit of {} and was stopped.", fmt_duration(self.options.job_timeout));
                    break Some((JobResult::Errored, why));
                }
                _ = tokio::time::sleep_until(silence_deadline) => {
                    let why = format!("No output has been received in the last {}; the job was stopped (use travis_wait for long silent commands).", fmt_duration(self.options.no_output_timeout));
                    break Some((JobResult::Errored, why));
                }
                _ = cancel.cancelled() => {
                    break Some((JobResult::Canceled, "The job was canceled.".into()));
                }
                why = &mut disk => {
                    break Some((JobResult::Errored, why));
                }
            }
        };
        parser.finish(&mut pieces);
        for piece in pieces.drain(..) {
            if let Piece::Log(b) = piece {
                run.log(b).await;
            }
        }
        drop(input);
        stopped
    }

    /// A marker: a request the runner answers on the job's stdin (a deploy, the artifacts'
    /// upload), or progress the job's records take in.
    async fn on_marker(
        &self,
        plan: &Plan,
        job: &Job,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
        input: &mut Option<InputWriter>,
        text: &str,
    ) {
        let reply = match Marker::parse(text) {
            Some(Marker::DeployRequest(i)) => Some(self.deploy(plan, job, prepared, run, i).await),
            Some(Marker::ArtifactsRequest) => {
                Some(self.upload_artifacts(plan, prepared, run).await)
            }
            Some(Marker::CacheRestoreRequest) => {
                // The answer is the tar's length on a line, then the tar (`0` and nothing).
                let tar = self.cache_tar(plan, job, prepared, run).await;
                let length = format!("{}\n", tar.len());
                if let Err(e) = answer(input, &[length.as_bytes(), &tar]).await {
                    run.error(&format!(
                        "cache: sending the cache into the job failed: {e}"
                    ))
                    .await;
                }
                None
            }
            Some(Marker::CacheSaveRequest) => Some(self.save_cache(plan, job, prepared, run).await),
            Some(marker) => {
                run.marker(marker, &prepared.script).await;
                None
            }
            // A request the runner cannot read still gets its answer: the script waits for one.
            None if text.starts_with("deploy-request ") => Some(1),
            None => None,
        };
        if let Some(code) = reply {
            let _ = answer(input, &[format!("{code}\n").as_bytes()]).await;
        }
    }

    /// Reads the artifact paths out of the job and uploads them; the reply to the job's script.
    /// Whatever happens, the job's result stays as it is.
    async fn upload_artifacts(
        &self,
        plan: &Plan,
        prepared: &PreparedJob,
        run: &mut JobRun<'_>,
    ) -> i32 {
        let job_id = &prepared.spec.job_id;
        let env = match self
            .executor
            .download(job_id, crate::artifacts::ENV_PATH)
            .await
        {
            Ok(tar) => parse_env_dump(&tar),
            Err(_) => Vec::new(),
        };
        let options = match crate::artifacts::options_from_env(&env) {
            Ok(o) => o,
            Err(why) => {
                run.error(&format!("addons.artifacts: nothing uploaded: {why}"))
                    .await;
                return 1;
            }
        };
        let Some(hook) = &self.options.artifacts_hook else {
            run.error("addons.artifacts: this runner has no uploader; nothing uploaded")
                .await;
            return 1;
        };
        let files = ExecutorFiles {
            executor: self.executor.as_ref(),
            job_id,
            build_dir: &prepared.spec.working_dir,
        };
        let mut found = Vec::new();
        for path in &options.paths {
            match files.tar(path).await {
                Ok(tar) => match crate::artifacts::files_of(path, &tar) {
                    Ok(f) => found.extend(f),
                    Err(e) => run.notice(&format!("addons.artifacts: {path}: {e}")).await,
                },
                Err(_) => {
                    run.notice(&format!("addons.artifacts: {path} does not exist, skipped"))
                        .await;
                }
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = ChannelLog(tx);
        let request = crate::artifacts::ArtifactsRequest {
            repo: &plan.context.repo,
            options,
            files: found,
            log: &sink,
        };
        let uploading = hook.upload(request);
        tokio::pin!(uploading);
        let result = loop {
            tokio::select! {
                r = &mut uploading => break r,
                Some(line) = rx.recv() => run.log(Bytes::from(line)).await,
            }
        };
        while let Ok(line) = rx.try_recv() {
            run.log(Bytes::from(line)).await;
        }
        match result {
            Ok(n) => {
                run.notice(&format!("addons.artifacts: uploaded {n} object(s)"))
                    .await;
                0
            }
            Err(e) => {
                run.error(&format!("addons.artifacts: upload failed: {e}"))
                    .await;
                1
            }
        }
    }
}

/// How a job ended: its result, why (when it did not pass), and the shell's exit code.
type Ending = (JobResult, Option<String>, Option<i64>);

/// How a job whose shell exited with `exit` ended: as its script reported, else as the command
/// that ended the shell decides, else errored.
async fn ending_of_exit(run: &mut JobRun<'_>, exit: i64) -> Ending {
    // A command that ends the shell itself (`exit 3`) leaves its command open.
    let open = run.command_started.map(|(p, _, _)| p);
    if let Some(c) = open.and_then(|p| run.phase_mut(p).commands.last_mut()) {
        c.exit_code = Some(exit as i32);
    }
    run.close_open_command();
    match (run.reported.take(), open) {
        (Some(result), _) => {
            let reason = match result {
                JobResult::Passed => None,
                JobResult::Failed => Some("a script command failed".into()),
                _ => Some(run.error_reason()),
            };
            (result, reason, Some(exit))
        }
        (None, Some(phase)) if exit != 137 => {
            run.error(&format!(
                "A {} command ended the job's shell with exit code {exit}.",
                phase.as_str()
            ))
            .await;
            let result = match (phase, exit) {
                (_, 0) => JobResult::Passed,
                (PhaseName::Script, _) => JobResult::Failed,
                _ => JobResult::Errored,
            };
            let reason =
                (result != JobResult::Passed).then(|| format!("{} failed", phase.as_str()));
            (result, reason, Some(exit))
        }
        (None, _) => {
            let why = if exit == 137 {
                "The job's shell was killed (exit code 137), most likely by the memory limit."
                    .to_string()
            } else {
                format!("The job's shell exited with code {exit} before the job finished.")
            };
            run.error(&why).await;
            (JobResult::Errored, Some(why), Some(exit))
        }
    }
}

/// Writes `parts` to the job's standard input, if it still reads it, and flushes them.
async fn answer(input: &mut Option<InputWriter>, parts: &[&[u8]]) -> std::io::Result<()> {
    if let Some(w) = input.as_mut() {
        for part in parts {
            w.write_all(part).await?;
        }
        w.flush().await?;
    }
    Ok(())
}
