-- The monitor (functions/monitor) and the alert lifecycle (patient_notify.alerts, alert_sinks).
-- Every check is one bounded, set-based statement: `limit` rows per tick at most, the oldest
-- first, and nothing older than `lookback_s` is scanned again (it was alerted when it was new).
-- `now` is the tick's clock, so tests advance time without sleeping.

-- name: monitor_resolve_alerts
UPDATE alerts SET resolved_at = now()
WHERE dedup_key = ANY(%(keys)s::text[]) AND resolved_at IS NULL;

-- name: monitor_resolve_alerts_of_kind
-- A condition judged as a whole each time: every open alert of the kind not raised again clears.
UPDATE alerts SET resolved_at = now()
WHERE kind = %(kind)s::text AND resolved_at IS NULL AND NOT (dedup_key = ANY(%(keep)s::text[]));

-- name: monitor_database_clock
SELECT now() AS now;

-- name: monitor_expire_stale_sends
-- Claimed for a provider call and never settled (a crash, or the database lost mid-call): the
-- provider may have it, so it becomes unknown (never resent blindly), as a redelivery would do.
UPDATE notifications n SET status = 'unknown', last_error = %(reason)s::text
FROM (
    SELECT id, updated_at FROM notifications
    WHERE status = 'sending' AND updated_at < %(now)s::timestamptz - make_interval(secs => %(stale_s)s::float8)
    ORDER BY updated_at
    LIMIT %(limit)s::int
    FOR UPDATE SKIP LOCKED
) stale
WHERE n.id = stale.id
RETURNING n.id, n.channel, stale.updated_at AS since;

-- name: monitor_stalled_notifications
-- Queued, past any hold, and nothing in flight for it for `stall_s`: no send event staged
-- lately and none waiting in the outbox (the drain has those). Its hold, if any, is over: cleared,
-- so the scheduler does not release it a second time. The caller stages a new send event.
UPDATE notifications n SET hold_until = NULL
FROM (
    SELECT q.id, q.updated_at FROM notifications q
    WHERE q.status = 'queued'
      AND q.updated_at < %(now)s::timestamptz - make_interval(secs => %(stall_s)s::float8)
      AND q.updated_at >= %(now)s::timestamptz - make_interval(secs => %(lookback_s)s::float8)
      AND (q.hold_until IS NULL OR q.hold_until < %(now)s::timestamptz - make_interval(secs => %(stall_s)s::float8))
      -- A scalar subquery, not NOT EXISTS: probed per candidate through outbox_by_subject, never
      -- planned as an anti-join over the whole (ever-growing) outbox.
      AND (SELECT count(*) FROM outbox o
           WHERE o.subject = q.id::text AND o.type = ANY(%(send_types)s::text[])
             AND (o.published_at IS NULL
                  OR o.created_at >= %(now)s::timestamptz - make_interval(secs => %(stall_s)s::float8))) = 0
    ORDER BY q.updated_at
    LIMIT %(limit)s::int
    FOR UPDATE OF q SKIP LOCKED
) stalled
WHERE n.id = stalled.id
RETURNING n.id, n.appointment_id, n.channel, stalled.updated_at AS since;

-- name: monitor_unknown_unalerted
-- Unknown (the provider may or may not have it) and no open alert says so.
SELECT n.id, n.channel, n.updated_at AS since FROM notifications n
WHERE n.status = 'unknown' AND n.updated_at >= %(now)s::timestamptz - make_interval(secs => %(lookback_s)s::float8)
  AND NOT EXISTS (SELECT 1 FROM alerts a
                  WHERE a.dedup_key = 'delivery_unknown:' || n.id AND a.resolved_at IS NULL)
ORDER BY n.updated_at
LIMIT %(limit)s::int;

-- name: monitor_receipts_overdue
-- Accepted by a provider that sends receipts, and none came within `receipt_s`.
SELECT n.id, n.channel, n.provider, coalesce(n.sent_at, n.updated_at) AS since FROM notifications n
WHERE n.status = 'sent'
  AND n.updated_at < %(now)s::timestamptz - make_interval(secs => %(receipt_s)s::float8)
  AND n.updated_at >= %(now)s::timestamptz - make_interval(secs => %(lookback_s)s::float8)
  AND coalesce(n.sent_at, n.updated_at) < %(now)s::timestamptz - make_interval(secs => %(receipt_s)s::float8)
  AND (n.provider IS NULL OR NOT n.provider = ANY(%(receiptless)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM alerts a
                  WHERE a.dedup_key = 'receipt_missing:' || n.id AND a.resolved_at IS NULL)
ORDER BY n.updated_at
LIMIT %(limit)s::int;

-- name: monitor_rearm_lost_events
-- Events the ingress accepted that their consumer never recorded (processed, rejected or dead-
-- lettered) within `stall_s`: lost between an ack and a dead-letter publish, or answered 4xx.
-- Each event is looked at once, when its deadline has passed: those published since the
-- watermark (first run: `event_lookback_s` back). Re-armed for the drain (the consumer
-- deduplicates by source and id); published again, it comes round again if still lost.
UPDATE outbox o SET published_at = NULL, lease_until = NULL,
       last_error = 'published, never processed: re-armed by the monitor'
FROM (
    SELECT x.id, x.published_at FROM outbox x
    WHERE x.type = ANY(%(types)s::text[])
      AND x.published_at < %(now)s::timestamptz - make_interval(secs => %(stall_s)s::float8)
      AND x.published_at >= coalesce(
          (SELECT checked_until FROM monitor_watermarks WHERE check_name = 'lost_events'),
          %(now)s::timestamptz - make_interval(secs => %(event_lookback_s)s::float8))
      -- Scalar subqueries, probed per event by key, never anti-joins over the whole tables.
      AND (SELECT count(*) FROM processed_events p WHERE p.source = x.source AND p.id = x.event_id) = 0
      AND (SELECT count(*) FROM rejected_events r
           WHERE r.event_source = x.source AND r.event_id = x.event_id) = 0
      -- A dead letter re-driven (and not dead again: that reopens it) no longer accounts for the event.
      AND (SELECT count(*) FROM dead_letters d
           WHERE d.event_source = x.source AND d.event_id = x.event_id AND d.redriven_at IS NULL) = 0
    ORDER BY x.published_at
    LIMIT %(limit)s::int
    FOR UPDATE SKIP LOCKED
) lost
WHERE o.id = lost.id
RETURNING o.id, o.type, o.created_at AS since, lost.published_at;

-- name: monitor_receipts_to_apply
-- Messages with receipts not applied yet whose notification now carries the provider's id: they
-- arrived before the sender had committed it (Twilio may call back first). Orphaned ones too, for
-- an id recorded late (by hand, after checking the provider's console). The oldest first.
SELECT r.provider, r.provider_message_id FROM provider_receipts r
WHERE r.match_state IN ('pending', 'orphaned')
  AND (r.match_state = 'pending'
       OR r.received_at >= %(now)s::timestamptz - make_interval(secs => %(lookback_s)s::float8))
  -- A scalar subquery, probed per receipt by the provider's id, never a join over notifications.
  AND (SELECT count(*) FROM notifications n
       WHERE n.provider_message_id = r.provider_message_id AND n.provider = r.provider) > 0
GROUP BY r.provider, r.provider_message_id
ORDER BY min(r.id)
LIMIT %(limit)s::int;

-- name: monitor_orphan_receipts
-- Receipts still matching no notification `match_grace_s` after they arrived: given up on once
-- (the caller alerts), yet applied should their notification turn up (monitor_receipts_to_apply).
UPDATE provider_receipts r SET match_state = 'orphaned'
FROM (
    SELECT p.id FROM provider_receipts p
    WHERE p.match_state = 'pending'
      AND p.received_at < %(now)s::timestamptz - make_interval(secs => %(match_grace_s)s::float8)
      AND (SELECT count(*) FROM notifications n
           WHERE n.provider_message_id = p.provider_message_id AND n.provider = p.provider) = 0
    ORDER BY p.id
    LIMIT %(limit)s::int
    FOR UPDATE SKIP LOCKED
) lost
WHERE r.id = lost.id
RETURNING r.id, r.provider, r.received_at;

-- name: monitor_advance_watermark
INSERT INTO monitor_watermarks AS w (check_name, checked_until) VALUES (%(check)s::text, %(until)s::timestamptz)
ON CONFLICT (check_name) DO UPDATE SET checked_until = greatest(w.checked_until, EXCLUDED.checked_until);

-- name: monitor_outbox_unpublished
-- Still unpublished past the grace period, after this tick's drain tried them: a publish failed,
-- or the row has waited past the stall time. A backlog the scheduler left for its next drain (its
-- tick publishes for a bounded time) is neither until it is older than that.
SELECT id, type, created_at AS since, attempts, last_error FROM outbox
WHERE published_at IS NULL AND created_at < %(now)s::timestamptz - make_interval(secs => %(grace_s)s::float8)
  AND (attempts > 0 OR created_at < %(now)s::timestamptz - make_interval(secs => %(stall_s)s::float8))
ORDER BY id
LIMIT %(limit)s::int;

-- name: monitor_resolve_cleared
-- Alerts about one notification or outbox row (subject = its id) whose condition has cleared.
UPDATE alerts a SET resolved_at = now()
FROM (
    SELECT c.id FROM alerts c
    LEFT JOIN notifications n
        ON c.kind IN ('delivery_unknown', 'receipt_missing', 'notification_stalled')
       AND n.id = CASE WHEN c.subject ~ '^[0-9]{1,18}$' THEN c.subject::bigint END
    LEFT JOIN outbox o
        ON c.kind IN ('outbox_unpublished', 'event_unprocessed')
       AND o.id = CASE WHEN c.subject ~ '^[0-9]{1,18}$' THEN c.subject::bigint END
    WHERE c.resolved_at IS NULL
      AND c.kind IN ('delivery_unknown', 'receipt_missing', 'notification_stalled',
                     'outbox_unpublished', 'event_unprocessed')
      AND CASE c.kind
          WHEN 'delivery_unknown' THEN n.status IS DISTINCT FROM 'unknown'
          WHEN 'receipt_missing' THEN n.status IS DISTINCT FROM 'sent'
          WHEN 'notification_stalled' THEN n.status IS DISTINCT FROM 'queued'
          WHEN 'outbox_unpublished' THEN o.id IS NULL OR o.published_at IS NOT NULL
          ELSE o.id IS NULL  -- event_unprocessed: its consumer has recorded it, one way or another
               OR EXISTS (SELECT 1 FROM processed_events p WHERE p.source = o.source AND p.id = o.event_id)
               OR EXISTS (SELECT 1 FROM rejected_events r
                          WHERE r.event_source = o.source AND r.event_id = o.event_id)
               OR EXISTS (SELECT 1 FROM dead_letters d
                          WHERE d.event_source = o.source AND d.event_id = o.event_id AND d.redriven_at IS NULL)
          END
    ORDER BY c.id
    LIMIT %(limit)s::int
) cleared
WHERE a.id = cleared.id
RETURNING a.kind;

-- name: monitor_delivery_outcomes
-- Per channel and rolling window (hours): delivered, and everything settled or overdue, by the
-- time it settled. Receipt-less providers (SMTP, SNS) are left out: they never say "delivered".
WITH windows AS (
    SELECT hours FROM unnest(%(windows)s::int[]) AS w (hours)
), outcomes AS (  -- two index ranges (settled; sent and overdue), not a scan of every notification
    SELECT channel, status, provider, updated_at FROM notifications
    WHERE status IN ('delivered', 'undelivered', 'failed', 'unknown')
      AND updated_at >= %(now)s::timestamptz - make_interval(hours => (SELECT max(hours) FROM windows))
      AND updated_at < %(now)s::timestamptz
    UNION ALL
    SELECT channel, status, provider, updated_at FROM notifications
    WHERE status = 'sent'
      AND updated_at >= %(now)s::timestamptz - make_interval(hours => (SELECT max(hours) FROM windows))
      AND updated_at < %(now)s::timestamptz - make_interval(secs => %(receipt_s)s::float8)
)
SELECT o.channel, w.hours,
       count(*) FILTER (WHERE o.status = 'delivered') AS delivered,
       count(*) AS settled
FROM windows w
JOIN outcomes o ON o.updated_at >= %(now)s::timestamptz - make_interval(hours => w.hours)
WHERE o.provider IS NULL OR NOT o.provider = ANY(%(receiptless)s::text[])
GROUP BY o.channel, w.hours
ORDER BY o.channel, w.hours;

-- name: monitor_data_freshness
-- The newest successful ETL pass of any source: how old the cached data is.
SELECT source, last_success_at FROM source_freshness
WHERE last_success_at IS NOT NULL
ORDER BY last_success_at DESC
LIMIT 1;

-- name: monitor_alerts_to_push
-- Alerts this sink has not accepted in their current state; for a sink that forgets open alerts
-- (Alertmanager's endsAt), also the open ones it was last told about `refresh_s` ago.
SELECT a.id, a.dedup_key, a.kind, a.severity, a.subject, a.detail, a.created_at, a.last_seen_at,
       a.occurrences, a.resolved_at
FROM alerts a
LEFT JOIN alert_pushes p ON p.alert_id = a.id AND p.sink = %(sink)s::text
WHERE (a.notified_state IS NULL OR (a.notified_state = 'open') <> (a.resolved_at IS NULL)
       OR (%(refresh_s)s::float8 IS NOT NULL AND a.resolved_at IS NULL))
  AND (p.state IS NULL OR (p.state = 'open') <> (a.resolved_at IS NULL)
       OR (%(refresh_s)s::float8 IS NOT NULL AND a.resolved_at IS NULL
           AND p.pushed_at < %(now)s::timestamptz - make_interval(secs => %(refresh_s)s::float8)))
ORDER BY a.severity = 'critical' DESC, a.id
LIMIT %(limit)s::int;

-- name: monitor_record_pushes
-- What the sink accepted (error NULL) or why it did not; a failure keeps the last accepted state.
INSERT INTO alert_pushes AS p (alert_id, sink, state, pushed_at, attempts, last_error)
SELECT r.alert_id, %(sink)s::text, CASE WHEN r.error IS NULL THEN r.state END,
       CASE WHEN r.error IS NULL THEN now() END, 1, r.error
FROM unnest(%(alert_ids)s::bigint[], %(states)s::text[], %(errors)s::text[]) AS r (alert_id, state, error)
ORDER BY r.alert_id
ON CONFLICT (alert_id, sink) DO UPDATE SET
    state = coalesce(EXCLUDED.state, p.state),
    pushed_at = coalesce(EXCLUDED.pushed_at, p.pushed_at),
    attempts = p.attempts + 1,
    last_error = EXCLUDED.last_error;

-- name: monitor_mark_notified
-- Alerts every configured sink has accepted in their current state.
UPDATE alerts a SET notified_state = CASE WHEN a.resolved_at IS NULL THEN 'open' ELSE 'resolved' END,
       notified_at = now()
WHERE a.id = ANY(%(ids)s::bigint[])
  AND a.notified_state IS DISTINCT FROM CASE WHEN a.resolved_at IS NULL THEN 'open' ELSE 'resolved' END
  AND (SELECT count(*) FROM alert_pushes p
       WHERE p.alert_id = a.id AND p.sink = ANY(%(sinks)s::text[])
         AND p.state = CASE WHEN a.resolved_at IS NULL THEN 'open' ELSE 'resolved' END)
      = cardinality(%(sinks)s::text[]);

-- name: monitor_reminder_load
-- For the scheduler's capacity check: reminders still to send, due in [`since`, `until`) with a
-- window still open at `now`, per channel the patient chose and per window (its end instant).
SELECT ch.channel, a.reminder_window_end AS window_end, count(*) AS reminders
FROM appointments a
JOIN patients p ON p.id = a.patient_id
CROSS JOIN LATERAL (VALUES ('sms'), ('email')) AS ch (channel)
WHERE a.status = 'booked' AND a.reminder_handled_at IS NULL AND a.missing_from_source_at IS NULL
  AND a.reminder_due_at >= %(since)s::timestamptz AND a.reminder_due_at < %(until)s::timestamptz
  AND a.reminder_window_end > %(now)s::timestamptz
  AND p.channel_preference IN (ch.channel, 'both')
GROUP BY ch.channel, a.reminder_window_end
ORDER BY ch.channel, a.reminder_window_end;
