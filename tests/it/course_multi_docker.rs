//! Acceptance: the course's `multi-docker` pipeline runs under `slipway run` up to its deploy, with
//! only what an offline machine forces changed. Under CI=true a missing engine, test image,
//! registry or shared directory fails instead of skipping.
//!
//! At test time the course project is copied from the shared material into a temporary
//! directory and rewritten in two places only:
//!
//! 1. Image names `stephengrider/…` become `$SLIPWAY_TEST_REGISTRY/<unique prefix>/…`, so the
//!    pushes land in the local registry and runs never collide.
//! 2. Every Dockerfile is replaced by one built `FROM` a local test image (theirs start
//!    `FROM node:…` / `FROM nginx`, which cannot be pulled here). The React test image gets a
//!    `package.json` whose `test` script is a small real node test, because `react-scripts` cannot
//!    be installed without the npm registry.
//!
//! The job's image is not rewritten: the file has no `language:`, so the plan asks for
//! `ruby:latest`, which cannot be pulled here; `slipway run --image ruby=…` maps it to the local
//! Debian test image (bash, git and a docker CLI) for this run only, as a team behind a firewall
//! would map it to their own registry.
//!
//! The build runs as a push to the branch `feature`, so the `elasticbeanstalk` deploy (`on:
//! branch: master`) is skipped by the plan and nothing contacts AWS.

use crate::support::{ci, git};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Skips with a message, or fails under CI=true.
fn unavailable(what: &str) {
    assert!(
        !ci(),
        "{what} (CI=true); run `scripts/services.sh start` and `scripts/test-images.sh`"
    );
    eprintln!("skipped: {what}");
}

fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn image_present(name: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SLIPWAY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    dir.is_dir().then_some(dir)
}

/// One plain HTTP/1.0 GET on loopback; returns the status line and body.
fn http_get(host: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Removes what the job's own `docker` commands created on the engine (the runner does not own
/// them): the container `docker run` left and the images built, even when an assertion fails.
struct JobArtifacts {
    images: Vec<String>,
}

impl Drop for JobArtifacts {
    fn drop(&mut self) {
        for image in &self.images {
            for id in docker_lines(&["ps", "-aq", "--filter", &format!("ancestor={image}")]) {
                let _ = Command::new("docker").args(["rm", "-f", &id]).output();
            }
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
    }
}

/// Rewrites (2): a Dockerfile per directory and variant, each from a local test image.
fn replace_dockerfiles(dir: &Path, node: &str, busybox: &str) {
    // The React app's test image: `npm test -- --coverage` runs a real node test, offline.
    write(
        dir,
        "client/package.json",
        r#"{
  "name": "client",
  "version": "1.0.0",
  "private": true,
  "scripts": { "test": "node src/fib.test.js", "build": "node src/build.js" }
}
"#,
    );
    write(
        dir,
        "client/src/fib.js",
        "module.exports = function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); };\n",
    );
    write(
        dir,
        "client/src/fib.test.js",
        r#"const test = require("node:test");
const assert = require("node:assert");
const fib = require("./fib");

test("fib computes the Fibonacci sequence", () => {
  assert.deepStrictEqual([0, 1, 2, 3, 10].map(fib), [0, 1, 1, 2, 55]);
});
test("the runner passes npm's extra arguments through", () => {
  assert.ok(process.argv.includes("--coverage"), process.argv.join(" "));
});
"#,
    );
    write(
        dir,
        "client/src/build.js",
        r#"const fs = require("fs");
fs.mkdirSync("build", { recursive: true });
fs.writeFileSync("build/index.html", "<p>fib(10) = " + require("./fib")(10) + "</p>\n");
"#,
    );
    let node_app = |cmd: &str| {
        format!(
            "FROM {node}\nWORKDIR /app\nCOPY . .\nCMD [\"node\", \"-e\", \"console.log('{cmd}')\"]\n"
        )
    };
    write(dir, "client/Dockerfile.dev", &node_app("client dev"));
    write(
        dir,
        "client/Dockerfile",
        &format!(
            "FROM {node} AS builder\nWORKDIR /app\nCOPY . .\nRUN npm run build\n\n\
             FROM {busybox}\nCOPY ./nginx/default.conf /etc/nginx/conf.d/default.conf\n\
             COPY --from=builder /app/build /usr/share/nginx/html\n"
        ),
    );
    for app in ["server", "worker"] {
        write(dir, &format!("{app}/Dockerfile"), &node_app(app));
        write(dir, &format!("{app}/Dockerfile.dev"), &node_app(app));
    }
    let nginx = format!("FROM {busybox}\nCOPY ./default.conf /etc/nginx/conf.d/default.conf\n");
    write(dir, "nginx/Dockerfile", &nginx);
    write(dir, "nginx/Dockerfile.dev", &nginx);
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one course run end to end, read top to bottom"
)]
fn course_multi_docker_builds_tests_and_pushes_its_four_images_up_to_the_deploy() {
    let Some(shared) = shared_dir() else {
        return unavailable("the shared material (SLIPWAY_SHARED or ../shared) is missing");
    };
    let course = shared.join("corpus/course/multi-docker");
    assert!(course.is_dir(), "{} is missing", course.display());
    let Ok(registry) = std::env::var("SLIPWAY_TEST_REGISTRY") else {
        return unavailable("SLIPWAY_TEST_REGISTRY is not set");
    };
    if !http_get(&registry, "/v2/").is_ok_and(|(status, _)| status.contains(" 200")) {
        return unavailable(&format!("no registry answers at {registry}"));
    }
    let debian = image("SLIPWAY_TEST_DEBIAN_IMAGE", "slipway-test/debian:latest");
    let node = image(
        "SLIPWAY_TEST_DEBIAN_NODE_IMAGE",
        "slipway-test/debian-node:latest",
    );
    let busybox = image("SLIPWAY_TEST_BUSYBOX_IMAGE", "slipway-test/busybox:latest");
    for name in [&debian, &node, &busybox] {
        if !image_present(name) {
            return unavailable(&format!("Docker engine or image {name} missing"));
        }
    }

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("slipway-course-{}-{nanos:x}", std::process::id());
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    crate::support::copy_tree(&course, dir);

    // Rewrite (1) in the pipeline file.
    let original = std::fs::read_to_string(dir.join(".travis.yml")).unwrap();
    let pushed = [
        "multi-client",
        "multi-nginx",
        "multi-server",
        "multi-worker",
    ];
    for name in pushed {
        assert!(
            original.contains(&format!("docker push stephengrider/{name}")),
            "the course pipeline no longer pushes {name}"
        );
    }
    let ours = format!("{registry}/{prefix}/");
    let pipeline = original.replace("stephengrider/", &ours);
    std::fs::write(dir.join(".travis.yml"), &pipeline).unwrap();
    replace_dockerfiles(dir, &node, &busybox);
    git(dir, &["init", "-q", "-b", "feature"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "multi-docker, offline"]);

    let _artifacts = JobArtifacts {
        images: ["react-test"]
            .into_iter()
            .chain(pushed)
            .map(|n| format!("{ours}{n}"))
            .collect(),
    };

    // The deploy is planned out with its reason: this is not the master branch.
    let plan = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["plan", "--branch", "feature"])
        .arg(dir.join(".travis.yml"))
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{plan_text}");
    assert!(
        plan_text
            .contains("deploy elasticbeanstalk: skipped: branch feature is not on.branch (master)"),
        "{plan_text}"
    );

    let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("run")
        .arg(dir)
        .args(["--branch", "feature", "--repo", "course/multi-docker"])
        .args(["--image", &format!("ruby={debian}")])
        // As on Travis without the repository's settings: no Docker Hub credentials.
        .env_remove("DOCKER_ID")
        .env_remove("DOCKER_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let owner = format!(":{}:", child.id());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    let all = format!("{log}\n--- stderr ---\n{err}");

    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        log.contains("services: docker: this job can use the host's Docker engine"),
        "{all}"
    );
    assert!(
        log.contains(&format!(
            "The job's image ruby:latest is pulled as {debian} (--image ruby={debian})"
        )),
        "{all}"
    );
    // The job's test ran for real inside the React test image, with npm's extra argument.
    assert!(
        log.contains(&format!(
            "$ docker run {ours}react-test npm test -- --coverage"
        )),
        "{all}"
    );
    assert!(
        log.contains("ok 1 - fib computes the Fibonacci sequence"),
        "{all}"
    );
    assert!(
        log.contains("# pass 2") && log.contains("# fail 0"),
        "{all}"
    );
    // The Docker Hub login fails in after_success, and that does not fail the build.
    assert!(
        log.contains(
            "The command \"echo \"$DOCKER_PASSWORD\" | docker login -u \"$DOCKER_ID\" --password-stdin\" exited with 1."
        ),
        "{all}"
    );
    // Every other command passed: the runner reports only the ones that did not.
    assert_eq!(log.matches("exited with").count(), 1, "{all}");
    for name in pushed {
        assert!(
            log.contains(&format!("$ docker push {ours}{name}\n")),
            "{all}"
        );
    }
    assert!(log.contains("1.1      test             passed"), "{all}");
    assert!(log.contains("Build passed"), "{all}");
    assert!(
        !log.contains("Deploying with provider elasticbeanstalk"),
        "the deploy must not run: {all}"
    );
    assert!(
        log.contains(
            "Deploy skipped: branch feature is not on.branch (master) (provider elasticbeanstalk)"
        ),
        "the log says why the deploy did not run: {all}"
    );

    // The registry's catalog lists the four images.
    let (status, catalog) = http_get(
        &registry,
        // The catalog is sorted and paged; this run's repositories follow its bare prefix.
        &format!("/v2/_catalog?n=1000&last={prefix}"),
    )
    .unwrap();
    assert!(status.contains(" 200"), "{status}");
    let catalog: serde_json::Value = serde_json::from_str(&catalog).unwrap();
    let repos: Vec<&str> = catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.starts_with(&format!("{prefix}/")))
        .collect();
    let mut expected: Vec<String> = pushed.iter().map(|n| format!("{prefix}/{n}")).collect();
    expected.sort();
    assert_eq!(repos, expected, "the React test image is built, not pushed");

    // Nothing the runner labelled for this run is left.
    let label = "label=dev.slipway.managed=true";
    let fmt = "{{.Label \"dev.slipway.owner\"}} {{.Name}}";
    let left: Vec<String> = [
        docker_lines(&[
            "ps",
            "-a",
            "--filter",
            label,
            "--format",
            &fmt.replace(".Name", ".Names"),
        ]),
        docker_lines(&["network", "ls", "--filter", label, "--format", fmt]),
        docker_lines(&["volume", "ls", "--filter", label, "--format", fmt]),
    ]
    .concat()
    .into_iter()
    .filter(|line| line.contains(&owner))
    .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
