-- The webhooks function: provider receipts, inbound SMS keywords, opt-outs and suppressions.

-- name: webhook_record_receipt
-- Every request as received, verified or not: the audit trail (never logged). A delivery receipt
-- is recorded pending (match_state), and applied by patient_notify.receipts.
INSERT INTO provider_receipts (provider, kind, provider_message_id, status, error_code, verified, reject_reason,
                               payload, match_state)
VALUES (%(provider)s, %(kind)s, %(provider_message_id)s, %(status)s, %(error_code)s, %(verified)s,
        %(reject_reason)s, %(payload)s, %(match_state)s)
RETURNING id;

-- name: receipt_lock_notifications
-- The notifications a receipt is about, locked so concurrent receipts for one message queue up.
-- Always before receipt_lock_pending: every path locks notifications first, then receipts.
SELECT id, status FROM notifications
WHERE provider = %(provider)s AND provider_message_id = %(provider_message_id)s
ORDER BY id
FOR UPDATE;

-- name: receipt_lock_pending
-- The message's receipts not applied yet, in the order received: the one just recorded, and any
-- that came before its notification carried the provider's id.
SELECT id, provider, status, error_code, received_at FROM provider_receipts
WHERE provider = %(provider)s AND provider_message_id = %(provider_message_id)s
  AND match_state IN ('pending', 'orphaned')
ORDER BY id
FOR UPDATE;

-- name: receipt_advance_notification
-- Forward only: from the status just read, and only along a move notification_transitions lists.
-- receipt_at is when the receipt that moved it arrived (before the move, for one applied late).
UPDATE notifications n SET status = %(to_status)s, receipt_at = %(received_at)s::timestamptz,
       last_error = coalesce(%(error)s, n.last_error)
WHERE n.id = %(id)s AND n.status = %(from_status)s
  AND EXISTS (SELECT 1 FROM notification_transitions t
              WHERE t.from_status = n.status AND t.to_status = %(to_status)s)
RETURNING n.id;

-- name: receipt_mark_matched
UPDATE provider_receipts SET match_state = 'matched', matched_at = now()
WHERE id = ANY(%(ids)s::bigint[]);

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
