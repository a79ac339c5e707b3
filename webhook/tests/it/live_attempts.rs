//! Live logs follow a job's current attempt. When a job's first attempt is lost (its lease ran
//! out, it was queued again and claimed again) but its run goes on printing — a worker that was
//! only slow — the lines it prints late and its end never reach the viewers of the attempt that
//! replaced it, nor the job's stored log: in one process (SQLite, two workers) and across
//! servers on one PostgreSQL database, where the lost attempt runs on the viewer's server.

use crate::store_contract::{drop_schema, fresh_schema, postgres_url};
use crate::util::browser::{DEADLINE, Gates};
use crate::util::*;
use slipway_runner::{JobEvent, JobOutcome, JobResult};
use slipway_webhook::job_runner::{JobRun, JobRunner};
use slipway_webhook::store::{JobState, Store, StoreSetting};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Long enough that no renewal falls within a test's steps: only the tests expire leases.
const LEASE_SECONDS: u64 = 60;

/// Well before the first renewal: the lease expired at once, a reaper pass (every 5 s) queued
/// the job again, and word of that stops the lost run.
const EARLY: Duration = Duration::from_secs(LEASE_SECONDS / 3 - 5);

/// Runs a job's attempts as a test says, whatever its script: the first prints its lines, then
/// hangs deaf to cancels (gate `stale`), prints lines late and hangs again (gate `stale-end`);
/// later attempts print their lines and wait for gate `two`.
struct Attempts {
    gates: Arc<Gates>,
    /// The server each run started on, in order.
    runs: Mutex<Vec<&'static str>>,
    /// How long after it started the first attempt's run was told to stop.
    first_stopped: Mutex<Option<Duration>>,
    /// The first attempt's run has returned.
    first_returned: Mutex<bool>,
}

impl Attempts {
    fn new() -> Arc<Attempts> {
        Arc::new(Attempts {
            gates: Arc::new(Gates::default()),
            runs: Mutex::new(Vec::new()),
            first_stopped: Mutex::new(None),
            first_returned: Mutex::new(false),
        })
    }

    fn runs(&self) -> Vec<&'static str> {
        self.runs.lock().unwrap().clone()
    }

    /// Gives word of the re-queue time to tell the lost first run to stop (the streams are
    /// checked whether it did or not).
    fn wait_first_told_to_stop(&self) {
        let deadline = Instant::now() + EARLY;
        while self.first_stopped.lock().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lost first run was told to stop well before its first renewal (a third of the lease
    /// after its claim, which precedes the run by its checkout): word of the re-queue told it.
    fn assert_first_told_to_stop_early(&self) {
        let stopped = *self.first_stopped.lock().unwrap();
        assert!(
            stopped.is_some_and(|s| s < EARLY),
            "the lost run was told to stop {stopped:?} after it started, not within {EARLY:?}"
        );
    }

    async fn run(
        &self,
        server: &'static str,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let attempt = {
            let mut runs = self.runs.lock().unwrap();
            runs.push(server);
            runs.len()
        };
        let say = |text: String| JobEvent::Log(text.into_bytes().into());
        if attempt == 1 {
            let started = Instant::now();
            for i in 0..5 {
                let _ = events.send(say(format!("first attempt line {i}\n"))).await;
            }
            // Lost meanwhile: a cancel does not reach a run that hangs.
            let stale = self.gates.wait("stale");
            tokio::pin!(stale);
            tokio::select! {
                _ = &mut stale => {}
                _ = cancel.cancelled() => {
                    *self.first_stopped.lock().unwrap() = Some(started.elapsed());
                    stale.await;
                }
            }
            for i in 0..60 {
                let _ = events.send(say(format!("stale line {i}\n"))).await;
            }
            self.gates.wait("stale-end").await;
            *self.first_returned.lock().unwrap() = true;
            return JobOutcome::ended(&job.job, JobResult::Passed, None);
        }
        for i in 0..3 {
            let _ = events.send(say(format!("second attempt line {i}\n"))).await;
        }
        tokio::select! {
            _ = self.gates.wait("two") => {}
            _ = cancel.cancelled() => {
                return JobOutcome::ended(&job.job, JobResult::Canceled, None);
            }
        }
        let _ = events.send(say("second attempt last line\n".into())).await;
        JobOutcome::ended(&job.job, JobResult::Passed, None)
    }
}

/// [`Attempts`] as seen by one server.
struct On {
    server: &'static str,
    attempts: Arc<Attempts>,
}

#[async_trait::async_trait]
impl JobRunner for On {
    async fn run(
        &self,
        job: JobRun,
        events: mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        self.attempts.run(self.server, job, events, cancel).await
    }
}

fn server_config(store: Option<&str>, workers: usize) -> slipway_webhook::Config {
    let mut c = config(None);
    if let Some(url) = store {
        c.store = StoreSetting::new(url.to_string());
    }
    c.workers = workers;
    c.lease_seconds = LEASE_SECONDS;
    c
}

/// Delivers a push to `h`; the build's one job, once its first attempt runs.
fn push_running(h: &Harness, origin: &Origin, attempts: &Attempts, id: &str) -> i64 {
    let sha = git(&origin.work, &["rev-parse", "master"]);
    let body = push_payload_with(
        "acme/app",
        &origin.url(),
        "refs/heads/master",
        &sha,
        false,
        "a push",
    );
    let build = build_of(h.deliver("push", id, &body));
    let store = store_of(h);
    let mut job = None;
    wait_for("the job to run", DEADLINE.as_secs(), || {
        let jobs = h.rt.block_on(store.build(build)).unwrap();
        job = jobs.and_then(|(_, jobs)| jobs.into_iter().find(|j| j.state == JobState::Running));
        job.is_some() && !attempts.runs().is_empty()
    });
    job.unwrap().id
}

fn store_of(h: &Harness) -> Arc<dyn Store> {
    h.server.as_ref().unwrap().store.clone()
}

/// The viewer saw exactly the stored log, each chunk once, in order, with nothing of the lost
/// attempt's late lines; the stored log has none of them either.
fn assert_current_only(h: &Harness, job: i64, viewer: &LogViewer) {
    let stored = h.rt.block_on(store_of(h).log(job, 0, 10_000)).unwrap();
    let text: String = stored.iter().map(|c| c.data.as_str()).collect();
    assert!(!text.contains("stale line"), "stored: {text}");
    assert!(text.contains("first attempt line 4"), "stored: {text}");
    assert!(text.contains("re-queued"), "stored: {text}");
    assert!(text.contains("second attempt last line"), "stored: {text}");
    assert!(
        !viewer.text().contains("stale line"),
        "a lost attempt's late lines reached a viewer: {}",
        viewer.text()
    );
    let want: Vec<(i64, &str)> = stored.iter().map(|c| (c.seq, c.data.as_str())).collect();
    assert_eq!(
        viewer.seen(),
        want,
        "the viewer's chunks against the stored log"
    );
}

#[test]
fn a_lost_attempts_late_lines_never_reach_the_viewers_of_the_next_attempt_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script:\n  - echo hello\n");
    let attempts = Attempts::new();
    let data = tmp.path().join("data");
    let h = Harness::start(
        &data,
        server_config(None, 2),
        Arc::new(On {
            server: "one",
            attempts: attempts.clone(),
        }),
    );
    let job = push_running(&h, &origin, &attempts, "attempts-1");
    let mut early = LogViewer::open(&h.url(), job, None).unwrap();
    assert!(
        early.read_until(DEADLINE, |v| v.text().contains("first attempt line 4")),
        "{}",
        early.text()
    );

    // The lease runs out, as when the worker stalls: the reaper queues the job again and the
    // other worker of this process claims it, while the first run still hangs.
    let db = rusqlite::Connection::open(data.join("slipway.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute("UPDATE jobs SET lease_until = 0 WHERE id = ?1", [job])
        .unwrap();
    assert!(
        early.read_until(DEADLINE, |v| v.text().contains("second attempt line 2")),
        "{}",
        early.text()
    );
    assert_eq!(attempts.runs(), ["one", "one"]);
    attempts.wait_first_told_to_stop();

    // The lost run prints on, late; then it returns (its end refused by the store).
    attempts.gates.open("stale");
    std::thread::sleep(Duration::from_millis(500));
    let mut late = LogViewer::open(&h.url(), job, None).unwrap();
    assert!(late.read_until(DEADLINE, |v| v.text().contains("second attempt line 2")));
    attempts.gates.open("stale-end");
    wait_for("the lost run to return", DEADLINE.as_secs(), || {
        *attempts.first_returned.lock().unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !early.ended && !late.ended,
        "a lost attempt's end ended a stream"
    );

    attempts.gates.open("two");
    for v in [&mut early, &mut late] {
        assert!(v.read_to_end(DEADLINE), "no end: {}", v.text());
    }
    let state = h.rt.block_on(store_of(&h).job(job)).unwrap().unwrap();
    assert_eq!((state.state, state.attempts), (JobState::Passed, 2));
    assert_current_only(&h, job, &early);
    assert_current_only(&h, job, &late);
    attempts.assert_first_told_to_stop_early();
    h.stop();
}

/// Runs one statement on the test's schema.
fn sql(rt: &tokio::runtime::Runtime, url: &str, statement: &str) {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(statement).await.unwrap();
    });
}

#[test]
fn a_lost_attempts_late_lines_never_reach_the_viewers_of_the_next_attempt_across_servers() {
    let Some(base) = postgres_url() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (schema, url) = rt.block_on(fresh_schema(&base));
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), "script:\n  - echo hello\n");
    let attempts = Attempts::new();
    let start = |server: &'static str| {
        let mut c = server_config(Some(&url), 1);
        c.git.allow = vec!["127.0.0.1".parse().unwrap()];
        let runner = Arc::new(On {
            server,
            attempts: attempts.clone(),
        });
        Harness::start(&tmp.path().join(server), c, runner)
    };
    let (a, b) = (start("a"), start("b"));
    // Word between processes goes to every schema of the database: ids far from other tests'
    // keep word about this test's build and job from reaching their servers.
    sql(
        &rt,
        &url,
        "SELECT setval('builds_id_seq', 730000), setval('jobs_id_seq', 730000)",
    );
    let job = push_running(&a, &origin, &attempts, "attempts-across-1");
    // The viewer watches on the server that runs the first attempt; the second attempt runs on
    // the other, whose one worker is free.
    let (here, there) = match attempts.runs()[0] {
        "a" => (&a, "b"),
        _ => (&b, "a"),
    };
    let mut early = LogViewer::open(&here.url(), job, None).unwrap();
    assert!(
        early.read_until(DEADLINE, |v| v.text().contains("first attempt line 4")),
        "{}",
        early.text()
    );

    sql(
        &rt,
        &url,
        &format!("UPDATE jobs SET lease_until = 0 WHERE id = {job}"),
    );
    assert!(
        early.read_until(DEADLINE, |v| v.text().contains("second attempt line 2")),
        "{}",
        early.text()
    );
    assert_eq!(attempts.runs()[1], there);
    attempts.wait_first_told_to_stop();

    // The lost run prints on, late, on the viewer's server, and still hangs.
    attempts.gates.open("stale");
    std::thread::sleep(Duration::from_millis(500));
    let mut late = LogViewer::open(&here.url(), job, None).unwrap();
    assert!(late.read_until(DEADLINE, |v| v.text().contains("second attempt line 2")));

    // The second attempt ends over there: the streams end, though the lost run still hangs here.
    attempts.gates.open("two");
    for v in [&mut early, &mut late] {
        assert!(v.read_to_end(DEADLINE), "no end: {}", v.text());
    }
    let state = here.rt.block_on(store_of(here).job(job)).unwrap().unwrap();
    assert_eq!((state.state, state.attempts), (JobState::Passed, 2));
    assert_current_only(here, job, &early);
    assert_current_only(here, job, &late);
    attempts.assert_first_told_to_stop_early();

    attempts.gates.open("stale-end");
    wait_for("the lost run to return", DEADLINE.as_secs(), || {
        *attempts.first_returned.lock().unwrap()
    });
    a.stop();
    b.stop();
    rt.block_on(drop_schema(&base, &schema));
}
