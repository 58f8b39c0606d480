-- The ETL: passes with their checkpoints and outcomes; what the source last showed.

ALTER TABLE appointments
    ADD COLUMN last_seen_at            timestamptz,   -- the last pass that fetched it
    ADD COLUMN missing_from_source_at  timestamptz;   -- a full reconcile no longer found it

CREATE TABLE etl_runs (
    id            bigserial PRIMARY KEY,
    source        text NOT NULL,                    -- e.g. "fhir:https://ehr.example.org/fhir"
    mode          text NOT NULL CHECK (mode IN ('incremental', 'full')),
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'superseded')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    lease_until   timestamptz NOT NULL,             -- a live lease: a pass is working on it
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    since         timestamptz,                      -- incremental: _lastUpdated lower bound
    next_url      text,                             -- the checkpoint: the page a resumed pass fetches
    pages         integer NOT NULL DEFAULT 0,
    fetched       integer NOT NULL DEFAULT 0,
    upserted      integer NOT NULL DEFAULT 0,
    changed       integer NOT NULL DEFAULT 0,
    rejected      integer NOT NULL DEFAULT 0,
    missing       integer NOT NULL DEFAULT 0,
    requests      integer NOT NULL DEFAULT 0,
    retries       integer NOT NULL DEFAULT 0,
    resumes       integer NOT NULL DEFAULT 0,
    error         text
);
CREATE INDEX etl_runs_by_source ON etl_runs (source, id DESC);

-- How old the cached data is, per source: what the monitor alerts on.
CREATE VIEW source_freshness AS
SELECT source,
       max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success_at,
       max(finished_at) FILTER (WHERE status = 'succeeded' AND mode = 'full') AS last_full_at,
       now() - max(finished_at) FILTER (WHERE status = 'succeeded') AS age
FROM etl_runs
GROUP BY source;
