-- Senders (issue 7): opt-outs that serialise with the claim, provider pacing, fallback look-ups.

-- An opt-out or a suppression is written under an exclusive advisory lock on its recipient, taken
-- here so that every writer (webhooks, senders, an operator's INSERT) takes it. A sender's claim
-- takes the same lock shared before it reads these tables (sender_lock_recipient): an opt-out
-- either committed before the claim looked, or waits until the claim has committed. The keys are
-- the (int, int) kind, which never meets the single-bigint keys used elsewhere.
CREATE FUNCTION recipient_block_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'sms_opt_outs' THEN
        PERFORM pg_advisory_xact_lock(hashtext('sms_opt_outs'), hashtext(NEW.number));
    ELSE
        PERFORM pg_advisory_xact_lock(hashtext('email_suppressions'), hashtext(lower(NEW.address)));
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER sms_opt_outs_lock BEFORE INSERT ON sms_opt_outs
    FOR EACH ROW EXECUTE FUNCTION recipient_block_lock();
CREATE TRIGGER email_suppressions_lock BEFORE INSERT ON email_suppressions
    FOR EACH ROW EXECUTE FUNCTION recipient_block_lock();

-- Provider pacing (patient_notify.pacing): one row per provider key (a Twilio sender number, an
-- SES region). next_at is the key's virtual schedule in epoch seconds (GCRA's theoretical arrival
-- time); every pod reserves its turn on it with one atomic statement, on the database's clock.
CREATE TABLE pacing_schedule (
    key         text PRIMARY KEY,
    next_at     double precision NOT NULL
);

-- Fallback looks for the other messages of the same occasion (appointment, kind, version).
CREATE INDEX notifications_by_occasion ON notifications (appointment_id, kind, appointment_version);
