-- A build's preparation ending is announced on the preparation channel (payload: the build's id,
-- nothing else), whichever statement ends it: its result saved, a cancel, a superseding push,
-- recovery queueing it again or giving up. The process preparing it hears it and asks the store
-- at once whether the build is still its own; the notification is sent when the transaction
-- commits.
CREATE FUNCTION slipway_preparation_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_preparation', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER builds_preparation_ended AFTER UPDATE OF state ON builds FOR EACH ROW
    WHEN (OLD.state = 'preparing' AND NEW.state <> 'preparing')
    EXECUTE FUNCTION slipway_preparation_ended();
