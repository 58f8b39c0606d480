-- Every statement the functions run, by name (patient_notify.db.queries).
-- Parameters are %(name)s; lists travel as arrays and are expanded with unnest (set-based).

-- name: stage_outbox
-- The events travel as one JSON array (not one array per column): the server unpacks it, so the
-- driver converts one string however many events there are.
INSERT INTO outbox (event_id, type, source, subject, extensions, data)
SELECT e.event_id, e.type, e.source, e.subject, e.extensions, e.data
FROM ROWS FROM (jsonb_to_recordset(%(events)s::jsonb)
                AS (event_id text, type text, source text, subject text, extensions jsonb, data jsonb))
     WITH ORDINALITY AS e (event_id, type, source, subject, extensions, data, n)
ORDER BY e.n
RETURNING id;

-- name: lease_outbox_rows
-- The writer's own rows, leased like a drain's, so an overlapping drain does not send them too;
-- rows already published, or leased to a drainer, are left to it.
UPDATE outbox o SET lease_until = now() + make_interval(secs => %(lease_s)s)
FROM (
    SELECT id FROM outbox
    WHERE id = ANY(%(ids)s::bigint[]) AND published_at IS NULL
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY id
    FOR UPDATE SKIP LOCKED
) mine
WHERE o.id = mine.id
RETURNING o.id, o.event_id, o.type, o.source, o.subject, o.extensions, o.data, o.created_at;

-- name: lease_unpublished_outbox
-- Rows nobody published, leased to this drainer so an overlapping drain skips them.
UPDATE outbox o SET lease_until = now() + make_interval(secs => %(lease_s)s)
FROM (
    SELECT id FROM outbox
    WHERE published_at IS NULL AND created_at < now() - make_interval(secs => %(min_age_s)s)
      AND (lease_until IS NULL OR lease_until < now()) AND id > %(after_id)s::bigint
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) stale
WHERE o.id = stale.id
RETURNING o.id, o.event_id, o.type, o.source, o.subject, o.extensions, o.data, o.created_at,
          o.attempts, o.last_error;

-- name: mark_outbox_published
UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL, lease_until = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND published_at IS NULL;

-- name: mark_outbox_failed
UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.error, lease_until = NULL
FROM unnest(%(ids)s::bigint[], %(errors)s::text[]) AS f (id, error)
WHERE o.id = f.id;

-- name: outbox_pending_count
SELECT count(*) AS pending FROM outbox WHERE published_at IS NULL;

-- name: plan_due_reminders
-- Claim the due reminders and stage their "reminder due" events in one statement: the events are
-- built here (set-based), not in Python. Overlapping ticks split the work (SKIP LOCKED) and never
-- emit the same reminder twice. The data is what ReminderDue.model_dump(mode="json") gives
-- (due_at in UTC with a Z, microseconds only when there are some); a reminder planned after its
-- window is flagged late. One row back per staged event, with what the late alert needs.
WITH due AS (
    UPDATE appointments a SET reminder_handled_at = %(now)s
    FROM (
        SELECT id FROM appointments
        WHERE status = 'booked' AND reminder_handled_at IS NULL AND missing_from_source_at IS NULL
          AND reminder_due_at <= %(now)s AND starts_at > %(now)s + %(cutoff)s
        ORDER BY reminder_due_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) claimed
    WHERE a.id = claimed.id
    RETURNING a.id, a.version, a.reminder_local_date, a.reminder_due_at,
              %(now)s > a.reminder_window_end AS late
), staged AS (
    INSERT INTO outbox (event_id, type, source, subject, data)
    SELECT gen_random_uuid()::text, %(type)s::text, %(source)s::text, id, jsonb_build_object(
               'appointment_id', id, 'appointment_version', version,
               'local_date', reminder_local_date,
               'due_at', to_char(reminder_due_at AT TIME ZONE 'UTC',
                                 CASE WHEN reminder_due_at = date_trunc('second', reminder_due_at)
                                      THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
                                      ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END),
               'late', late)
    FROM due
    ORDER BY reminder_due_at, id
    -- read back from the row written, not by joining "due" again (a CTE join has no index)
    RETURNING id AS outbox_id, subject AS id, (data ->> 'local_date')::date AS reminder_local_date,
              (data ->> 'due_at')::timestamptz AS reminder_due_at, (data -> 'late')::boolean AS late
)
SELECT * FROM staged ORDER BY outbox_id;

-- name: short_notice_reminders
-- Of these appointments, those whose reminder day became known only after its window had ended.
SELECT id FROM appointments
WHERE id = ANY(%(ids)s::text[]) AND reminder_planned_at > reminder_window_end;

-- name: give_up_missed_reminders
-- Booked, never reminded, and now too close to (or past) the appointment: alert, stop scanning.
-- short_notice: the plan became known only once it was already too close (nobody could have).
UPDATE appointments a SET reminder_handled_at = %(now)s
FROM (
    SELECT id FROM appointments
    WHERE status = 'booked' AND reminder_handled_at IS NULL AND missing_from_source_at IS NULL
      AND reminder_due_at <= %(now)s AND starts_at <= %(now)s + %(cutoff)s
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) missed
WHERE a.id = missed.id
RETURNING a.id, a.reminder_local_date, a.starts_at > %(now)s AS upcoming,
          a.reminder_planned_at > a.starts_at - %(cutoff)s AS short_notice;

-- name: record_processed_event
INSERT INTO processed_events (source, id, type, outcome)
VALUES (%(source)s, %(id)s, %(type)s, coalesce(%(outcome)s, 'applied'))
ON CONFLICT DO NOTHING
RETURNING id;

-- name: dispatch_context
SELECT a.id, a.patient_id, a.location_id, a.starts_at, a.status, a.version,
       p.given_name, p.family_name, p.language, p.timezone AS patient_timezone,
       p.channel_preference,
       l.name AS location_name, l.address AS location_address, l.phone AS location_phone,
       l.timezone AS location_timezone,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'patient_id', c.patient_id, 'channel', c.channel, 'value', c.value,
                    'rank', c.rank, 'opted_out', c.opted_out_at IS NOT NULL))
                 FROM contact_points c WHERE c.patient_id = a.patient_id), '[]') AS contacts
FROM appointments a
JOIN patients p ON p.id = a.patient_id
JOIN locations l ON l.id = a.location_id
WHERE a.id = %(appointment_id)s;

-- name: claim_notifications
INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, channel,
                           recipient, language, subject, body, hold_until)
SELECT * FROM unnest(%(natural_keys)s::text[], %(appointment_ids)s::text[],
                     %(appointment_versions)s::int[], %(kinds)s::text[], %(channels)s::text[],
                     %(recipients)s::text[], %(languages)s::text[], %(subjects)s::text[],
                     %(bodies)s::text[], %(hold_until)s::timestamptz[])
ON CONFLICT (natural_key) DO NOTHING
RETURNING id, appointment_id, channel, hold_until;

-- name: set_processed_outcome
UPDATE processed_events SET outcome = %(outcome)s WHERE source = %(source)s AND id = %(id)s;

-- name: lock_appointment_for_change
SELECT a.id, a.patient_id, a.location_id, a.starts_at, a.status, a.version, a.source_version,
       EXISTS (SELECT 1 FROM locations l WHERE l.id = %(location_id)s) AS location_known
FROM appointments a WHERE a.id = %(appointment_id)s
FOR UPDATE;

-- name: supersede_pending_reminders
-- Reminders rendered from older details and not yet sent: the change notice replaces them.
UPDATE notifications SET status = 'skipped',
       skip_reason = 'superseded by version ' || %(version)s
WHERE appointment_id = %(appointment_id)s AND status = 'queued' AND appointment_version < %(version)s
RETURNING id;

-- name: location_names
SELECT id, name FROM locations WHERE id = ANY(%(ids)s::text[]);

-- name: release_held_notices
-- Notices held through quiet hours, due now: released once, in one statement.
UPDATE notifications SET hold_until = NULL
WHERE id IN (
    SELECT id FROM notifications
    WHERE status = 'queued' AND hold_until IS NOT NULL AND hold_until <= %(now)s
    ORDER BY hold_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING id, appointment_id, channel;

-- name: raise_alerts
-- One row per incident: seen again, it is counted and takes the latest detail (created_at stays
-- the first sighting); seen after it was resolved, it opens again, unacknowledged.
-- One row per key even when a batch repeats one (the last wins), written in key order so two
-- transactions raising the same keys cannot deadlock.
INSERT INTO alerts AS a (dedup_key, kind, severity, subject, detail)
SELECT DISTINCT ON (dedup_key) dedup_key, kind, severity, subject, detail
FROM unnest(%(dedup_keys)s::text[], %(kinds)s::text[], %(severities)s::text[],
            %(subjects)s::text[], %(details)s::text[]) WITH ORDINALITY
    AS i (dedup_key, kind, severity, subject, detail, n)
ORDER BY dedup_key, n DESC
ON CONFLICT (dedup_key) DO UPDATE SET
    last_seen_at = now(),
    occurrences = a.occurrences + 1,
    severity = EXCLUDED.severity,
    detail = EXCLUDED.detail,
    resolved_at = NULL,
    acknowledged_at = CASE WHEN a.resolved_at IS NULL THEN a.acknowledged_at END;

-- name: lock_notification_for_send
SELECT n.id, n.status, n.kind, n.channel, n.recipient, n.subject, n.body, n.attempts,
       n.appointment_version, a.version AS current_version,
       CASE WHEN a.missing_from_source_at IS NULL THEN a.status ELSE 'missing from source' END
           AS appointment_status,
       extract(epoch FROM now() - n.updated_at)::float8 AS status_age_s,
       a.starts_at <= now() AS appointment_started
FROM notifications n JOIN appointments a ON a.id = n.appointment_id
WHERE n.id = %(id)s
FOR UPDATE OF n;

-- name: move_notification
-- Conditional on the expected current status, so a stale writer changes nothing.
UPDATE notifications SET
    status = %(to_status)s,
    attempts = attempts + %(attempt)s,
    provider = coalesce(%(provider)s, provider),
    provider_message_id = coalesce(%(provider_message_id)s, provider_message_id),
    last_error = coalesce(%(error)s, last_error),
    skip_reason = coalesce(%(skip_reason)s, skip_reason),
    sent_at = CASE WHEN %(to_status)s = 'sent' THEN now() ELSE sent_at END
WHERE id = %(id)s AND status = %(from_status)s
RETURNING id;

-- name: record_rejected_event
INSERT INTO rejected_events (receiver, reason, event_source, event_id, event_type, headers, body)
VALUES (%(receiver)s, %(reason)s, %(event_source)s, %(event_id)s, %(event_type)s,
        %(headers)s, %(body)s)
RETURNING id;

-- name: record_dead_letter
INSERT INTO dead_letters (event_source, event_id, event_type, error_dest, error_code, data)
VALUES (%(event_source)s, %(event_id)s, %(event_type)s, %(error_dest)s, %(error_code)s, %(data)s)
ON CONFLICT (event_source, event_id) DO NOTHING
RETURNING id;

-- name: upsert_locations
INSERT INTO locations (id, name, address, phone, timezone)
SELECT * FROM unnest(%(ids)s::text[], %(names)s::text[], %(addresses)s::text[],
                     %(phones)s::text[], %(timezones)s::text[])
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, address = EXCLUDED.address, phone = EXCLUDED.phone,
    timezone = EXCLUDED.timezone, updated_at = now();

-- name: upsert_patients
INSERT INTO patients (id, given_name, family_name, language, timezone, channel_preference)
SELECT * FROM unnest(%(ids)s::text[], %(given_names)s::text[], %(family_names)s::text[],
                     %(languages)s::text[], %(timezones)s::text[], %(preferences)s::text[])
ON CONFLICT (id) DO UPDATE SET
    given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name,
    language = EXCLUDED.language, timezone = EXCLUDED.timezone,
    channel_preference = EXCLUDED.channel_preference, updated_at = now();

-- name: upsert_contact_points
INSERT INTO contact_points (patient_id, channel, value, rank)
SELECT * FROM unnest(%(patient_ids)s::text[], %(channels)s::text[], %(values)s::text[],
                     %(ranks)s::int[])
ON CONFLICT (patient_id, channel, value) DO UPDATE SET rank = EXCLUDED.rank;

-- name: prune_contact_points
-- A patient's contact points are what the source lists now: others go (opted-out rows stay, to
-- keep the opt-out if the number comes back).
DELETE FROM contact_points c
WHERE c.patient_id = ANY(%(batch_patient_ids)s::text[]) AND c.opted_out_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM unnest(%(patient_ids)s::text[], %(channels)s::text[], %(values)s::text[])
          AS keep (patient_id, channel, value)
      WHERE keep.patient_id = c.patient_id AND keep.channel = c.channel AND keep.value = c.value);

-- name: mark_missing_appointments
-- After a full reconcile: appointments in the window the source no longer lists.
UPDATE appointments SET missing_from_source_at = %(now)s
WHERE starts_at >= %(window_start)s AND starts_at < %(window_end)s
  AND missing_from_source_at IS NULL
  AND (last_seen_at IS NULL OR last_seen_at < %(seen_before)s)
RETURNING id;

-- name: touch_appointments
-- Seen by this pass, even where an older source version was not applied.
UPDATE appointments SET last_seen_at = %(seen_at)s, missing_from_source_at = NULL
WHERE id = ANY(%(ids)s::text[]) AND (last_seen_at IS NULL OR last_seen_at < %(seen_at)s);

-- name: lock_appointments
-- Taken before upsert_appointments, so its snapshot of the old values cannot go stale.
SELECT id FROM appointments WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE;

-- name: upsert_appointments
-- Writes what the source shows. A change of time, venue or status bumps the version; the old
-- values come back beside the new so the caller can announce the change. A move to another
-- local day re-arms the reminder.
WITH incoming AS (
    SELECT * FROM unnest(%(ids)s::text[], %(patient_ids)s::text[], %(location_ids)s::text[],
                         %(starts)s::timestamptz[], %(statuses)s::text[], %(local_dates)s::date[],
                         %(due)s::timestamptz[], %(window_ends)s::timestamptz[],
                         %(source_versions)s::int[])
        AS i (id, patient_id, location_id, starts_at, status, local_date, due_at, window_end,
              source_version)
), previous AS (  -- the statement's snapshot: the rows as they were (locked beforehand)
    SELECT a.id, a.starts_at, a.location_id, a.status, a.version
    FROM appointments a JOIN incoming USING (id)
), written AS (
    INSERT INTO appointments AS a (id, patient_id, location_id, starts_at, status, version,
                                   reminder_local_date, reminder_due_at, reminder_window_end,
                                   last_seen_at, source_version)
    SELECT id, patient_id, location_id, starts_at, status, 1, local_date, due_at, window_end,
           %(seen_at)s, source_version
    FROM incoming
    ON CONFLICT (id) DO UPDATE SET
        patient_id = EXCLUDED.patient_id, location_id = EXCLUDED.location_id,
        starts_at = EXCLUDED.starts_at, status = EXCLUDED.status,
        version = a.version + CASE
            WHEN (a.starts_at, a.location_id, a.status)
                 IS DISTINCT FROM (EXCLUDED.starts_at, EXCLUDED.location_id, EXCLUDED.status)
            THEN 1 ELSE 0 END,
        reminder_local_date = EXCLUDED.reminder_local_date,
        reminder_due_at = EXCLUDED.reminder_due_at,
        reminder_window_end = EXCLUDED.reminder_window_end,
        reminder_handled_at = CASE WHEN a.reminder_local_date = EXCLUDED.reminder_local_date
                                   THEN a.reminder_handled_at END,
        reminder_planned_at = CASE WHEN a.reminder_local_date = EXCLUDED.reminder_local_date
                                   THEN a.reminder_planned_at ELSE now() END,
        last_seen_at = EXCLUDED.last_seen_at,
        missing_from_source_at = NULL,
        source_version = coalesce(EXCLUDED.source_version, a.source_version),
        updated_at = now()
    -- Never let an older version of the record (a lagging API page) undo a newer one: by the
    -- source's version when both carry one, else by time (a page from a pass that began before
    -- the row's last write, e.g. an announced change, does not overwrite it).
    WHERE a.source_version IS NULL
       OR (EXCLUDED.source_version IS NULL AND EXCLUDED.last_seen_at > a.updated_at)
       OR EXCLUDED.source_version >= a.source_version
    RETURNING a.id, a.version, a.starts_at, a.location_id, a.status
)
SELECT w.id, w.version, w.starts_at, w.location_id, w.status,
       p.version AS old_version, p.starts_at AS old_starts_at, p.location_id AS old_location_id,
       p.status AS old_status
FROM written w LEFT JOIN previous p USING (id);

-- name: appointment_zones
-- The zone a reminder is planned in: the patient's, else the clinic's.
SELECT a.id, coalesce(p.timezone, l.timezone) AS timezone
FROM unnest(%(patient_ids)s::text[], %(location_ids)s::text[], %(ids)s::text[]) AS a (patient_id, location_id, id)
JOIN patients p ON p.id = a.patient_id
JOIN locations l ON l.id = a.location_id;

-- name: open_alerts
SELECT id, dedup_key, kind, severity, subject, detail, created_at
FROM alerts WHERE acknowledged_at IS NULL ORDER BY id;

-- name: lock_etl_source
-- One pass per source begins at a time (transaction-scoped: safe behind PgBouncer).
SELECT pg_advisory_xact_lock(hashtext('etl:' || %(source)s));

-- name: live_etl_run
SELECT id FROM etl_runs
WHERE source = %(source)s AND status = 'running' AND lease_until > now()
LIMIT 1;

-- name: resume_etl_run
UPDATE etl_runs SET status = 'running', resumes = resumes + 1, error = NULL,
       lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE id = (
    SELECT id FROM etl_runs
    WHERE source = %(source)s AND status IN ('running', 'failed') AND next_url IS NOT NULL
      -- a checkpoint that keeps failing, or has aged, is abandoned for a fresh pass
      AND resumes < %(max_resumes)s AND started_at > now() - make_interval(secs => %(max_age_s)s)
    ORDER BY id DESC LIMIT 1
)
RETURNING *;

-- name: etl_history
-- The last successes (watermarks), and how the latest finished pass went (mode and status).
SELECT max(started_at) FILTER (WHERE status = 'succeeded') AS last_started_at,
       max(started_at) FILTER (WHERE status = 'succeeded' AND mode = 'full') AS last_full_at,
       (array_agg(mode ORDER BY started_at DESC, id DESC) FILTER (WHERE status <> 'running'))[1] AS latest_mode,
       (array_agg(status ORDER BY started_at DESC, id DESC) FILTER (WHERE status <> 'running'))[1] AS latest_status
FROM etl_runs WHERE source = %(source)s
HAVING count(*) FILTER (WHERE status = 'succeeded') > 0;

-- name: supersede_etl_runs
UPDATE etl_runs SET status = 'superseded', finished_at = now()
WHERE source = %(source)s AND status IN ('running', 'failed');

-- name: start_etl_run
INSERT INTO etl_runs (source, mode, status, window_start, window_end, since, next_url, lease_until)
VALUES (%(source)s, %(mode)s, 'running', %(window_start)s, %(window_end)s, %(since)s, %(next_url)s,
        now() + make_interval(secs => %(lease_s)s))
RETURNING *;

-- name: advance_etl_run
UPDATE etl_runs SET next_url = %(next_url)s, pages = pages + 1, fetched = fetched + %(fetched)s,
       upserted = upserted + %(upserted)s, changed = changed + %(changed)s,
       rejected = rejected + %(rejected)s, requests = requests + %(requests)s,
       retries = retries + %(retries)s, lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE id = %(id)s AND status = 'running' AND resumes = %(epoch)s  -- fenced: only the lease holder
RETURNING id;

-- name: finish_etl_run
UPDATE etl_runs SET status = %(status)s, finished_at = now(), missing = %(missing)s,
       error = %(error)s, lease_until = now()
WHERE id = %(id)s AND status = 'running' AND resumes = %(epoch)s
RETURNING rejected;

-- name: etl_run_counts
SELECT pages, fetched, upserted, changed, rejected, missing, requests, retries, resumes
FROM etl_runs WHERE id = %(id)s;

-- name: count_etl_requests
UPDATE etl_runs SET requests = requests + %(requests)s, retries = retries + %(retries)s
WHERE id = %(id)s AND status = 'running' AND resumes = %(epoch)s;

-- name: record_appointment_versions
INSERT INTO appointment_versions (appointment_id, version, reason, previous, current, detected_by)
SELECT * FROM unnest(%(appointment_ids)s::text[], %(versions)s::int[], %(reasons)s::text[],
                     %(previous)s::jsonb[], %(current)s::jsonb[], %(detected_by)s::text[])
ON CONFLICT DO NOTHING;

-- name: appointment_version
SELECT appointment_id, version, reason, previous, current, detected_by
FROM appointment_versions WHERE appointment_id = %(appointment_id)s AND version = %(version)s;
