//! Harness for tests of `slipway serve` as a real process: free ports, a config file, start and
//! kill, Docker and image checks.
#![allow(dead_code)]

pub use slipway_webhook::testing::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "e2e-webhook-secret-7c1d";
pub const TOKEN: &str = "e2e-token";
pub const REPO: &str = "acme/app";
pub const IMAGE: &str = "slipway-test/debian:latest";

/// True when Docker and the test image are there; panics under CI=true when not.
pub fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("Docker or the image {IMAGE} is missing (run scripts/test-images.sh)");
        }
        eprintln!("skipped: Docker or the image {IMAGE} is missing (run scripts/test-images.sh)");
    }
    ok
}

/// A temporary directory and a repository in it holding `pipeline`, when Docker and the test
/// image are there ([`docker_ready`]).
pub fn docker_and_origin(pipeline: &str) -> Option<(tempfile::TempDir, Origin)> {
    if !docker_ready() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), pipeline);
    Some((tmp, origin))
}

/// Starts `github` on a runtime of its own that lives as long as the test process; its URL.
pub fn github_api(github: &FakeGitHub) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let github = github.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        tx.send(github.start(&rt)).unwrap();
        rt.block_on(std::future::pending::<()>());
    });
    rx.recv().unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `slipway COMMAND --data-dir DATA --config CONFIG` (`serve` or `worker`) with `env`
/// added, its stderr appended to `log` (so a restart keeps what the last run wrote); on a host of
/// its own when `host` is given ([`crate::support::slipway_on_host`]).
pub fn spawn_slipway<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    host: Option<&str>,
    command: &str,
    data: &Path,
    config: &Path,
    log: &Path,
    env: impl IntoIterator<Item = (K, V)>,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut slipway = match host {
        Some(host) => crate::support::slipway_on_host(host),
        None => Command::new(env!("CARGO_BIN_EXE_slipway")),
    };
    slipway
        .args([command, "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .envs(env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("slipway {command}: {e}"))
}

/// SIGKILLs the process, if it runs, and waits for it to be gone: no clean-up of any kind.
pub fn kill_now(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The config of a server on `port` with one repository (`REPO` at `clone_url`) reporting to
/// `github_api`, with `extra` lines at the top level.
fn standard_config(port: u16, github_api: &str, clone_url: &str, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"{SECRET}\"\napi_tokens = [\"{TOKEN}\"]\nlease_seconds = 3\n{extra}\n\
         [github]\napi_url = \"{github_api}\"\ntoken = \"gh-token\"\nmax_backoff_seconds = 1\n\
         [[repos]]\nname = \"{REPO}\"\nclone_url = \"{clone_url}\"\n"
    )
}

/// A `slipway serve` process and its files.
pub struct Served {
    pub child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra environment of the server process (kept across restarts).
    pub env: Vec<(String, String)>,
    /// The host name it runs under ([`Served::on_host`]); `None` for this machine's.
    pub host: Option<String>,
}

impl Served {
    pub fn new(root: &Path, github_api: &str, clone_url: &str, extra: &str) -> Served {
        Served::with_env(root, github_api, clone_url, extra, &[])
    }

    /// One worker serving `origin`'s repository and reporting to `github` ([`github_api`]); `env`
    /// is added to the server's environment.
    pub fn one_worker(
        root: &Path,
        github: &FakeGitHub,
        origin: &Origin,
        env: &[(&str, &str)],
    ) -> Served {
        Served::with_env(root, &github_api(github), &origin.url(), "workers = 1", env)
    }

    /// [`Served::one_worker`] whose S3 deploys go to moto at `moto`.
    pub fn one_worker_on_moto(
        root: &Path,
        github: &FakeGitHub,
        origin: &Origin,
        moto: &str,
    ) -> Served {
        Served::one_worker(root, github, origin, &[("SLIPWAY_S3_ENDPOINT", moto)])
    }

    /// Like [`Served::new`], with extra environment variables for the server process.
    pub fn with_env(
        root: &Path,
        github_api: &str,
        clone_url: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Served {
        Served::with_config(
            root,
            free_port(),
            |port| standard_config(port, github_api, clone_url, extra),
            env,
        )
    }

    /// Like [`Served::new`], on a host of its own named `host` from its first start on (see
    /// [`crate::support::slipway_on_host`]).
    pub fn on_host(
        host: &str,
        root: &Path,
        github_api: &str,
        clone_url: &str,
        extra: &str,
    ) -> Served {
        let mut s = Served::unstarted(
            root,
            free_port(),
            |port| standard_config(port, github_api, clone_url, extra),
            &[],
        );
        s.host = Some(host.to_string());
        s.start();
        s
    }

    /// A server listening on `port` whose whole config file `text(port)` gives.
    pub fn with_config(
        root: &Path,
        port: u16,
        text: impl FnOnce(u16) -> String,
        env: &[(&str, &str)],
    ) -> Served {
        let mut s = Served::unstarted(root, port, text, env);
        s.start();
        s
    }

    fn unstarted(
        root: &Path,
        port: u16,
        text: impl FnOnce(u16) -> String,
        env: &[(&str, &str)],
    ) -> Served {
        let data = root.join("data");
        let config = root.join("slipway.toml");
        std::fs::write(&config, text(port)).unwrap();
        Served {
            child: None,
            port,
            data,
            config,
            log: root.join("server.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            host: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let child = spawn_slipway(
            self.host.as_deref(),
            "serve",
            &self.data,
            &self.config,
            &self.log,
            self.env.iter().map(|(k, v)| (k, v)),
        );
        self.child = Some(child);
        // A server speaking TLS is up once its port answers.
        let tls = std::fs::read_to_string(&self.config).is_ok_and(|c| c.contains("tls_cert"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && (tls || self.try_get("/healthz").0 == 200)
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "slipway serve exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "slipway serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, no clean-up of any kind.
    pub fn kill(&mut self) {
        kill_now(&mut self.child);
    }

    fn try_get(&self, path: &str) -> (u16, String) {
        let agent: raw_get::Agent = raw_get::agent();
        agent.get(&format!("{}{path}", self.url()))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http("GET", &format!("{}{path}", self.url()), &[], b"")
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn deliver(&self, event: &str, id: &str, body: &[u8]) -> (u16, String) {
        deliver(&self.url(), SECRET, event, id, body)
    }

    pub fn wait_final(&self, id: i64, secs: u64) -> serde_json::Value {
        wait_final(&self.url(), id, secs, || self.server_log())
    }

    pub fn job_log(&self, job: i64) -> String {
        self.get(&format!("/jobs/{job}/log.txt")).1
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The `opened` payload of pull request `number` from `head` onto `base`, sent from a fork
/// (`eve/app`) of [`REPO`] whose clone URL is `clone_url`.
pub fn fork_pr_payload(clone_url: &str, number: u64, head: &str, base: &str) -> Vec<u8> {
    let mut payload: serde_json::Value =
        serde_json::from_slice(&pr_payload(REPO, clone_url, "opened", number, head, base)).unwrap();
    payload["pull_request"]["head"]["repo"] = serde_json::json!({"full_name": "eve/app", "clone_url": "https://example.invalid/eve/app.git"});
    serde_json::to_vec(&payload).unwrap()
}

/// A build the server ran to its end: the API's view of it and its first job's log.
pub struct Ended {
    pub build: serde_json::Value,
    pub log: String,
}

impl Ended {
    /// Fails, showing the build and the log, unless the build ended `state` and the log holds
    /// every one of `needles`; returns the log for what else the test checks.
    #[track_caller]
    pub fn expect(&self, state: &str, needles: &[&str]) -> &str {
        let (v, log) = (&self.build, &self.log);
        assert_eq!(v["build"]["state"], state, "{v}\n{log}");
        for needle in needles {
            assert!(log.contains(needle), "{needle:?} missing: {log}");
        }
        log
    }
}

impl Served {
    /// Delivers `event` (delivery `id`), waits up to three minutes for the build it queued to end.
    pub fn run_delivery(&self, event: &str, id: &str, body: &[u8]) -> Ended {
        let build = self.wait_final(build_of(self.deliver(event, id, body)), 180);
        let job = build["jobs"][0]["id"].as_i64();
        let log = self.job_log(job.unwrap_or_else(|| panic!("no job: {build}")));
        Ended { build, log }
    }

    /// A push of `git_ref` at `sha` of `origin`, run to its end.
    pub fn push(&self, origin: &Origin, git_ref: &str, sha: &str, id: &str) -> Ended {
        let body = push_payload(REPO, &origin.url(), git_ref, sha);
        self.run_delivery("push", id, &body)
    }

    /// A push of `origin`'s master as it is, run to its end.
    pub fn push_master(&self, origin: &Origin, id: &str) -> Ended {
        let sha = git(&origin.work, &["rev-parse", "master"]);
        self.push(origin, "refs/heads/master", &sha, id)
    }

    /// Pull request `number` onto master from a fork ([`fork_pr_payload`]), its head a commit
    /// adding `feature.txt`, run to its end.
    pub fn fork_pull_request(&self, origin: &Origin, number: u64, id: &str) -> Ended {
        let head = origin.pull_request(number, "master", "feature.txt", "from a fork\n");
        let base = git(&origin.work, &["rev-parse", "master"]);
        let body = fork_pr_payload(&origin.url(), number, &head, &base);
        self.run_delivery("pull_request", id, &body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tiny GET that tolerates a server that is not up yet.
mod raw_get {
    pub struct Agent;
    pub fn agent() -> Agent {
        Agent
    }
    impl Agent {
        pub fn get(&self, url: &str) -> (u16, String) {
            use std::io::{Read, Write};
            let rest = url.trim_start_matches("http://");
            let (host, path) = rest.split_once('/').unwrap();
            let Ok(mut s) = std::net::TcpStream::connect(host) else {
                return (0, String::new());
            };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            let code = out
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (code, out)
        }
    }
}

/// Containers the runner labelled as created by one of these process ids.
pub fn containers_of(pids: &[u32]) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=dev.slipway.managed=true",
            "--format",
            "{{.Label \"dev.slipway.owner\"}} {{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| pids.iter().any(|p| l.contains(&format!(":{p}:"))))
        .map(str::to_string)
        .collect()
}

/// Writes a test CA (`ca.key`, `ca.pem`) and a certificate it signed for 127.0.0.1 (`server.key`,
/// `server.pem`) into `dir`, with the `openssl` command.
pub fn test_certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=slipway test CA",
        ],
    ]
    .concat();
    openssl(dir, &ca);
    let csr = [
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat();
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed to make the test's certificates");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}
