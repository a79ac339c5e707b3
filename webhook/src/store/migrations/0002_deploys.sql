-- Each deploy a job's attempt began, and how it ended (NULL while unknown): a job re-queued
-- with a deploy of unknown outcome is errored rather than deployed again.
CREATE TABLE deploys (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    provider TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    succeeded BOOLEAN,
    PRIMARY KEY (job_id, attempt, idx)
);
