//! The cluster under test: a fresh PostgreSQL database, `slipway serve` and `slipway worker`
//! processes sharing it, GitHub's stand-in and a repository they build.
#![allow(dead_code)]

use crate::serve::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A database of its own for one test, dropped with everything in it at the end.
pub struct Database {
    base: String,
    name: String,
    pub url: String,
    rt: tokio::runtime::Runtime,
}

impl Database {
    /// A new database on the server `SLIPWAY_TEST_POSTGRES` names; `None` (with a message) when
    /// unset, a failure under `CI=true`.
    pub fn fresh() -> Option<Database> {
        let base = match std::env::var("SLIPWAY_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    !crate::support::ci(),
                    "SLIPWAY_TEST_POSTGRES is not set (CI=true): run scripts/services.sh start"
                );
                eprintln!("skipped: SLIPWAY_TEST_POSTGRES is not set (scripts/services.sh start)");
                return None;
            }
        };
        let mut raw = [0u8; 6];
        getrandom::fill(&mut raw).unwrap();
        let name = format!("scale_out_{}", hex::encode(raw));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = Database {
            url: with_database(&base, &name),
            base,
            name,
            rt,
        };
        db.on(&db.base, &format!("CREATE DATABASE {}", db.name));
        Some(db)
    }

    fn on(&self, url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("the test database at SLIPWAY_TEST_POSTGRES: {e}"));
            tokio::spawn(conn);
            client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
    }

    /// The rows `sql` selects from the test's database.
    pub fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.on(&self.url, sql)
    }

    /// The one number `sql` selects.
    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0].get(0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let base = self.base.clone();
        let _ = self.rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await
        });
    }
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = base
        .split_once('?')
        .map_or((base, None), |(h, q)| (h, Some(q)));
    let (server, _) = head
        .rsplit_once('/')
        .expect("a postgres:// URL with a database");
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// A `slipway worker` process and its files.
pub struct Worker {
    child: Option<Child>,
    pub data: PathBuf,
    pub log: PathBuf,
    config: PathBuf,
    store: String,
}

impl Worker {
    /// A worker whose log, data and config live under `root`; started at once.
    pub fn new(root: &Path, config_text: &str, store: &str) -> Worker {
        std::fs::create_dir_all(root).unwrap();
        let config = root.join("slipway.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut w = Worker {
            child: None,
            data: root.join("data"),
            log: root.join("worker.log"),
            config,
            store: store.to_string(),
        };
        w.start();
        w
    }

    /// Starts the process and waits until it claims work.
    pub fn start(&mut self) {
        let before = self.started_count();
        let child = spawn_slipway(
            None,
            "worker",
            &self.data,
            &self.config,
            &self.log,
            [("SLIPWAY_STORE", &self.store)],
        );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.started_count() == before {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("slipway worker exited with {status}: {}", self.text());
            }
            assert!(Instant::now() < deadline, "slipway worker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn started_count(&self) -> usize {
        self.text().matches("claiming work").count()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, no clean-up of any kind.
    pub fn kill(&mut self) {
        kill_now(&mut self.child);
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many processes of each kind, how many workers each runs, and their lease.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub servers: usize,
    pub server_workers: usize,
    pub workers: usize,
    pub worker_workers: usize,
    pub lease_seconds: u64,
}

/// Servers and workers on one fresh database, building one repository, reporting to one
/// stand-in of GitHub.
pub struct Cluster {
    pub servers: Vec<Served>,
    pub workers: Vec<Worker>,
    pub github: FakeGitHub,
    pub origin: Origin,
    pub db: Database,
    pids: Vec<u32>,
    tmp: tempfile::TempDir,
}

impl Cluster {
    /// The processes `shape` asks for, on a fresh database, building `pipeline` with no
    /// auto-cancel (every push must build). `None` when Docker or PostgreSQL is missing outside
    /// CI (a failure under `CI=true`).
    pub fn start(pipeline: &str, shape: Shape) -> Option<Cluster> {
        if !crate::support::engine_ready() {
            return None;
        }
        let db = Database::fresh()?;
        let tmp = tempfile::tempdir().unwrap();
        let origin = Origin::new(tmp.path(), pipeline);
        let github = FakeGitHub::default();
        let api = github_api(&github);
        let config = |head: &str, workers: usize| {
            format!(
                "{head}webhook_secret = \"{SECRET}\"\napi_tokens = [\"{TOKEN}\"]\n\
                 workers = {workers}\nlease_seconds = {}\nauto_cancel = false\n\
                 [github]\napi_url = \"{api}\"\ntoken = \"gh-token\"\nmax_backoff_seconds = 1\n\
                 [[repos]]\nname = \"{REPO}\"\nclone_url = \"{}\"\n",
                shape.lease_seconds,
                origin.url()
            )
        };
        let store = [("SLIPWAY_STORE", db.url.as_str())];
        let servers: Vec<Served> = (0..shape.servers)
            .map(|i| {
                let root = tmp.path().join(format!("server-{i}"));
                std::fs::create_dir_all(&root).unwrap();
                Served::with_config(
                    &root,
                    free_port(),
                    |port| {
                        config(
                            &format!("listen = \"127.0.0.1:{port}\"\n"),
                            shape.server_workers,
                        )
                    },
                    &store,
                )
            })
            .collect();
        let workers: Vec<Worker> = (0..shape.workers)
            .map(|i| {
                let root = tmp.path().join(format!("worker-{i}"));
                Worker::new(&root, &config("", shape.worker_workers), &db.url)
            })
            .collect();
        let pids = servers
            .iter()
            .map(Served::pid)
            .chain(workers.iter().map(Worker::pid))
            .collect();
        Some(Cluster {
            servers,
            workers,
            github,
            origin,
            db,
            pids,
            tmp,
        })
    }

    /// The commit master points at.
    pub fn master(&self) -> String {
        git(&self.origin.work, &["rev-parse", "master"])
    }

    /// `n` new commits on master, oldest first, made in one `git fast-import`: a status on
    /// GitHub is per commit (and a newer one for the same commit supersedes an older), so
    /// builds counted by their statuses need a commit each.
    pub fn commits(&self, n: usize) -> Vec<String> {
        use std::io::Write as _;
        let mut stream = String::new();
        for i in 0..n {
            let message = format!("commit {i}\n");
            stream += &format!(
                "commit refs/heads/master\ncommitter Dev <dev@example.invalid> {} +0000\ndata {}\n{message}",
                1_700_000_000 + i,
                message.len()
            );
            if i == 0 {
                stream += &format!("from {}\n", self.master());
            }
            stream += &format!(
                "M 644 inline n.txt\ndata {}\n{i}\n\n",
                format!("{i}\n").len()
            );
        }
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(&self.origin.bare)
            .args(["fast-import", "--quiet"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stream.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "git fast-import");
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.origin.bare)
            .args(["rev-list", "--reverse", "-n", &n.to_string(), "master"])
            .output()
            .unwrap();
        let shas: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(shas.len(), n);
        shas
    }

    /// A push of master whose body is the `n`th (GitHub's bodies differ; an identical one would
    /// be a replay).
    pub fn push_body(&self, sha: &str, n: usize) -> Vec<u8> {
        push_payload_with(
            REPO,
            &self.origin.url(),
            "refs/heads/master",
            sha,
            false,
            &format!("push {n}"),
        )
    }

    /// Waits up to `secs` until no build or job is queued, preparing or running.
    pub fn settle(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let open = self.db.count(
                "SELECT (SELECT count(*) FROM builds WHERE state IN ('queued', 'preparing', 'running'))
                      + (SELECT count(*) FROM jobs WHERE state IN ('queued', 'running'))",
            );
            if open == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{open} builds and jobs still open after {secs} s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits up to `secs` until every status report was sent.
    pub fn reported(&self, secs: u64) {
        wait_for("every status report sent", secs, || {
            self.db.count("SELECT count(*) FROM outbox WHERE NOT done") == 0
        });
    }

    /// Remembers a restarted process, so that what it leaves on the engine is removed too.
    pub fn note_pid(&mut self, pid: u32) {
        self.pids.push(pid);
    }

    /// The process holding `job`'s lease, by pid (the owner is `pid-millis/worker`), while the
    /// job runs.
    pub fn lease_pid(&self, job: i64) -> Option<u32> {
        let rows = self.db.rows(&format!(
            "SELECT lease_owner FROM jobs WHERE id = {job} AND state = 'running'"
        ));
        let owner: Option<String> = rows.first().and_then(|r| r.get(0));
        owner.and_then(|o| o.split('-').next().and_then(|p| p.parse().ok()))
    }

    /// SIGKILLs the worker process holding the running `job`'s lease (fails when none does);
    /// its pid.
    pub fn kill_lease_holder(&mut self, job: i64) -> u32 {
        let pid = self.lease_pid(job).expect("the job is claimed");
        let holder = self
            .workers
            .iter_mut()
            .find(|w| w.pid() == pid)
            .unwrap_or_else(|| panic!("the lease holder {pid} is not a worker process"));
        holder.kill();
        pid
    }

    /// Waits up to `secs` for `build` to end, as server 0 reports it; fails, showing the build
    /// and every process's log, unless it ended `state`.
    #[track_caller]
    pub fn wait_ended(&self, build: i64, state: &str, secs: u64) -> serde_json::Value {
        let ended = self.servers[0].wait_final(build, secs);
        assert_eq!(ended["build"]["state"], state, "{ended}\n{}", self.logs());
        ended
    }

    /// Waits up to `secs` for `job`'s stored log to hold `needle`.
    pub fn wait_log(&self, job: i64, needle: &str, secs: u64) {
        let sql = format!(
            "SELECT count(*) FROM log_chunks WHERE job_id = {job} AND data LIKE '%{needle}%'"
        );
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.db.count(&sql) == 0 {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in job {job}'s log after {secs} s: {}\n{}",
                self.job_log(0, job),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Delivers the `n`th push of `sha` to server `via`; the build it queued.
    pub fn push(&self, via: usize, sha: &str, n: usize) -> i64 {
        build_of(self.servers[via].deliver("push", &format!("push-{n}"), &self.push_body(sha, n)))
    }

    /// The first job of `build`, once the build's preparation made it.
    pub fn first_job(&self, build: i64, secs: u64) -> i64 {
        let sql = format!("SELECT coalesce(min(id), 0) FROM jobs WHERE build_id = {build}");
        wait_for(&format!("build {build}'s jobs"), secs, || {
            self.db.count(&sql) > 0
        });
        self.db.count(&sql)
    }

    /// How many builds each process (the servers, then the workers) finished by ending their
    /// last job: with one job per build, how many jobs each ran.
    pub fn job_runners(&self) -> Vec<usize> {
        let logs = self
            .servers
            .iter()
            .map(Served::server_log)
            .chain(self.workers.iter().map(Worker::text));
        logs.map(|l| l.matches("build finished").count()).collect()
    }

    /// Every process's log, for a failure's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.servers.iter().enumerate() {
            out += &format!("--- server {i}\n{}", tail(&s.server_log()));
        }
        for (i, w) in self.workers.iter().enumerate() {
            out += &format!("--- worker {i}\n{}", tail(&w.text()));
        }
        out
    }

    /// The job's log as the API of server `via` gives it.
    pub fn job_log(&self, via: usize, job: i64) -> String {
        self.servers[via].job_log(job)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
        for w in &mut self.workers {
            w.kill();
        }
        // What killed processes left on the engine goes with them.
        let left = containers_of(&self.pids);
        let names: Vec<&str> = left
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        if !names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&names)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The last 60 lines of a log.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(60);
    lines[from..].iter().map(|l| format!("{l}\n")).collect()
}
