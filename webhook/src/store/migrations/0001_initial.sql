-- The store's tables, in PostgreSQL's words; SQLite reads them through `Dialect::ddl`
-- (webhook/src/store/sql.rs).
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    build_id BIGINT,
    body_sha256 BYTEA UNIQUE
);
CREATE INDEX deliveries_received ON deliveries(received_at);
CREATE TABLE builds (
    id BIGSERIAL PRIMARY KEY,
    repo TEXT NOT NULL,
    spec TEXT NOT NULL,
    supersede_key TEXT,
    branch TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    log TEXT NOT NULL DEFAULT '',
    merge_sha TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    notify TEXT
);
CREATE INDEX builds_state ON builds(state);
CREATE INDEX builds_repo ON builds(repo, id);
CREATE INDEX builds_supersede ON builds(repo, supersede_key, state);
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    build_id BIGINT NOT NULL REFERENCES builds(id),
    number BIGINT NOT NULL,
    stage_index BIGINT NOT NULL,
    stage TEXT NOT NULL,
    name TEXT,
    allow_failure BOOLEAN NOT NULL,
    matrix TEXT NOT NULL,
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_build ON jobs(build_id);
CREATE TABLE log_chunks (
    job_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    build_id BIGINT NOT NULL,
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    state TEXT NOT NULL,
    description TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT false,
    last_error TEXT,
    kind TEXT NOT NULL DEFAULT 'status',
    payload TEXT
);
CREATE INDEX outbox_due ON outbox(done, next_at);
CREATE INDEX outbox_sha ON outbox(repo, sha);
CREATE INDEX outbox_build ON outbox(build_id);
CREATE TABLE repos (
    name TEXT NOT NULL,
    private BOOLEAN NOT NULL,
    badge_token TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- GitHub's names are case-insensitive.
CREATE UNIQUE INDEX repos_name ON repos (lower(name));
CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,
    login TEXT NOT NULL,
    github_token TEXT,
    admin BOOLEAN NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE TABLE permissions (
    login TEXT NOT NULL,
    repo TEXT NOT NULL,
    level TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX permissions_key ON permissions (login, lower(repo));
CREATE TABLE check_runs (
    check_run_id BIGINT PRIMARY KEY,
    build_id BIGINT NOT NULL,
    repo TEXT NOT NULL,
    job_id BIGINT UNIQUE,
    synced TEXT NOT NULL
);
CREATE INDEX check_runs_build ON check_runs(build_id);
CREATE TABLE notify_outbox (
    id BIGSERIAL PRIMARY KEY,
    build_id BIGINT NOT NULL,
    repo TEXT NOT NULL,
    trusted BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    notification TEXT NOT NULL,
    facts TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT false,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX notify_outbox_due ON notify_outbox(done, next_at);
CREATE INDEX notify_outbox_build ON notify_outbox(build_id);
