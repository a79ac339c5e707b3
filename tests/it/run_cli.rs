//! `slipway run` end to end: the binary on a temporary git repository, the real Docker engine.
//! Under CI=true a missing engine or test image fails instead of skipping.

use crate::support::{busybox, engine_ready, own_host_name, slipway_on_host};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo_with(pipeline: &str) -> tempfile::TempDir {
    crate::support::repo_with_pipeline(".slipway.yml", pipeline)
}

fn slipway(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn docker_names(kind: &str, label: &str) -> Vec<String> {
    let args: Vec<&str> = match kind {
        "container" => vec!["ps", "-a", "--filter", label, "--format", "{{.Names}}"],
        "network" => vec!["network", "ls", "--filter", label, "--format", "{{.Name}}"],
        _ => vec!["volume", "ls", "--filter", label, "--format", "{{.Name}}"],
    };
    let out = Command::new("docker").args(&args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn dry_run_prints_the_containers_network_and_script_without_an_engine() {
    let dir = repo_with(
        "image: \"{busybox}\"\nlanguage: shell\nservices: [redis]\ncache:\n  directories: [deps]\nscript: echo hi\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["run", "--dry-run", "--branch", "dev", "--repo", "acme/app"])
        .arg(dir.path())
        // No engine may be needed: point at one that does not exist.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "network   slipway-",
        "container slipway-",
        "-netns",
        "-svc-redis",
        "image    redis:7",
        "hosts    redis:127.0.0.1 redis-server:127.0.0.1",
        "(kept cache)",
        "TRAVIS_BRANCH=dev",
        "TRAVIS_REPO_SLUG=acme/app",
        "disk 20 GiB",
        "security no-new-privileges; capabilities CHOWN DAC_OVERRIDE",
        "eval 'echo hi'",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_failing_build_exits_non_zero_and_prints_the_summary() {
    if !engine_ready() {
        return;
    }
    let dir =
        repo_with("image: \"{busybox}\"\nlanguage: shell\nenv: [X=1, X=2]\nscript: test $X = 1\n");
    let out = slipway(dir.path(), &["--jobs", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[1.1] "),
        "parallel jobs are prefixed: {text}"
    );
    assert!(text.contains("1.1      test             passed"), "{text}");
    assert!(text.contains("1.2      test             failed"), "{text}");
    assert!(text.contains("Build failed"), "{text}");
}

#[test]
fn after_sigkill_mid_job_the_next_run_sweeps_everything_left() {
    if !engine_ready() {
        return;
    }
    // A job with a service, so a network, a namespace holder and a service container exist.
    let dir =
        repo_with("image: \"{busybox}\"\nlanguage: shell\nservices: [redis]\nscript: sleep 120\n");
    // On a host of its own, so that only the next run on that host sweeps what it leaves.
    let host = own_host_name();
    let mut child = slipway_on_host(&host)
        .arg("run")
        .arg(dir.path())
        .args(["--service-image", &format!("redis={}", busybox())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let owner_pid = child.id();
    let label = "label=dev.slipway.managed=true";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mine = |names: Vec<String>| -> Vec<String> {
        // Only what this child created: its containers carry its pid in the owner label.
        names
            .into_iter()
            .filter(|n| {
                let out = Command::new("docker")
                    .args([
                        "inspect",
                        "--format",
                        "{{index .Config.Labels \"dev.slipway.owner\"}}",
                        n,
                    ])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).contains(&format!(":{owner_pid}:"))
            })
            .collect()
    };
    loop {
        let running = mine(docker_names("container", label));
        if running.iter().any(|n| n.ends_with("-job")) {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap(); // SIGKILL: no clean-up runs.
    child.wait().unwrap();
    let left = mine(docker_names("container", label));
    assert!(
        left.len() >= 3,
        "job, service and namespace holder should be left: {left:?}"
    );
    // The job's build directory is a volume of its own (the engine lets this host read them).
    let volumes_of_child = || -> Vec<String> {
        let format = "{{.Name}} {{.Label \"dev.slipway.owner\"}}";
        let out = Command::new("docker")
            .args(["volume", "ls", "--filter", label, "--format", format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!(":{owner_pid}:")))
            .map(str::to_string)
            .collect()
    };
    assert!(
        !volumes_of_child().is_empty(),
        "the job's volume should be left"
    );
    let network = left
        .iter()
        .find(|n| n.ends_with("-job"))
        .map(|n| format!("{}-net", n.trim_end_matches("-job")))
        .unwrap();
    assert!(
        docker_names("network", label).contains(&network),
        "{network} should be left"
    );

    let next = repo_with("image: \"{busybox}\"\nlanguage: shell\nscript: echo fine\n");
    let out = slipway_on_host(&host)
        .arg("run")
        .arg(next.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left behind"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in left {
        let gone = !docker_names("container", label).contains(&name);
        assert!(gone, "{name} survived the sweep");
    }
    assert!(
        !docker_names("network", label).contains(&network),
        "{network} survived the sweep"
    );
    // No volume of the killed run is left (other runs on the engine have their jobs' own).
    assert!(volumes_of_child().is_empty(), "{:?}", volumes_of_child());
}
