//! Live logs and cancels across servers on one PostgreSQL database: a job run by one server's
//! worker is followed live by viewers of another server, which runs no workers. Each viewer gets
//! every chunk once, in order, while the job still runs, and `end` when it ends over there; a
//! stranger gets nothing of a private job; the database's notifications carry no log text. A
//! cancel on the other server stops a job, or a build's preparation, there at once.

use crate::store_contract::{drop_schema, fresh_schema, postgres_url};
use crate::util::browser::{DEADLINE, GatedJobRunner, Gates};
use crate::util::*;
use slipway_runner::{JobEvent, JobOutcome};
use slipway_webhook::job_runner::{JobRun, JobRunner};
use slipway_webhook::store::{BuildState, JobState, Store, StoreSetting, now_ms};
use slipway_webhook::testing::git_hosts::Trickle;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

const PIPELINE: &str = "script:
  - echo first-line
  - lines 40
  - gate one
  - echo second-line
  - lines 40
  - gate two
  - echo last-line
";

/// Two servers on one fresh schema: `runs` with one worker, `views` with none.
struct Pair {
    _tmp: tempfile::TempDir,
    origin: Origin,
    gates: Arc<Gates>,
    /// When each run of a job on `runs` returned (epoch ms).
    stopped: Arc<Mutex<Vec<i64>>>,
    runs: Harness,
    views: Harness,
    base: String,
    schema: String,
    url: String,
}

/// A [`GatedJobRunner`] noting when each run returns.
struct Stopwatch {
    gated: GatedJobRunner,
    stopped: Arc<Mutex<Vec<i64>>>,
}

#[async_trait::async_trait]
impl JobRunner for Stopwatch {
    async fn run(
        &self,
        job: JobRun,
        events: tokio::sync::mpsc::Sender<JobEvent>,
        cancel: CancellationToken,
    ) -> JobOutcome {
        let outcome = self.gated.run(job, events, cancel).await;
        self.stopped.lock().unwrap().push(now_ms());
        outcome
    }
}

fn pair() -> Option<Pair> {
    pair_with_lease(None)
}

/// The pair, with `lease_seconds` when given (the tests' default otherwise).
fn pair_with_lease(lease_seconds: Option<u64>) -> Option<Pair> {
    let base = postgres_url()?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (schema, url) = rt.block_on(fresh_schema(&base));
    let tmp = tempfile::tempdir().unwrap();
    let origin = Origin::new(tmp.path(), PIPELINE);
    let gates = Arc::new(Gates::default());
    let server = |workers: usize| {
        let mut c = config(None);
        c.store = StoreSetting::new(url.clone());
        c.workers = workers;
        c.lease_seconds = lease_seconds.unwrap_or(c.lease_seconds);
        // Builds fetched from a `Trickle` on loopback.
        c.git.allow = vec!["127.0.0.1".parse().unwrap()];
        // Past the first renewal of the tests' longest lease, so a failing test ends.
        c.git.fetch_timeout_seconds = 50;
        c
    };
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let runs = Harness::start(
        &tmp.path().join("runs"),
        server(1),
        Arc::new(Stopwatch {
            gated: GatedJobRunner {
                gates: gates.clone(),
            },
            stopped: stopped.clone(),
        }),
    );
    let views = Harness::start(
        &tmp.path().join("views"),
        server(0),
        Arc::new(GatedJobRunner {
            gates: gates.clone(),
        }),
    );
    Some(Pair {
        _tmp: tmp,
        origin,
        gates,
        stopped,
        runs,
        views,
        base,
        schema,
        url,
    })
}

impl Pair {
    fn store(&self) -> Arc<dyn Store> {
        self.views.server.as_ref().unwrap().store.clone()
    }

    /// Delivers a push of `repo` to the viewing server; the build's one job, once running.
    fn push_running(&self, repo: &str, private: bool, id: &str) -> i64 {
        let sha = git(&self.origin.work, &["rev-parse", "master"]);
        let body = push_payload_with(
            repo,
            &self.origin.url(),
            "refs/heads/master",
            &sha,
            private,
            "a push",
        );
        let build: i64 = build_of(self.views.deliver("push", id, &body));
        let store = self.store();
        let mut job = None;
        wait_for(
            "the job to run on the other server",
            DEADLINE.as_secs(),
            || {
                let jobs = self.views.rt.block_on(store.build(build)).unwrap();
                job = jobs
                    .and_then(|(_, jobs)| jobs.into_iter().find(|j| j.state == JobState::Running));
                job.is_some()
            },
        );
        job.unwrap().id
    }

    /// Delivers a push of `repo` to the viewing server with `trickle` as its clone URL; the
    /// build's id and when its preparation was claimed, once `runs` is fetching it.
    fn push_fetching(&self, trickle: &Trickle, repo: &str, id: &str) -> (i64, i64) {
        let sha = git(&self.origin.work, &["rev-parse", "master"]);
        let url = format!("http://{}/{repo}.git", trickle.addr);
        let body = push_payload_with(repo, &url, "refs/heads/master", &sha, false, "a push");
        let build: i64 = build_of(self.views.deliver("push", id, &body));
        wait_for(
            "the other server to fetch the build",
            DEADLINE.as_secs(),
            || !trickle.connections().is_empty(),
        );
        let (b, jobs) = self.build(build);
        assert_eq!(b.state, BuildState::Preparing);
        assert!(jobs.is_empty());
        (build, b.started_at.expect("a claimed build's start"))
    }

    fn build(
        &self,
        build: i64,
    ) -> (
        slipway_webhook::store::Build,
        Vec<slipway_webhook::store::Job>,
    ) {
        let store = self.store();
        self.views.rt.block_on(store.build(build)).unwrap().unwrap()
    }

    /// Cancels `build` through the viewing server's API.
    fn cancel(&self, build: i64) {
        let (status, text) = http(
            "POST",
            &format!("{}/api/builds/{build}/cancel", self.views.url()),
            &[("Authorization", "Bearer ui-token")],
            b"",
        );
        assert!(status < 300, "{status} {text}");
    }

    /// Runs one statement on the pair's database; the first column of its first row, if any.
    fn sql(&self, statement: &str, params: &[&(dyn ToSql + Sync)]) -> Option<i64> {
        self.views.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let rows = client.query(statement, params).await.unwrap();
            rows.first().map(|r| r.get(0))
        })
    }

    fn job_state(&self, job: i64) -> JobState {
        let store = self.store();
        self.views
            .rt
            .block_on(store.job(job))
            .unwrap()
            .unwrap()
            .state
    }

    fn stop(self) {
        self.runs.stop();
        self.views.stop();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(drop_schema(&self.base, &self.schema));
    }
}

/// Every payload sent on the log channel while it listens.
fn listen_to_log_channel(url: &str) -> (tokio::runtime::Runtime, Arc<Mutex<Vec<String>>>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let (client, mut conn) = rt
        .block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))
        .unwrap();
    let sink = heard.clone();
    rt.spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                sink.lock().unwrap().push(n.payload().to_string());
            }
        }
    });
    rt.block_on(client.batch_execute("LISTEN slipway_log"))
        .unwrap();
    // The connection lives as long as the runtime.
    rt.spawn(async move {
        let _client = client;
        std::future::pending::<()>().await;
    });
    (rt, heard)
}

/// The viewer's chunks are exactly the stored log: each once, in order, from 1 with no gap.
fn assert_whole(p: &Pair, job: i64, viewer: &LogViewer) {
    let store = p.store();
    let stored = p.views.rt.block_on(store.log(job, 0, 10_000)).unwrap();
    let want: Vec<(i64, &str)> = stored.iter().map(|c| (c.seq, c.data.as_str())).collect();
    assert_eq!(
        viewer.seen(),
        want,
        "the viewer's chunks against the stored log"
    );
    let seqs: Vec<i64> = viewer.chunks.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[test]
fn a_job_run_by_one_server_is_followed_live_on_another() {
    let Some(p) = pair() else { return };
    let (_listening, heard) = listen_to_log_channel(&p.url);
    let job = p.push_running("acme/app", false, "live-1");

    let mut early = LogViewer::open(&p.views.url(), job, None).unwrap();
    assert!(
        early.read_until(DEADLINE, |v| v.text().contains("filler line 39")),
        "the first lines never came: {:?}",
        early.text()
    );
    // The job waits at its first gate: these lines came live, not after it ended.
    assert_eq!(p.job_state(job), JobState::Running);
    assert!(early.text().contains("first-line"), "{}", early.text());
    assert!(!early.text().contains("second-line"), "{}", early.text());

    // A viewer arriving now gets the stored lines, then the rest live, with nothing between.
    let mut late = LogViewer::open(&p.views.url(), job, None).unwrap();
    p.gates.open("one");
    for v in [&mut early, &mut late] {
        assert!(
            v.read_until(DEADLINE, |v| v.text().contains("second-line")),
            "the line after the first gate never came: {:?}",
            v.text()
        );
    }
    assert_eq!(
        p.job_state(job),
        JobState::Running,
        "still at the second gate"
    );

    p.gates.open("two");
    for v in [&mut early, &mut late] {
        assert!(v.read_to_end(DEADLINE), "no end: {:?}", v.text());
        assert!(v.text().contains("last-line"), "{}", v.text());
    }
    assert_eq!(p.job_state(job), JobState::Passed);
    assert_whole(&p, job, &early);
    assert_whole(&p, job, &late);

    // A viewer resuming after the job ended gets the rest and `end` at once.
    let resume_at = early.chunks[10].seq;
    let mut resumed = LogViewer::open(&p.views.url(), job, Some(resume_at)).unwrap();
    assert!(resumed.read_to_end(DEADLINE));
    assert_eq!(resumed.chunks[0].seq, resume_at + 1);
    assert_eq!(resumed.chunks.len(), early.chunks.len() - 11);

    // What the database told every listener: job ids and positions, no log text.
    std::thread::sleep(Duration::from_millis(200));
    let heard = heard.lock().unwrap().clone();
    assert!(heard.contains(&format!("{job} end")), "{heard:?}");
    assert!(heard.iter().any(|h| h.starts_with(&format!("{job} "))));
    for payload in &heard {
        let (id, what) = payload.split_once(' ').expect("id and what");
        assert!(id.parse::<i64>().is_ok(), "{payload:?}");
        assert!(what == "end" || what.parse::<i64>().is_ok(), "{payload:?}");
    }
    p.stop();
}

#[test]
fn a_stranger_gets_nothing_of_a_private_job_run_on_another_server() {
    let Some(p) = pair() else { return };
    let job = p.push_running("acme/secret", true, "private-1");
    let refused = LogViewer::open(&p.views.url(), job, None)
        .err()
        .expect("refused");
    assert!(refused.starts_with("HTTP/1.0 404"), "{refused}");
    assert!(!refused.contains("first-line"), "{refused}");
    // The server that runs it refuses the same.
    let refused = LogViewer::open(&p.runs.url(), job, None)
        .err()
        .expect("refused");
    assert!(refused.starts_with("HTTP/1.0 404"), "{refused}");
    p.gates.open("one");
    p.gates.open("two");
    p.stop();
}

#[test]
fn a_job_cancelled_on_another_server_ends_its_viewers_streams() {
    let Some(p) = pair() else { return };
    let job = p.push_running("acme/app", false, "cancel-1");
    let mut viewer = LogViewer::open(&p.views.url(), job, None).unwrap();
    assert!(viewer.read_until(DEADLINE, |v| v.text().contains("filler line 39")));
    let build = p
        .views
        .rt
        .block_on(p.store().job(job))
        .unwrap()
        .unwrap()
        .build_id;
    let (status, text) = http(
        "POST",
        &format!("{}/api/builds/{build}/cancel", p.views.url()),
        &[("Authorization", "Bearer ui-token")],
        b"",
    );
    assert!(status < 300, "{status} {text}");
    assert!(viewer.read_to_end(DEADLINE), "no end: {:?}", viewer.text());
    assert_eq!(p.job_state(job), JobState::Canceled);
    p.stop();
}

#[test]
fn a_job_cancelled_on_another_server_stops_there_before_its_next_renewal() {
    // Renewals every 20 s: only word between the servers can stop the job sooner.
    let lease_seconds = 60;
    let Some(p) = pair_with_lease(Some(lease_seconds)) else {
        return;
    };
    let job = p.push_running("acme/app", false, "cancel-2");
    let store = p.store();
    let running = p.views.rt.block_on(store.job(job)).unwrap().unwrap();
    let claimed_at = running.started_at.expect("a running job's start");
    let (status, text) = http(
        "POST",
        &format!("{}/api/builds/{}/cancel", p.views.url(), running.build_id),
        &[("Authorization", "Bearer ui-token")],
        b"",
    );
    assert!(status < 300, "{status} {text}");
    let renewal = claimed_at + lease_seconds as i64 * 1000 / 3;
    let wait = (renewal - now_ms()).max(1) as u64 / 1000 + 5;
    wait_for("the job's run to stop on the other server", wait, || {
        !p.stopped.lock().unwrap().is_empty()
    });
    let stopped = p.stopped.lock().unwrap()[0];
    assert!(
        stopped < renewal,
        "stopped {} ms after its claim, not before its first renewal ({} ms)",
        stopped - claimed_at,
        renewal - claimed_at
    );
    assert_eq!(p.job_state(job), JobState::Canceled);
    p.stop();
}

/// When the first fetch of a preparation claimed at `claimed_at` closed, and when that claim's
/// first lease renewal falls: the fetch is waited for until a little past the renewal.
fn first_fetch_closed(
    trickle: &Trickle,
    claimed_at: i64,
    lease_seconds: u64,
) -> (Instant, Instant) {
    let renewal = instant_of(claimed_at + lease_seconds as i64 * 1000 / 3);
    let wait = renewal.saturating_duration_since(Instant::now()).as_secs() + 5;
    (fetch_closed(trickle, 0, wait), renewal)
}

#[test]
fn a_build_cancelled_on_another_server_stops_preparing_there_before_its_next_renewal() {
    // Renewals every 20 s, and a fetch that never ends: only word between the servers can stop
    // the preparation sooner.
    let lease_seconds = 60;
    let Some(p) = pair_with_lease(Some(lease_seconds)) else {
        return;
    };
    let trickle = Trickle::start(Duration::from_millis(100));
    let (build, claimed_at) = p.push_fetching(&trickle, "acme/app", "prepare-cancel-1");
    p.cancel(build);
    let (closed, renewal) = first_fetch_closed(&trickle, claimed_at, lease_seconds);
    assert!(
        closed < renewal,
        "the fetch stopped {:?} after the claim, not before the first renewal ({:?})",
        closed - instant_of(claimed_at),
        renewal - instant_of(claimed_at),
    );

    // Nothing of the preparation was saved: no jobs, no commit, no log.
    let (b, jobs) = p.build(build);
    assert_eq!(b.state, BuildState::Canceled);
    assert_eq!(b.reason.as_deref(), Some("canceled by a user"));
    assert!(jobs.is_empty(), "{jobs:?}");
    assert_eq!(b.merge_sha, None);
    assert_eq!(b.log, "");
    assert_eq!(trickle.connections().len(), 1, "fetched once");

    // The worker and the repository's mirror are free: the next push is prepared and runs.
    let job = p.push_running("acme/app", false, "prepare-cancel-2");
    p.gates.open("one");
    p.gates.open("two");
    let next_build = p
        .views
        .rt
        .block_on(p.store().job(job))
        .unwrap()
        .unwrap()
        .build_id;
    let next = p.views.wait_final(next_build, DEADLINE.as_secs());
    assert_eq!(next["build"]["state"], "passed", "{next}");
    p.stop();
}

#[test]
fn late_word_of_a_preparations_end_does_not_stop_the_build_claimed_again_since() {
    let lease_seconds = 60;
    let Some(p) = pair_with_lease(Some(lease_seconds)) else {
        return;
    };
    let trickle = Trickle::start(Duration::from_millis(100));
    let (build, claimed_at) = p.push_fetching(&trickle, "acme/app", "prepare-again-1");

    // Its lease runs out, as when its server stalls: a reaper queues the build again, the word
    // of that stops the lost attempt on `runs` before its next renewal, and `runs` claims the
    // build again.
    p.sql("UPDATE builds SET lease_until = 0 WHERE id = $1", &[&build]);
    let (closed, renewal) = first_fetch_closed(&trickle, claimed_at, lease_seconds);
    assert!(closed < renewal, "the lost attempt stopped at its renewal");
    wait_for("the second claim's fetch", DEADLINE.as_secs(), || {
        trickle.connections().len() == 2
    });
    let attempts = "SELECT attempts FROM builds WHERE id = $1 AND state = 'preparing'";
    assert_eq!(p.sql(attempts, &[&build]), Some(2));

    // Word of the first attempt's end arriving now, late: `runs` asks the store, which says the
    // build is its own (the lease is renewed), and goes on fetching.
    let lease = "SELECT lease_until FROM builds WHERE id = $1";
    let before = p.sql(lease, &[&build]).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    p.sql(
        "SELECT 0::bigint FROM pg_notify('slipway_preparation', $1)",
        &[&build.to_string()],
    );
    wait_for(
        "the lease renewed on hearing the word",
        DEADLINE.as_secs(),
        || p.sql(lease, &[&build]).unwrap() > before,
    );
    assert_eq!(trickle.connections()[1].1, None, "the second fetch goes on");
    assert_eq!(p.sql(attempts, &[&build]), Some(2));

    p.cancel(build);
    fetch_closed(&trickle, 1, DEADLINE.as_secs());
    let (b, jobs) = p.build(build);
    assert_eq!(b.state, BuildState::Canceled);
    assert!(jobs.is_empty(), "{jobs:?}");
    p.stop();
}
