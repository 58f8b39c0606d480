-- Delivery observed and recoverable: provider receipts, opt-outs and suppressions, failover and
-- fallback on the notification, alerts with a lifecycle.

-- Every callback and inbound message as received (verified or not), for audit. Never logged.
CREATE TABLE provider_receipts (
    id                   bigserial PRIMARY KEY,
    provider             text NOT NULL,             -- twilio | sns | ses
    kind                 text NOT NULL,             -- status | inbound | ses-event | sns-subscription
    provider_message_id  text,
    status               text,                      -- the provider's status or event type, as sent
    verified             boolean NOT NULL,
    reject_reason        text,                      -- why an unverified one was refused
    payload              jsonb NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_receipts_by_message ON provider_receipts (provider, provider_message_id);

-- A number that replied STOP (or that Twilio refused with 21610): nothing is sent to it again
-- until it replies START, which deletes the row (provider_receipts keeps the history).
CREATE TABLE sms_opt_outs (
    number      text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    source      text NOT NULL,                      -- 'keyword:STOP', 'provider:21610', ...
    since       timestamptz NOT NULL DEFAULT now()
);

-- An address that bounced hard or complained: nothing is sent to it again.
CREATE TABLE email_suppressions (
    address     text PRIMARY KEY,
    reason      text NOT NULL CHECK (reason IN ('bounce', 'complaint', 'manual')),
    detail      text NOT NULL DEFAULT '',
    since       timestamptz NOT NULL DEFAULT now()
);

-- Failover (another provider for the same message) is the provider column; fallback (another
-- channel) is a new notification pointing at the one it replaces.
ALTER TABLE notifications
    ADD COLUMN fallback_of  bigint REFERENCES notifications (id),
    ADD COLUMN sent_at      timestamptz,             -- accepted by the provider
    ADD COLUMN receipt_at   timestamptz;             -- the last receipt that moved the status
CREATE UNIQUE INDEX notifications_one_fallback ON notifications (fallback_of) WHERE fallback_of IS NOT NULL;
CREATE INDEX notifications_awaiting_receipt ON notifications (sent_at) WHERE status = 'sent';

-- Alerts: one row per incident (dedup_key), seen again and again, resolved when it clears;
-- notified_* records what the sinks were last told, so each change is pushed once.
ALTER TABLE alerts
    ADD COLUMN last_seen_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN occurrences     integer NOT NULL DEFAULT 1,
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN notified_at     timestamptz,
    ADD COLUMN notified_state  text CHECK (notified_state IN ('open', 'resolved'));
CREATE INDEX alerts_open ON alerts (kind) WHERE resolved_at IS NULL;
