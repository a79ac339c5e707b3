//! The store's contract: every test here runs against the embedded SQLite store and against
//! PostgreSQL (each PostgreSQL test in a fresh schema of its own, so they run in parallel).
//! PostgreSQL comes from `SLIPWAY_TEST_POSTGRES` (`scripts/services.sh`); without it the
//! PostgreSQL half skips, or fails under `CI=true`.

mod access;
mod deploys;
mod fencing;
mod outboxes;
mod postgres_only;
mod queue;
mod records;
mod sqlite_upgrade;

use slipway_pipelines::plan::{Context, EventType};
use slipway_webhook::event::NewBuild;
use slipway_webhook::store::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Body = Pin<Box<dyn Future<Output = ()> + Send>>;
type Pair = fn(Arc<dyn Store>, Arc<dyn Store>) -> Body;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `test` on a fresh SQLite store.
pub fn with_sqlite(test: fn(Arc<dyn Store>) -> Body) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("slipway.db")).unwrap());
    runtime().block_on(test(store));
}

/// Runs `test` on two handles of one fresh SQLite database, as two processes would open it.
pub fn with_two_sqlite(test: Pair) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.db");
    let a = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Arc::new(SqliteStore::open(&path).unwrap());
    runtime().block_on(test(a, b));
}

/// The test database's URL; `None` (with a message) when unset outside CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("SLIPWAY_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("SLIPWAY_TEST_POSTGRES is not set (CI=true): run scripts/services.sh start")
        }
        _ => {
            eprintln!("skipped: SLIPWAY_TEST_POSTGRES is not set (scripts/services.sh start)");
            None
        }
    }
}

/// A fresh schema in the test database: its name and a URL whose connections use it.
pub async fn fresh_schema(base: &str) -> (String, String) {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).unwrap();
    let schema = format!("contract_{}", hex::encode(raw));
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the test database at SLIPWAY_TEST_POSTGRES: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    (schema, url)
}

/// Drops a schema [`fresh_schema`] made.
pub async fn drop_schema(base: &str, schema: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(base, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await;
    }
}

/// Runs `test` on a PostgreSQL store in a fresh schema.
pub fn with_postgres(test: fn(Arc<dyn Store>) -> Body) {
    let Some(base) = postgres_url() else { return };
    runtime().block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let store = PgStore::connect(&PgUrl::parse(&url).unwrap())
            .await
            .unwrap();
        test(Arc::new(store)).await;
        drop_schema(&base, &schema).await;
    });
}

/// Runs `test` on two PostgreSQL stores (two servers) sharing one fresh schema.
pub fn with_two_postgres(test: Pair) {
    let Some(base) = postgres_url() else { return };
    runtime().block_on(async {
        let (schema, url) = fresh_schema(&base).await;
        let url = PgUrl::parse(&url).unwrap();
        let a = PgStore::connect(&url).await.unwrap();
        let b = PgStore::connect(&url).await.unwrap();
        test(Arc::new(a), Arc::new(b)).await;
        drop_schema(&base, &schema).await;
    });
}

/// Declares each test once per store: `store_contract::<test>::{sqlite, postgres}`.
macro_rules! contract {
    ($($module:ident :: $name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::with_sqlite(|s| Box::pin(super::$module::$name(s)))
                }
                #[test]
                fn postgres() {
                    super::with_postgres(|s| Box::pin(super::$module::$name(s)))
                }
            }
        )*
    };
}

/// Declares each test of two servers on one database once per store.
macro_rules! contract_pair {
    ($($module:ident :: $name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::with_two_sqlite(|a, b| Box::pin(super::$module::$name(a, b)))
                }
                #[test]
                fn postgres() {
                    super::with_two_postgres(|a, b| Box::pin(super::$module::$name(a, b)))
                }
            }
        )*
    };
}

contract_pair! {
    outboxes::two_servers_send_each_due_row_once,
    outboxes::a_dead_servers_rows_are_taken_again_after_its_hold,
    outboxes::a_commits_reports_wait_while_another_server_holds_an_earlier_one,
    outboxes::a_renewed_hold_keeps_the_rows_with_their_server,
    records::two_servers_taking_pushes_of_one_branch_leave_its_newest_build,
}

contract! {
    records::a_delivery_is_recorded_once_by_id_and_by_body,
    records::a_push_supersedes_the_older_build_of_its_branch,
    records::pushes_arriving_together_leave_each_branch_its_newest_build,
    records::closing_a_pull_request_cancels_its_open_builds,
    records::logs_read_back_in_order_from_any_point,
    records::the_outbox_holds_statuses_in_order_until_sent,
    records::pruning_removes_only_finished_and_reported_builds,
    records::a_check_run_re_run_queues_its_job_again,
    queue::each_build_and_job_is_claimed_exactly_once,
    queue::stages_run_in_order_and_the_build_passes,
    queue::a_failed_stage_cancels_the_later_stages,
    queue::jobs_ending_at_once_open_the_next_stage_once,
    queue::a_failed_job_waits_for_the_rest_of_its_stage,
    queue::an_expired_lease_re_queues_the_job_then_errors_it,
    fencing::a_stale_worker_cannot_write_after_its_job_was_re_queued,
    fencing::a_stale_worker_cannot_overwrite_a_newer_attempts_result,
    fencing::a_cancelled_jobs_worker_completes_its_log_but_not_its_state,
    fencing::a_renewal_racing_the_jobs_end_fails_neither,
    queue::a_cancelled_build_stops_renewals,
    deploys::a_job_lost_mid_deploy_is_errored_not_deployed_again,
    deploys::a_job_lost_after_its_deploy_ended_is_not_deployed_again,
    deploys::a_job_lost_before_any_deploy_is_re_queued,
    deploys::a_stale_worker_cannot_record_a_deploy,
    access::repositories_keep_their_visibility_and_badge_token,
    access::sessions_and_permissions_round_trip,
}

// --- what the tests share ---

pub const REPO: &str = "octo/app";

/// A push build of `branch`.
pub fn push(branch: &str, sha: &str) -> NewBuild {
    NewBuild {
        repo: REPO.into(),
        clone_url: "https://git.invalid/octo/app.git".into(),
        head_sha: sha.into(),
        head_ref: format!("refs/heads/{branch}"),
        base_ref: None,
        supersede_key: Some(format!("branch:{branch}")),
        context: Context {
            event: EventType::Push,
            branch: branch.into(),
            repo: REPO.into(),
            ..Context::default()
        },
        author: None,
    }
}

/// Records a delivery asking for `build`; its id.
pub async fn deliver(store: &Arc<dyn Store>, id: &str, build: NewBuild) -> i64 {
    let mut body = [0u8; 32];
    body[..id.len().min(32)].copy_from_slice(&id.as_bytes()[..id.len().min(32)]);
    let recorded = store
        .record_delivery(Delivery {
            id: id.into(),
            event: "push".into(),
            body_sha256: body,
            visibility: None,
            action: DeliveryAction::Build {
                build: Box::new(build),
                auto_cancel: true,
            },
        })
        .await
        .unwrap();
    match recorded {
        Recorded::Accepted { build: Some(b), .. } => b,
        other => panic!("delivery {id}: {other:?}"),
    }
}

/// Jobs `stages[i]` in stage `i`, numbered from 1.
pub fn jobs(stages: &[usize]) -> Vec<NewJob> {
    let mut out = Vec::new();
    for (stage, &n) in stages.iter().enumerate() {
        for _ in 0..n {
            out.push(NewJob {
                number: out.len() as i64 + 1,
                stage_index: stage as i64,
                stage: format!("stage {stage}"),
                name: None,
                allow_failure: false,
                matrix: serde_json::json!({}),
                plan_json: "{}".into(),
            });
        }
    }
    out
}

/// Claims the next build to prepare and queues `jobs` for it; the build's id.
pub async fn prepare(store: &Arc<dyn Store>, owner: &str, jobs: Vec<NewJob>) -> i64 {
    let Some(Task::Prepare(build)) = store.claim(owner, 30_000).await.unwrap() else {
        panic!("no build to prepare");
    };
    let prepared = Prepared::Jobs {
        merge_sha: build.spec.head_sha.clone(),
        log: "prepared\n".into(),
        jobs,
        skipped_reason: None,
        notify: None,
    };
    store
        .finish_prepare(build.id, owner, prepared)
        .await
        .unwrap();
    build.id
}

/// Claims the next job; its claim.
pub async fn claim_job(store: &Arc<dyn Store>, owner: &str, lease_ms: i64) -> Option<JobLease> {
    match store.claim(owner, lease_ms).await.unwrap() {
        Some(Task::Run { job, .. }) => Some(job.lease()),
        Some(Task::Prepare(b)) => panic!("expected a job, got build {} to prepare", b.id),
        None => None,
    }
}

/// The states of a build's jobs, in order.
pub async fn job_states(store: &Arc<dyn Store>, build: i64) -> Vec<JobState> {
    let (_, jobs) = store.build(build).await.unwrap().unwrap();
    jobs.iter().map(|j| j.state).collect()
}
