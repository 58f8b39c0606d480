-- Receipts that beat the provider id (patient_notify.receipts): Twilio may call back within
-- milliseconds of accepting a message, before the sender has committed the sid it returned. Such a
-- receipt matches no notification yet; it waits, pending, and is applied once one carries its id.

-- match_state, for verified delivery receipts only (NULL for inbound SMS, SNS subscriptions and
-- anything refused): pending until a notification carries its id; matched once applied to it (moved
-- or not: forward only); orphaned when none did within the monitor's grace period (alerted once,
-- and still applied should one turn up later).
ALTER TABLE provider_receipts
    ADD COLUMN error_code   text,                   -- Twilio's ErrorCode, SES's bounceType
    ADD COLUMN match_state  text CHECK (match_state IN ('pending', 'matched', 'orphaned')),
    ADD COLUMN matched_at   timestamptz,            -- when it was applied (NULL: before 0008)
    ADD CONSTRAINT provider_receipts_match_verified
        CHECK (match_state IS NULL OR (verified AND provider_message_id IS NOT NULL));

-- Receipts kept before this migration were applied on arrival or never: those whose notification
-- is not final yet, or that matched none, wait again (applying one twice changes nothing).
UPDATE provider_receipts r
SET match_state = CASE WHEN EXISTS (
        SELECT 1 FROM notifications n
        WHERE n.provider = r.provider AND n.provider_message_id = r.provider_message_id
          AND n.status IN ('delivered', 'undelivered', 'failed')) THEN 'matched' ELSE 'pending' END
WHERE r.verified AND r.provider_message_id IS NOT NULL
  AND (r.provider, r.kind) IN (('twilio', 'status'), ('ses', 'ses-event'));

CREATE INDEX provider_receipts_unmatched ON provider_receipts (id)
    WHERE match_state IN ('pending', 'orphaned');

-- A receipt finds its notification by the provider's id (webhooks, and the monitor's sweep).
CREATE INDEX notifications_by_provider_message ON notifications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
