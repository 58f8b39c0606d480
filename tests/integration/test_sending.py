"""One provider call per notification, bracketed by durable state, against the real database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg
import pytest

from patient_notify import sending
from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database, Transaction
from patient_notify.delivery import OutboundSms, ProviderAccepted
from patient_notify.errors import DatabaseUnavailable, ProviderOutcomeUnknown, ProviderPermanent, ProviderRetryable
from patient_notify.sending import Claimed, Recovered, Unsendable, confirm_still_wanted, deliver
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.fakes import FakeSmsGateway


async def _queued_notification(db: Database) -> int:
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [make_location()], [make_patient()], [make_contact()],
            [make_appointment(starts_at=datetime.now(UTC) + timedelta(days=3))],
        ))  # fmt: skip
        rows = await tx.all("claim_notifications", {
            "natural_keys": ["reminder:appt-1:sms:x"], "appointment_ids": ["appt-1"],
            "appointment_versions": [1], "kinds": ["reminder"], "channels": ["sms"],
            "recipients": ["+12025550123"], "languages": ["en"], "subjects": [""], "bodies": ["Hi"],
            "hold_until": [None],
        })  # fmt: skip
    return int(rows[0]["id"])


async def _state(db: Database, nid: int) -> tuple[str, list[str]]:
    """The notification's status and the kinds of the open alerts."""
    async with db.transaction() as tx:
        row = await tx.one("lock_notification_for_send", {"id": nid})
        kinds = [r["kind"] for r in await tx.all("open_alerts")]
    assert row is not None
    return row["status"], kinds


def _via(gateway: FakeSmsGateway) -> Callable[[Claimed], Awaitable[ProviderAccepted]]:
    async def send(claimed: Claimed) -> ProviderAccepted:
        return gateway.send_sms(OutboundSms(claimed.recipient, claimed.body))

    return send


FIRST_SID = f"SM{0:032d}"  # the id FakeSmsGateway gives its first message


class Blips:
    """A stand-in for ``Database`` (only ``transaction`` is used): the database, but ``times`` transactions after the first ``after`` fail as a dropped connection would."""

    def __init__(self, db: Database, *, after: int, times: int) -> None:
        self._db, self._after, self._times, self._opened = db, after, times, 0

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        self._opened += 1
        if self._after < self._opened <= self._after + self._times:
            raise DatabaseUnavailable("connection dropped")
        async with self._db.transaction() as tx:
            yield tx


class TestDeliver:
    async def test_accepted_message_is_sent_with_the_provider_id(self, db: Database) -> None:
        """A provider-accepted message ends 'sent' with the provider's id, no alert."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        await deliver(db, nid, _via(gateway))
        status, alerts = await _state(db, nid)
        assert (status, len(gateway.sent), alerts) == ("sent", 1, [])

    async def test_redelivered_event_never_sends_twice(self, db: Database) -> None:
        """The same send event handled five times at once calls the provider once."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        await asyncio.gather(*(deliver(db, nid, _via(gateway)) for _ in range(5)))
        assert len(gateway.sent) == 1 and (await _state(db, nid))[0] == "sent"

    async def test_a_claim_that_never_settled_is_made_visible(self, db: Database) -> None:
        """A redelivery finding a long-stale 'sending' (crash mid-call) marks it unknown and alerts."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("UPDATE notifications SET status = 'sending' WHERE id = %s", (nid,))
            conn.execute("UPDATE notifications SET updated_at = now() - interval '1 hour' WHERE id = %s", (nid,))
        await deliver(db, nid, _via(gateway))
        assert await _state(db, nid) == ("unknown", ["delivery_unknown"]) and gateway.sent == []

    async def test_a_reminder_with_stale_details_is_skipped(self, db: Database) -> None:
        """If the appointment changed after the text was rendered, the old text is not sent (the change notice is)."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        async with db.transaction() as tx:
            changed = make_appointment(starts_at=datetime.now(UTC) + timedelta(days=3, hours=1), version=2)
            await save_batch(tx, SourceBatch(appointments=[changed]))
        await deliver(db, nid, _via(gateway))
        assert await _state(db, nid) == ("skipped", []) and gateway.sent == []

    async def test_a_reminder_held_up_past_its_appointment_is_skipped_and_alerted(self, db: Database) -> None:
        """A reminder that reaches the sender after the appointment began (an outage, a late re-drive) is never sent."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        with psycopg.connect(db.url, autocommit=True) as conn:  # the same version: only the clock moved on
            conn.execute("UPDATE appointments SET starts_at = now() - interval '1 minute' WHERE id = 'appt-1'")
        await deliver(db, nid, _via(gateway))
        assert await _state(db, nid) == ("skipped", ["reminder_too_late"]) and gateway.sent == []

    @pytest.mark.parametrize(("meanwhile", "reason"), [
        ("UPDATE appointments SET status = 'cancelled', version = 2 WHERE id = 'appt-1'", "appointment cancelled"),
        ("INSERT INTO sms_opt_outs (number, source) VALUES ('+12025550123', 'keyword:STOP')", "opted out"),
    ])  # fmt: skip
    async def test_a_change_during_the_pacing_wait_stops_the_call(
        self, db: Database, meanwhile: str, reason: str
    ) -> None:
        """Claimed, then a cancellation or a STOP commits while the sender waits for its turn: no call, skipped."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        recovered: list[int] = []

        async def recover(tx: Transaction, *, unsendable: Unsendable) -> Recovered:
            recovered.append(unsendable.notification_id)
            return Recovered()

        async def send_after_a_wait(claimed: Claimed) -> ProviderAccepted:
            with psycopg.connect(db.url, autocommit=True) as conn:  # committed during the wait
                conn.execute(meanwhile.encode())
            await confirm_still_wanted(db, claimed)
            return gateway.send_sms(OutboundSms(claimed.recipient, claimed.body))

        await deliver(db, nid, send_after_a_wait, recover=recover)
        with psycopg.connect(db.url) as conn:
            row = conn.execute("SELECT status, skip_reason FROM notifications WHERE id = %s", (nid,)).fetchone()
        assert (row, gateway.sent) == (("skipped", reason), [])
        assert recovered == ([nid] if reason == "opted out" else [])  # an opted-out number: try email

    async def test_nothing_changed_during_the_wait_sends(self, db: Database) -> None:
        """The re-read after the wait lets an unchanged message through."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()

        async def send_after_a_wait(claimed: Claimed) -> ProviderAccepted:
            await confirm_still_wanted(db, claimed)
            return gateway.send_sms(OutboundSms(claimed.recipient, claimed.body))

        await deliver(db, nid, send_after_a_wait)
        assert (await _state(db, nid), len(gateway.sent)) == (("sent", []), 1)

    async def test_a_database_blip_after_the_provider_accepted_still_records_its_id(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The provider has it, the first try to record 'sent' hits a dropped connection: tried again, recorded."""
        monkeypatch.setattr(sending, "SETTLE_BACKOFF_S", 0.0)
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        await deliver(
            cast(Database, Blips(db, after=1, times=1)), nid, _via(gateway)
        )  # the claim's transaction, then a blip
        with psycopg.connect(db.url) as conn:
            row = conn.execute("SELECT status, provider_message_id FROM notifications WHERE id = %s", (nid,)).fetchone()
        assert row == ("sent", FIRST_SID) and len(gateway.sent) == 1

    async def test_a_slow_failure_is_not_retried(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        """A failure that took the pool's whole timeout means the database is away: no more tries, which
        would outlast the Trigger's timeout (here every failure counts as slow)."""
        monkeypatch.setattr(sending, "SETTLE_BACKOFF_S", 0.0)
        monkeypatch.setattr(sending, "SETTLE_BLIP_S", -1.0)
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        with pytest.raises(DatabaseUnavailable):
            await deliver(cast(Database, Blips(db, after=1, times=1)), nid, _via(gateway))  # one try would succeed
        assert (await _state(db, nid))[0] == "sending" and len(gateway.sent) == 1

    async def test_a_database_that_stays_away_leaves_the_provider_id_in_the_log(
        self, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Every try fails: the error propagates (503, the claim goes stale and is alerted), the id is logged."""
        monkeypatch.setattr(sending, "SETTLE_BACKOFF_S", 0.0)
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        with pytest.raises(DatabaseUnavailable):
            await deliver(cast(Database, Blips(db, after=1, times=sending.SETTLE_TRIES)), nid, _via(gateway))
        [record] = [r for r in caplog.records if r.getMessage() == "send.unrecorded"]
        assert (record.__dict__["notification_id"], record.__dict__["provider_message_id"]) == (nid, FIRST_SID)
        assert (await _state(db, nid))[0] == "sending"

    async def test_retryable_refusal_releases_the_claim_for_a_retry(self, db: Database) -> None:
        """A throttled send goes back to 'queued' and raises, so the broker retries; the retry sends it."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway(errors=[ProviderRetryable("twilio", "20429")])
        with pytest.raises(ProviderRetryable):
            await deliver(db, nid, _via(gateway))
        assert (await _state(db, nid))[0] == "queued"
        await deliver(db, nid, _via(gateway))
        assert (await _state(db, nid))[0] == "sent" and len(gateway.sent) == 1

    @pytest.mark.parametrize(("error", "status", "alert"), [
        (ProviderPermanent("twilio", "21211", "The 'To' number +12025550123 is not valid"), "failed", "delivery_failed"),
        (ProviderOutcomeUnknown("twilio", "timeout"), "unknown", "delivery_unknown"),  # may have been sent
        (RuntimeError("bug in an adapter"), "unknown", "delivery_unknown"),  # never guess: alert
    ])  # fmt: skip
    async def test_final_failures_are_recorded_and_alerted(
        self, db: Database, error: Exception, status: str, alert: str
    ) -> None:
        """A permanent or unknown outcome is recorded on the notification and raises an alert."""
        nid = await _queued_notification(db)
        await deliver(db, nid, _via(FakeSmsGateway(errors=[error])))
        assert await _state(db, nid) == (status, [alert])

    async def test_alert_and_error_never_quote_the_phone_number(self, db: Database) -> None:
        """Provider error texts are scrubbed before they are stored."""
        nid = await _queued_notification(db)
        error = ProviderPermanent("twilio", "21211", "The 'To' number +12025550123 is not valid")
        await deliver(db, nid, _via(FakeSmsGateway(errors=[error])))
        async with db.transaction() as tx:
            texts = [r["detail"] for r in await tx.all("open_alerts")]
        assert texts and all("+12025550123" not in t and "[phone]" in t for t in texts)

    async def test_cancelled_appointment_is_skipped_with_the_reason(self, db: Database) -> None:
        """If the appointment was cancelled after the message was planned, nothing is sent."""
        nid, gateway = await _queued_notification(db), FakeSmsGateway()
        async with db.transaction() as tx:
            await save_batch(
                tx,
                SourceBatch(
                    appointments=[make_appointment(starts_at=datetime.now(UTC) + timedelta(days=3), status="cancelled")]
                ),
            )
        await deliver(db, nid, _via(gateway))
        assert (await _state(db, nid))[0] == "skipped" and gateway.sent == []
