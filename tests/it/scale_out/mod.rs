//! Several `slipway serve` and `slipway worker` processes on one PostgreSQL database, as
//! docs/scale-out.md describes them, running real jobs on the local Docker engine and reporting
//! to GitHub's stand-in: every build runs once however the pushes spread; a killed worker's job is
//! re-queued and finished elsewhere; a killed server loses no accepted delivery; a deploy whose
//! worker died is not run again. Each test has a database of its own. Without Docker or
//! `SLIPWAY_TEST_POSTGRES` the tests skip, and fail under `CI=true`.

mod cluster;
mod deploy_once;
mod exactly_once;
mod lost_server;
mod lost_worker;
