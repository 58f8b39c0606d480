-- The webhooks function: provider receipts, inbound SMS keywords, opt-outs and suppressions.

-- name: webhook_record_receipt
-- Every request as received, verified or not: the audit trail (never logged).
INSERT INTO provider_receipts (provider, kind, provider_message_id, status, verified, reject_reason, payload)
VALUES (%(provider)s, %(kind)s, %(provider_message_id)s, %(status)s, %(verified)s, %(reject_reason)s,
        %(payload)s)
RETURNING id;

-- name: webhook_lock_notifications
-- The notifications a receipt is about, locked so concurrent receipts for one message queue up.
SELECT id, status FROM notifications
WHERE provider = %(provider)s AND provider_message_id = %(provider_message_id)s
ORDER BY id
FOR UPDATE;

-- name: webhook_advance_notification
-- Forward only: from the status just read, and only along a move notification_transitions lists.
UPDATE notifications n SET status = %(to_status)s, receipt_at = now(),
       last_error = coalesce(%(error)s, n.last_error)
WHERE n.id = %(id)s AND n.status = %(from_status)s
  AND EXISTS (SELECT 1 FROM notification_transitions t
              WHERE t.from_status = n.status AND t.to_status = %(to_status)s)
RETURNING n.id;

-- name: webhook_opt_out_number
-- The first opt-out is kept (its source and time); STOP again changes nothing.
INSERT INTO sms_opt_outs (number, source) VALUES (%(number)s, %(source)s)
ON CONFLICT (number) DO NOTHING;

-- name: webhook_opt_in_number
DELETE FROM sms_opt_outs WHERE number = %(number)s;

-- name: webhook_suppress_addresses
-- Addresses are stored lower-cased: compare with lower(address).
INSERT INTO email_suppressions (address, reason, detail)
SELECT DISTINCT lower(address), %(reason)s, %(detail)s FROM unnest(%(addresses)s::text[]) AS a (address)
ON CONFLICT (address) DO NOTHING;
