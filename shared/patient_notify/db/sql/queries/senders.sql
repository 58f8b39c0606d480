-- The senders: opt-outs under the claim, provider pacing, channel fallback.

-- name: sender_lock_recipient
-- Shared: claims to one recipient run side by side; an opt-out or suppression being written for
-- it (exclusive, taken by the recipient_block_lock trigger) waits for them, or they for it.
SELECT CASE WHEN %(channel)s::text = 'sms'
            THEN pg_advisory_xact_lock_shared(hashtext('sms_opt_outs'), hashtext(%(recipient)s::text))
            ELSE pg_advisory_xact_lock_shared(hashtext('email_suppressions'), hashtext(lower(%(recipient)s::text)))
       END AS locked;

-- name: sender_recipient_blocked
-- Run after sender_lock_recipient, as its own statement: its snapshot then includes any opt-out
-- committed while the lock was awaited.
SELECT CASE WHEN %(channel)s::text = 'sms' THEN 'opted out' ELSE 'suppressed' END AS reason
WHERE (%(channel)s::text = 'sms' AND EXISTS (SELECT 1 FROM sms_opt_outs WHERE number = %(recipient)s::text))
   OR (%(channel)s::text = 'email'
       AND EXISTS (SELECT 1 FROM email_suppressions WHERE address = lower(%(recipient)s::text)));

-- name: sender_record_opt_out
-- The provider says the number opted out (Twilio 21610); the first opt-out recorded is kept.
INSERT INTO sms_opt_outs (number, source) VALUES (%(number)s, %(source)s)
ON CONFLICT (number) DO NOTHING;

-- name: sender_blocked_contacts
-- A patient's contact points that no sender would use: opted-out numbers, suppressed addresses.
SELECT c.channel, c.value FROM contact_points c
WHERE c.patient_id = %(patient_id)s::text
  AND ((c.channel = 'sms' AND EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.number = c.value))
    OR (c.channel = 'email' AND EXISTS (SELECT 1 FROM email_suppressions s WHERE s.address = lower(c.value))));

-- name: pacing_take_turn
-- One atomic reservation of the key's next turn (patient_notify.domain.pacing: GCRA), on the
-- database's clock. No row back: the turn is further away than max_wait_s, and nothing changed.
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
INSERT INTO pacing_schedule AS s (key, next_at)
SELECT %(key)s::text, clock.now + %(interval_s)s::float8 FROM clock
ON CONFLICT (key) DO UPDATE
    SET next_at = greatest(s.next_at, (SELECT now FROM clock)) + %(interval_s)s::float8
    WHERE greatest(s.next_at, (SELECT now FROM clock)) - %(tolerance_s)s::float8
          <= (SELECT now FROM clock) + %(max_wait_s)s::float8
RETURNING s.next_at, (SELECT now FROM clock) AS now;

-- name: fallback_source
-- The message a fallback would replace, locked so two fallbacks for it queue up.
SELECT id, channel, status, skip_reason, kind, appointment_id, appointment_version
FROM notifications WHERE id = %(id)s::bigint
FOR UPDATE;

-- name: fallback_claim_email
-- One email per occasion (its natural key, the dispatcher's own) and one fallback per message.
INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, channel,
                           recipient, language, subject, body, fallback_of)
VALUES (%(natural_key)s, %(appointment_id)s, %(appointment_version)s, %(kind)s, 'email',
        %(recipient)s, %(language)s, %(subject)s, %(body)s, %(fallback_of)s)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: fallback_existing_email
-- The email that already covers the occasion (or this message), when the claim found one.
SELECT id, status FROM notifications
WHERE natural_key = %(natural_key)s::text OR fallback_of = %(fallback_of)s::bigint
ORDER BY id LIMIT 1;

-- name: fallback_record
-- The fallback in both messages' status history.
INSERT INTO notification_status_history (notification_id, status, detail)
SELECT n.id, n.status, CASE WHEN n.id = %(id)s::bigint THEN 'fallback to email: notification ' || %(email_id)s::bigint
                            ELSE 'fallback of notification ' || %(id)s::bigint END
FROM notifications n WHERE n.id IN (%(id)s::bigint, %(email_id)s::bigint);
