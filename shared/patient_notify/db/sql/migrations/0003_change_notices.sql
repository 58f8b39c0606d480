-- Change notices: announced versions, held notices, and what happened to each inbound event.

ALTER TABLE appointments ADD COLUMN source_version integer;  -- the appointment system's own, when announced

ALTER TABLE processed_events ADD COLUMN outcome text NOT NULL DEFAULT 'applied';

-- A notice held by the quiet-hours policy: no send event until then (the scheduler releases it).
ALTER TABLE notifications ADD COLUMN hold_until timestamptz;
CREATE INDEX notifications_held ON notifications (hold_until) WHERE status = 'queued' AND hold_until IS NOT NULL;
