//! P4: log throughput and memory of a job printing 1 GiB.
//!
//! The runner (markers parsed, masking stage, cap, events through a bounded channel to a consumer
//! that counts bytes) against reading the same command's output raw through the engine (attach,
//! count bytes) in the same process and run. Prints MiB/s for both, the ratio, and the runner's
//! peak RSS growth. Goal: >= 0.8x throughput, RSS growth <= 64 MiB. Needs the Docker engine and
//! the busybox test image. `P4_MIB` changes the volume (default 1024).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::sync::Arc;
use std::time::Instant;

use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use slipway_pipelines::plan::Context;
use slipway_runner::docker::DockerExecutor;
use slipway_runner::{BuildInfo, CancellationToken, JobEvent, JobResult, Runner, RunnerOptions};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[allow(
    clippy::too_many_lines,
    reason = "the benchmark's one procedure, read top to bottom"
)]
fn main() {
    let image = std::env::var("SLIPWAY_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "slipway-test/busybox:latest".into());
    let mib: u64 = std::env::var("P4_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bytes = mib << 20;
    // Lines of 100 bytes.
    let cmd = format!(
        "yes 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678 | head -c {bytes}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exec = match rt.block_on(DockerExecutor::connect()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("P4 skipped: {e}");
            std::process::exit(i32::from(std::env::var("CI").as_deref() == Ok("true")));
        }
    };

    // The runner first, so its peak RSS is measured from a clean start.
    let yaml = format!("image: \"{image}\"\nlanguage: shell\nscript:\n  - \"{cmd}\"\n");
    let ctx = Context {
        branch: "master".into(),
        repo: "bench/p4".into(),
        ..Default::default()
    };
    let plan = slipway_pipelines::plan(".slipway.yml", yaml.as_bytes(), &ctx).expect("plan");
    let job = plan.stages[0].jobs[0].clone();
    let options = RunnerOptions {
        log_cap: u64::MAX / 2,
        ..Default::default()
    };
    let runner = Runner::new(exec.clone(), options);
    let rss_before = status_kib("VmRSS:");
    let t = Instant::now();
    let (ours_bytes, outcome) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<slipway_runner::BuildEvent>(64);
        let count = tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(ev) = rx.recv().await {
                if let JobEvent::Log(b) = ev.event {
                    n += b.len() as u64;
                }
            }
            n
        });
        let build = BuildInfo {
            id: format!("p4x{}", std::process::id()),
            number: 1,
        };
        let o = runner
            .run_job(&plan, &job, &build, None, tx, CancellationToken::new())
            .await;
        (count.await.unwrap(), o)
    });
    let ours = t.elapsed();
    let rss_peak = status_kib("VmHWM:");
    assert_eq!(outcome.result, JobResult::Passed, "{outcome:?}");
    assert!(
        ours_bytes >= bytes,
        "runner delivered {ours_bytes} of {bytes} bytes"
    );

    // Baseline: the same command's output read raw through the engine.
    let docker = exec.client().clone();
    let t = Instant::now();
    let raw_bytes = rt.block_on(async {
        let name = format!("slipway-p4-baseline-{}", std::process::id());
        docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                bollard::models::ContainerCreateBody {
                    image: Some(image.clone()),
                    cmd: Some(vec!["sh".into(), "-c".into(), cmd.clone()]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    labels: Some([("dev.slipway.managed".to_string(), "true".to_string())].into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut att = docker
            .attach_container(
                &name,
                Some(
                    AttachContainerOptionsBuilder::default()
                        .stream(true)
                        .stdout(true)
                        .stderr(true)
                        .build(),
                ),
            )
            .await
            .unwrap();
        docker.start_container(&name, None).await.unwrap();
        let mut n = 0u64;
        while let Some(Ok(chunk)) = att.output.next().await {
            n += chunk.into_bytes().len() as u64;
        }
        docker
            .remove_container(
                &name,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await
            .unwrap();
        n
    });
    let raw = t.elapsed();
    assert_eq!(raw_bytes, bytes);
    let mibs = |n: u64, d: std::time::Duration| n as f64 / f64::from(1 << 20) / d.as_secs_f64();
    let (o, r) = (mibs(bytes, ours), mibs(bytes, raw));
    println!("P4 job printing {mib} MiB");
    println!(
        "  raw engine attach (baseline): {r:>8.1} MiB/s ({:.2} s)",
        raw.as_secs_f64()
    );
    println!(
        "  slipway runner:               {o:>8.1} MiB/s ({:.2} s)",
        ours.as_secs_f64()
    );
    println!("  throughput ratio {:.3}x (goal >= 0.8x)", o / r);
    println!(
        "  runner peak RSS growth {:.1} MiB (goal <= 64 MiB)",
        rss_peak.saturating_sub(rss_before) as f64 / 1024.0
    );
}
