-- The monitor (functions/monitor): what each alert sink was told, and indexes for its checks.

-- Per alert and sink, the state the sink last accepted, so each change reaches each sink once and
-- a sink that failed is retried on the next tick without re-sending to the others.
-- alerts.notified_state / notified_at sum it up: set once every configured sink has the state.
CREATE TABLE alert_pushes (
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    sink        text NOT NULL,                      -- webhook | slack | pagerduty | alertmanager
    state       text CHECK (state IN ('open', 'resolved')),   -- NULL: never accepted yet
    pushed_at   timestamptz,                        -- when the sink accepted `state`
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,                               -- why the last push failed (never the sink's URL)
    PRIMARY KEY (alert_id, sink)
);

-- How far a check that looks at each row once has got: the events published before `checked_until`
-- were looked at (so a tick costs one period's events, and a monitor that was down catches up).
CREATE TABLE monitor_watermarks (
    check_name     text PRIMARY KEY,
    checked_until  timestamptz NOT NULL
);

-- Alerts not every sink has been told about in their current state.
CREATE INDEX alerts_unnotified ON alerts (id)
    WHERE notified_state IS NULL OR (notified_state = 'open') <> (resolved_at IS NULL);

-- A notification's send events (their subject is its id): "queued, and nothing in flight".
CREATE INDEX outbox_by_subject ON outbox (subject, created_at);
-- Events by type and age: "published, and never processed" (a crash between ack and dead-letter).
CREATE INDEX outbox_by_type ON outbox (type, published_at);
CREATE INDEX rejected_events_by_event ON rejected_events (event_source, event_id);
-- Settled notifications by when they settled: the delivery rate's rolling windows.
CREATE INDEX notifications_settled ON notifications (updated_at)
    WHERE status IN ('delivered', 'undelivered', 'failed', 'unknown');
