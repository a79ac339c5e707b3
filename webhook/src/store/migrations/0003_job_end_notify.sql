-- A job's end is announced on the log channel (payload: the job's id and "end", nothing else),
-- whichever statement ends it: finishing, cancelling, recovery giving up. Live viewers on every
-- server hear it and end their streams; the notification is sent when the transaction commits.
CREATE FUNCTION slipway_job_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_log', NEW.id::text || ' end');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_ended AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (OLD.state IN ('waiting', 'queued', 'running')
          AND NEW.state NOT IN ('waiting', 'queued', 'running'))
    EXECUTE FUNCTION slipway_job_ended();
