-- Patient Notify schema, version 1.
-- PostgreSQL is the source of truth for every notification; the broker only carries work.

CREATE TABLE locations (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    address     text NOT NULL DEFAULT '',
    phone       text NOT NULL,                       -- the number patients call
    timezone    text NOT NULL,                       -- IANA, validated by the application
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id                  text PRIMARY KEY,
    given_name          text NOT NULL,
    family_name         text NOT NULL DEFAULT '',
    language            text NOT NULL DEFAULT 'en',
    timezone            text,                        -- IANA; NULL means "the clinic's zone"
    channel_preference  text NOT NULL CHECK (channel_preference IN ('sms', 'email', 'both')),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contact_points (
    id            bigserial PRIMARY KEY,
    patient_id    text NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    channel       text NOT NULL CHECK (channel IN ('sms', 'email')),
    value         text NOT NULL,
    rank          integer NOT NULL DEFAULT 1,
    opted_out_at  timestamptz,
    UNIQUE (patient_id, channel, value),
    CHECK (channel <> 'sms' OR value ~ '^\+[1-9][0-9]{6,14}$'),   -- E.164
    CHECK (channel <> 'email' OR value LIKE '%_@_%')
);

CREATE TABLE appointments (
    id                   text PRIMARY KEY,
    patient_id           text NOT NULL REFERENCES patients (id),
    location_id          text NOT NULL REFERENCES locations (id),
    starts_at            timestamptz NOT NULL,
    status               text NOT NULL CHECK (status IN (
                             'proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled',
                             'noshow', 'entered-in-error', 'checked-in', 'waitlist')),
    version              integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- The reminder plan, computed by patient_notify.domain.reminders when the row is written.
    reminder_local_date  date NOT NULL,
    reminder_due_at      timestamptz NOT NULL,
    reminder_window_end  timestamptz NOT NULL,
    reminder_handled_at  timestamptz,                -- emitted, or given up on (missed) with an alert
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appointments_reminder_due ON appointments (reminder_due_at)
    WHERE reminder_handled_at IS NULL AND status = 'booked';

-- Forward-only status machine; every transition a writer may make is listed here.
CREATE TABLE notification_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO notification_transitions (from_status, to_status) VALUES
    ('queued', 'sending'), ('queued', 'skipped'),
    ('sending', 'queued'),          -- released: the provider definitely did not accept it
    ('sending', 'sent'), ('sending', 'failed'), ('sending', 'unknown'), ('sending', 'skipped'),
    ('sending', 'delivered'), ('sending', 'undelivered'),   -- a receipt can beat the 'sent' commit
    ('unknown', 'sent'), ('unknown', 'delivered'), ('unknown', 'undelivered'), ('unknown', 'failed'),
    ('unknown', 'queued'),          -- a reconciler proved the provider never had it
    ('sent', 'delivered'), ('sent', 'undelivered'), ('sent', 'failed');

CREATE TABLE notifications (
    id                   bigserial PRIMARY KEY,
    natural_key          text NOT NULL UNIQUE,      -- the exactly-once claim
    appointment_id       text NOT NULL REFERENCES appointments (id),
    appointment_version  integer NOT NULL,
    kind                 text NOT NULL CHECK (kind IN ('reminder', 'change', 'cancellation')),
    channel              text NOT NULL CHECK (channel IN ('sms', 'email')),
    recipient            text NOT NULL,
    language             text NOT NULL,
    subject              text NOT NULL DEFAULT '',
    body                 text NOT NULL,
    status               text NOT NULL DEFAULT 'queued',
    provider             text,
    provider_message_id  text,
    attempts             integer NOT NULL DEFAULT 0,
    last_error           text,
    skip_reason          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_open ON notifications (status, updated_at)
    WHERE status IN ('queued', 'sending', 'unknown', 'sent');

CREATE TABLE notification_status_history (
    id               bigserial PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    status           text NOT NULL,
    detail           text,
    at               timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notification_status_history_by_notification
    ON notification_status_history (notification_id);

CREATE FUNCTION notifications_guard_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM notification_transitions
                       WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'notification % may not move from % to %', OLD.id, OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION notifications_record_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO notification_status_history (notification_id, status, detail)
        VALUES (NEW.id, NEW.status, coalesce(NEW.skip_reason, NEW.last_error));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER notifications_guard_status BEFORE UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_guard_status();
CREATE TRIGGER notifications_record_status AFTER INSERT OR UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_record_status();

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    type          text NOT NULL,
    source        text NOT NULL,
    subject       text,
    extensions    jsonb NOT NULL DEFAULT '{}',
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    lease_until   timestamptz,                       -- a drainer is re-sending it until then
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE processed_events (
    source        text NOT NULL,
    id            text NOT NULL,
    type          text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);

CREATE TABLE rejected_events (
    id           bigserial PRIMARY KEY,
    receiver     text NOT NULL,                      -- the function that refused it
    reason       text NOT NULL,
    event_source text,
    event_id     text,
    event_type   text,
    headers      jsonb NOT NULL DEFAULT '{}',
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
    id            bigserial PRIMARY KEY,
    event_source  text NOT NULL,
    event_id      text NOT NULL,
    event_type    text NOT NULL,
    error_dest    text,
    error_code    text,
    data          jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_source, event_id)
);

CREATE TABLE alerts (
    id            bigserial PRIMARY KEY,
    dedup_key     text NOT NULL UNIQUE,              -- one alert per incident, however often seen
    kind          text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('warning', 'critical')),
    subject       text,                              -- an id (appointment, notification, event); never patient data
    detail        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz
);
