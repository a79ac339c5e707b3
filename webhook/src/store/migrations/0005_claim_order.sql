-- Claims take the oldest queued build, else the oldest queued job of the oldest build. These
-- indexes hold only the queued rows, in that order: a claim reads no finished row on its way,
-- however many the tables keep.
CREATE INDEX builds_queued ON builds (id) WHERE state = 'queued';
CREATE INDEX jobs_queued ON jobs (build_id, id) WHERE state = 'queued';
