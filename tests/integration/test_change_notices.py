"""Change notices: announced or detected, signed, once per (appointment, version, channel), never stale."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from cloudevents.core.bindings.http import to_structured_event

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.changelog import record_changes
from patient_notify.codec import decode_http, new_event
from patient_notify.db import Database
from patient_notify.domain.changes import changes_in
from patient_notify.events import ChangeNoticeDue
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.integration.change_harness import ChangeHarness, announced, change_harness, reminder_due

START = (datetime.now(UTC) + timedelta(days=6)).replace(second=0, microsecond=0)
ZONE = "America/New_York"


async def seed(db: Database, appointment_id: str = "appt-1") -> None:
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [make_location(), make_location(id="loc-2", name="Hilltop Clinic")],
            [make_patient()],
            [make_contact(), make_contact(channel="email", value="ada@example.org")],
            [make_appointment(id=appointment_id, starts_at=START, source_version=1)],
        ))  # fmt: skip


@pytest.fixture
async def harness(migrated_database_url: str) -> AsyncIterator[ChangeHarness]:
    async with change_harness(migrated_database_url) as h:
        yield h


async def drain(h: ChangeHarness) -> None:
    """Deliver every emitted event (and what those emit) until nothing is left."""
    while pending := h.emitted():
        for headers, body in pending:
            event = decode_http(headers, body)
            assert await h.deliver(event) == 200  # type: ignore[arg-type]


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


class TestAnnouncedChange:
    async def test_a_reschedule_tells_the_patient_once_per_channel(self, harness: ChangeHarness, db: Database) -> None:
        """One SMS and one email with the old and new time; the event delivered three times changes nothing more."""
        await seed(db)
        event = announced("appt-1", 2, "rescheduled", START + timedelta(days=1), "loc-1")
        for _ in range(3):
            assert await harness.deliver(event) == 200
        await drain(harness)
        [sms] = harness.twilio.messages
        [email] = harness.smtp.messages
        assert "has moved to" in sms.body and email.rcpt_tos == ("ada@example.org",)
        assert harness.sent("appt-1") == [("change", "sms", 2, "sent"), ("change", "email", 2, "sent")]

    async def test_structured_mode_is_accepted(self, harness: ChangeHarness, db: Database) -> None:
        """The same signed event in structured content mode is applied like a binary one."""
        await seed(db)
        message = to_structured_event(announced("appt-1", 2, "cancelled", START, "loc-1", status="cancelled"))
        status, _ = await harness.functions["dispatcher"].process(dict(message.headers), message.body)
        assert status == 200 and harness.appointment("appt-1") == (2, "cancelled")

    async def test_an_older_announcement_is_ignored_and_recorded(self, harness: ChangeHarness, db: Database) -> None:
        """Version 3 then version 2 (out of order): version 2 changes nothing and is recorded as stale."""
        await seed(db)
        await harness.deliver(announced("appt-1", 3, "relocated", START, "loc-2"))
        await harness.deliver(announced("appt-1", 2, "rescheduled", START + timedelta(hours=5), "loc-1"))
        assert harness.appointment("appt-1") == (2, "booked")
        assert ("stale",) in rows(harness.database_url, "SELECT outcome FROM processed_events")

    async def test_a_queued_reminder_is_not_sent_with_the_old_time(self, harness: ChangeHarness, db: Database) -> None:
        """A reminder waiting for its sender when the appointment moves is dropped; only the change notice goes."""
        await seed(db)
        await harness.deliver(reminder_due("appt-1", START, ZONE))
        queued_reminders = harness.emitted()  # the reminder's send events, not delivered yet
        await harness.deliver(announced("appt-1", 2, "rescheduled", START + timedelta(hours=2), "loc-1"))
        for headers, body in queued_reminders:
            await harness.deliver(decode_http(headers, body))  # type: ignore[arg-type]
        await drain(harness)
        assert {kind for kind, *_ in harness.sent("appt-1")} == {"change"}
        assert all("has moved to" in m.body for m in harness.twilio.messages)

    async def test_a_change_seen_by_the_etl_and_then_announced_gives_one_notice(
        self, harness: ChangeHarness, db: Database
    ) -> None:
        """The ETL's notice.due and the later announcement of the same facts produce one notice per channel."""
        await seed(db)
        moved = make_appointment(id="appt-1", starts_at=START + timedelta(days=2), source_version=2)
        async with db.transaction() as tx:  # what an ETL page does: write, detect, record
            rows = await save_batch(tx, SourceBatch(appointments=[moved]))
            changes = changes_in(rows, detected_by="/patient-notify/etl")
            await record_changes(tx, changes)
        await harness.deliver(new_event(changes[0], source="/patient-notify/etl", subject="appt-1"))
        await harness.deliver(announced("appt-1", 2, "rescheduled", START + timedelta(days=2), "loc-1"))
        await drain(harness)
        assert harness.sent("appt-1") == [("change", "sms", 2, "sent"), ("change", "email", 2, "sent")]


class TestForgedInternalEvents:
    async def test_a_notice_due_for_a_change_nobody_made_is_rejected(
        self, harness: ChangeHarness, db: Database
    ) -> None:
        """notice.due only names a change; one the database has no record of is rejected, not sent."""
        await seed(db)
        forged = ChangeNoticeDue.model_validate({
            "appointment_id": "appt-1", "version": 1, "reason": "cancelled", "detected_by": "x",
            "previous": {"starts_at": START.isoformat(), "location_id": "loc-1", "status": "booked"},
            "current": {"starts_at": START.isoformat(), "location_id": "loc-1", "status": "cancelled"},
        })  # fmt: skip
        assert await harness.deliver(new_event(forged, source="/patient-notify/etl")) == 202
        await drain(harness)
        assert harness.twilio.messages == [] and harness.appointment("appt-1") == (1, "booked")

    async def test_a_reinstated_appointment_is_announced_as_booked_again(
        self, harness: ChangeHarness, db: Database
    ) -> None:
        """Cancelled, then booked again: the patient hears both, the second saying it is booked again."""
        await seed(db)
        await harness.deliver(announced("appt-1", 2, "cancelled", START, "loc-1", "cancelled"))
        await drain(harness)
        await harness.deliver(announced("appt-1", 3, "rebooked", START, "loc-1", "booked"))
        await drain(harness)
        assert [kind for kind, channel, *_ in harness.sent("appt-1") if channel == "sms"] == ["cancellation", "change"]
        assert "booked again" in harness.twilio.messages[-1].body


class TestAuthentication:
    @pytest.mark.parametrize(("make", "reason"), [
        (lambda: announced("appt-1", 2, "cancelled", START, "loc-1", "cancelled", secret="not-the-secret-0123456789abcdefgh"), "signature"),
        (lambda: announced("appt-1", 2, "cancelled", START, "loc-1", "cancelled",
                           signed_at=datetime.now(UTC) - timedelta(hours=1)), "window"),  # a replay of an old event
    ])  # fmt: skip
    async def test_unauthenticated_events_are_kept_alerted_and_not_acted_on(
        self, harness: ChangeHarness, db: Database, make: object, reason: str
    ) -> None:
        """A bad signature or a replayed event is a rejected record with an alert; the appointment is untouched."""
        await seed(db)
        assert await harness.deliver(make()) == 202  # type: ignore[operator]
        [(stored,)] = rows(harness.database_url, "SELECT reason FROM rejected_events")
        assert reason in str(stored).lower()
        assert rows(harness.database_url, "SELECT kind FROM alerts") == [("event_rejected",)]
        assert harness.appointment("appt-1") == (1, "booked")

    async def test_a_malformed_body_is_kept_and_alerted(self, harness: ChangeHarness, db: Database) -> None:
        """A signed event whose data is not a valid change is rejected with the field named."""
        await seed(db)
        event = announced("appt-1", 2, "cancelled", START, "loc-1", "cancelled")
        headers = dict(to_structured_event(event).headers)
        body = json.loads(to_structured_event(event).body)
        body["data"]["source_version"] = "two"
        status, _ = await harness.functions["dispatcher"].process(headers, json.dumps(body).encode())
        assert status == 202
        assert rows(harness.database_url, "SELECT kind FROM alerts") == [("event_rejected",)]
