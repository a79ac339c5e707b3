-- A row of an outbox (commit statuses and check runs, notifications) is sent by one process: the
-- one that took it holds it until `claimed_until` (epoch ms) and records the outcome, which lets
-- it go. Rows held by a process that died become due again when the hold ends.
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE notify_outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE notify_outbox ADD COLUMN claimed_by TEXT;
