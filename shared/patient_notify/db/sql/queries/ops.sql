-- The ops CLI (patient_notify.ops): reports for operators, and the few writes they may make.

-- name: ops_has_ledger
SELECT to_regclass('public.schema_migrations') IS NOT NULL AS present;

-- name: ops_schema_version
SELECT coalesce(max(version), 0) AS version FROM schema_migrations;

-- name: ops_delivery_rate
-- By the UTC day the message was created, per channel.
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, channel,
       count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'undelivered') AS undelivered,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'sent') AS awaiting_receipt,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE status = 'unknown') AS unknown,
       count(*) FILTER (WHERE status IN ('queued', 'sending')) AS in_flight
FROM notifications
WHERE created_at >= %(since)s AND (%(channel)s::text IS NULL OR channel = %(channel)s::text)
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: ops_notifications
SELECT n.id, n.natural_key, n.appointment_id, n.appointment_version, n.kind, n.channel,
       n.recipient, n.status, n.provider, n.provider_message_id, n.attempts, n.created_at,
       n.sent_at, n.receipt_at, n.fallback_of, n.redrive_of,
       (SELECT array_agg(f.id ORDER BY f.id) FROM notifications f WHERE f.fallback_of = n.id) AS fallbacks,
       (SELECT r.id FROM notifications r WHERE r.redrive_of = n.id) AS redriven_as
FROM notifications n
WHERE n.id = ANY(%(ids)s::bigint[]) OR n.appointment_id = %(appointment_id)s::text
ORDER BY n.id;

-- name: ops_status_history
SELECT notification_id, status, detail, at
FROM notification_status_history
WHERE notification_id = ANY(%(ids)s::bigint[])
ORDER BY notification_id, at, id;

-- name: ops_receipts
-- Statuses and times only: the payload is never read here.
SELECT provider_message_id, provider, kind, status, verified, reject_reason, received_at
FROM provider_receipts
WHERE provider_message_id = ANY(%(provider_message_ids)s::text[])
ORDER BY received_at, id;

-- name: ops_alerts
SELECT id, kind, severity, subject, created_at, last_seen_at, occurrences, acknowledged_at, resolved_at
FROM alerts
WHERE %(include_resolved)s::boolean OR resolved_at IS NULL
ORDER BY resolved_at IS NOT NULL, last_seen_at DESC, id DESC;

-- name: ops_lock_redrive_candidates
-- Failed notifications to retry (or the ids asked for, whatever their status), locked so two
-- operators cannot both redrive one; with the contact point a retry would go to now.
SELECT n.id, n.natural_key, n.status, n.kind, n.channel, n.recipient, n.appointment_id,
       n.appointment_version, a.version AS current_version, a.status AS appointment_status,
       a.starts_at, a.missing_from_source_at IS NOT NULL AS missing_from_source,
       (SELECT r.id FROM notifications r WHERE r.redrive_of = n.id) AS redriven_as,
       f.id AS fallback_id, f.status AS fallback_status,
       (SELECT c.value FROM contact_points c
        WHERE c.patient_id = a.patient_id AND c.channel = n.channel AND c.opted_out_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.number = c.value)
          AND NOT EXISTS (SELECT 1 FROM email_suppressions s WHERE lower(s.address) = lower(c.value))
        ORDER BY c.rank, c.id LIMIT 1) AS usable_contact
FROM notifications n JOIN appointments a ON a.id = n.appointment_id
LEFT JOIN notifications f ON f.fallback_of = n.id
WHERE (%(ids)s::bigint[] IS NULL OR n.id = ANY(%(ids)s::bigint[]))
  AND (%(since)s::timestamptz IS NULL OR n.updated_at >= %(since)s::timestamptz)
  AND (%(ids)s::bigint[] IS NOT NULL
       OR (n.status = 'failed' AND NOT EXISTS (SELECT 1 FROM notifications r WHERE r.redrive_of = n.id)))
ORDER BY n.id
FOR UPDATE OF n;

-- name: ops_insert_redrives
-- A copy of each original's message to the contact point chosen; a redrive already made (natural
-- key or redrive_of taken) is not made again.
INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, channel,
                           recipient, language, subject, body, redrive_of)
SELECT r.natural_key, n.appointment_id, n.appointment_version, n.kind, n.channel, r.recipient,
       n.language, n.subject, n.body, n.id
FROM unnest(%(ids)s::bigint[], %(natural_keys)s::text[], %(recipients)s::text[])
    AS r (id, natural_key, recipient)
JOIN notifications n ON n.id = r.id
ORDER BY n.id
ON CONFLICT DO NOTHING
RETURNING id, redrive_of, natural_key, appointment_id, channel;

-- name: ops_lock_dead_letters
SELECT id, event_source, event_id, event_type, data IS NOT NULL AS has_data, received_at, redriven_at
FROM dead_letters
WHERE (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
  AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s::timestamptz)
  AND (%(ids)s::bigint[] IS NOT NULL OR redriven_at IS NULL)
ORDER BY id
FOR UPDATE;

-- name: ops_restage_dead_letters
-- The same event again: our own (already in the outbox) is re-armed for the publisher's next
-- drain; another's (a PingSource's) is added. An outbox row holding another event under the same
-- id is left alone, and that dead letter stays open.
WITH letters AS (
    SELECT DISTINCT ON (event_id) id, event_id, event_type, event_source, data
    FROM dead_letters WHERE id = ANY(%(ids)s::bigint[]) ORDER BY event_id, id
), staged AS (
    INSERT INTO outbox (event_id, type, source, data)
    SELECT event_id, event_type, event_source, data FROM letters
    ON CONFLICT (event_id) DO UPDATE SET published_at = NULL, lease_until = NULL, last_error = NULL
    WHERE outbox.source = EXCLUDED.source AND outbox.type = EXCLUDED.type
    RETURNING id, event_id, source
)
UPDATE dead_letters d
SET redriven_at = now(), redrives = d.redrives + 1, redrive_outbox_id = s.id
FROM staged s JOIN letters l ON l.event_id = s.event_id AND l.event_source = s.source
WHERE d.id = l.id
RETURNING d.id, s.id AS outbox_id;

-- name: ops_sms_opt_out
SELECT number, source, since FROM sms_opt_outs WHERE number = %(number)s;

-- name: ops_add_sms_opt_out
INSERT INTO sms_opt_outs (number, source) VALUES (%(number)s, %(source)s)
ON CONFLICT (number) DO NOTHING
RETURNING number, source, since;

-- name: ops_remove_sms_opt_out
DELETE FROM sms_opt_outs WHERE number = %(number)s
RETURNING number, source, since;
