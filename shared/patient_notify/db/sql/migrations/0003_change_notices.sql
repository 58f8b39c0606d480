-- Change notices: announced versions, held notices, and what happened to each inbound event.

ALTER TABLE appointments ADD COLUMN source_version integer;  -- the appointment system's own, when announced

ALTER TABLE processed_events ADD COLUMN outcome text NOT NULL DEFAULT 'applied';

-- A notice held by the quiet-hours policy: no send event until then (the scheduler releases it).
ALTER TABLE notifications ADD COLUMN hold_until timestamptz;
CREATE INDEX notifications_held ON notifications (hold_until) WHERE status = 'queued' AND hold_until IS NOT NULL;

-- Every version bump with what it changed, written in the transaction that bumped it. A notice
-- is built from this row, never from an event's payload: a forged or stale event cannot invent
-- a change.
CREATE TABLE appointment_versions (
    appointment_id  text NOT NULL REFERENCES appointments (id),
    version         integer NOT NULL,
    reason          text NOT NULL,
    previous        jsonb NOT NULL,
    current         jsonb NOT NULL,
    detected_by     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (appointment_id, version)
);
