-- Operations (patient_notify.ops): re-driving what failed without moving any status backwards.

-- A failed notification stays failed: the status machine is forward-only, and a late receipt for
-- the first attempt must never land on a second one. A redrive is a new notification, claimed by
-- '<natural key>:redrive:<n>' and staged with its send event in one transaction, pointing at the
-- notification it retries; at most one redrive per notification (a retry of a retry chains).
ALTER TABLE notifications ADD COLUMN redrive_of bigint REFERENCES notifications (id);
CREATE UNIQUE INDEX notifications_one_redrive ON notifications (redrive_of) WHERE redrive_of IS NOT NULL;

-- A dead letter re-staged in the outbox with its own id, source, type and data, so consumers
-- deduplicate it as they would any redelivery.
ALTER TABLE dead_letters
    ADD COLUMN redriven_at        timestamptz,
    ADD COLUMN redrives           integer NOT NULL DEFAULT 0,
    ADD COLUMN redrive_outbox_id  bigint REFERENCES outbox (id);

-- A redriven event that is dead-lettered again must be seen again: record_dead_letter inserts
-- ON CONFLICT DO NOTHING, so without this the second death would leave no trace. The row opens
-- again and its alert (dedup key as written by patient_notify.records) is reopened.
CREATE FUNCTION dead_letters_reopen_redriven() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dead_letters
    SET redriven_at = NULL, received_at = now(), error_dest = NEW.error_dest, error_code = NEW.error_code
    WHERE event_source = NEW.event_source AND event_id = NEW.event_id AND redriven_at IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    UPDATE alerts
    SET resolved_at = NULL, acknowledged_at = NULL, last_seen_at = now(), occurrences = occurrences + 1
    WHERE dedup_key = 'dead-letter:' || NEW.event_source || ':' || NEW.event_id;
    RETURN NULL;  -- the existing row stands for this death too
END $$;

CREATE TRIGGER dead_letters_reopen_redriven BEFORE INSERT ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION dead_letters_reopen_redriven();
