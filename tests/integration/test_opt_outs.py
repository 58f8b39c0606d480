"""Opt-outs and suppressions: nothing is ever sent to a number that said STOP or an address that bounced.

The senders and the dispatcher built by their own ``new()``, real PostgreSQL, the Twilio stand-in
and moto's SES; emitted events caught by a local ingress.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from cloudevents.core.bindings.http import to_binary_event

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.events import send_request
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.twilio import TwilioStandIn
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.integration.change_harness import reminder_due
from tests.support.functions import load_module
from tests.support.receiver import Receiver

ACCOUNT_SID = "AC" + "7" * 32
PHONE, EMAIL = "+12025550123", "ada@example.org"
REFUSED_AT_TWILIO = "+12025550177"  # Twilio answers 21610: the patient replied STOP to Twilio first
SENDER = "clinic@example.org"
START = (datetime.now(UTC) + timedelta(days=4)).replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def ses() -> Iterator[SesStandIn]:
    with SesStandIn() as stand_in:
        stand_in.verify_sender(SENDER)
        yield stand_in


class Functions:
    """The functions under test, their stand-ins and the ingress that catches what they emit."""

    def __init__(self, url: str, twilio: TwilioStandIn, ses: SesStandIn, ingress: Receiver) -> None:
        self.url, self.twilio, self.ses, self.ingress = url, twilio, ses, ingress
        common = {"DATABASE_URL": url, "BROKER_URL": ingress.url, "LOG_LEVEL": "WARNING"}
        self.cfgs = {
            "sms-sender": {**common, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "token",
                           "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url},
            "email-sender": {**common, "EMAIL_FROM": SENDER, "SES_REGION": ses.region,
                             "SES_ENDPOINT_URL": ses.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
                             "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY},
            "dispatcher": {**common, "APPOINTMENT_EVENTS_SECRET": "opt-out-tests-secret-0123456789abcdef"},
        }  # fmt: skip
        self.started: list[tuple[str, Any]] = []
        self.taken = 0  # emitted events already delivered

    def start(self, name: str, *, clock: Callable[[], float] | None = None, **overrides: str) -> Any:
        """The function built by its own ``new()`` and started; later calls by ``name`` use it."""
        module = load_module(name, "func")
        function = module.new(clock=clock) if clock is not None else module.new()
        function.start({**self.cfgs[name], **overrides})
        self.started.append((name, function))
        return function

    def function(self, name: str) -> Any:
        return next((f for n, f in self.started if n == name), None) or self.start(name)

    async def send(self, name: str, nid: int, channel: str, *, via: Any = None) -> int:
        """Deliver the send event for ``nid`` once (to ``via``, one of several instances); the status answered."""
        event = new_event(send_request(nid, "appt-1", channel), source="/tests", subject=str(nid))
        message = to_binary_event(event)
        status, _ = await (via or self.function(name)).process(dict(message.headers), message.body)
        return int(status)

    async def drain(self) -> None:
        """Deliver every event the functions emitted (and what those emit) to its function."""
        while self.ingress.requests[self.taken :]:
            pending, self.taken = self.ingress.requests[self.taken :], len(self.ingress.requests)
            for headers, body in pending:
                name = {
                    "org.patientnotify.sms.send.v1": "sms-sender",
                    "org.patientnotify.email.send.v1": "email-sender",
                }
                status, _ = await self.function(name.get(headers["ce-type"], "dispatcher")).process(headers, body)
                assert status == 200

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def sql(self, sql: str, *params: object) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.encode(), params)

    def ses_sent_to(self, address: str, since: int) -> list[str]:
        return [m.message_id for m in self.ses.sent_messages()[since:] if address in m.to and m.source == SENDER]


@pytest.fixture
async def system(migrated_database_url: str, ses: SesStandIn) -> AsyncIterator[Functions]:
    with ExitStack() as stack:
        ingress = stack.enter_context(Receiver())
        twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, "token", opted_out_numbers={REFUSED_AT_TWILIO}))
        functions = Functions(migrated_database_url, twilio, ses, ingress)
        try:
            yield functions
        finally:
            for _, function in functions.started:
                await function.aclose()


async def seed(db: Database, *, preference: str = "both", phone: str | None = PHONE, email: str | None = EMAIL,
               appointments: tuple[str, ...] = ("appt-1",)) -> None:  # fmt: skip
    contacts = [make_contact(value=phone)] if phone else []
    contacts += [make_contact(channel="email", value=email)] if email else []
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [make_location()], [make_patient(channel_preference=preference)], contacts,
            [make_appointment(id=a, starts_at=START) for a in appointments],
        ))  # fmt: skip


async def queued(db: Database, channel: str, recipient: str, appointment_id: str = "appt-1") -> int:
    """A notification the dispatcher planned (before any opt-out arrived)."""
    async with db.transaction() as tx:
        rows = await tx.all("claim_notifications", {
            "natural_keys": [f"reminder:{appointment_id}:{channel}:x"], "appointment_ids": [appointment_id],
            "appointment_versions": [1], "kinds": ["reminder"], "channels": [channel], "recipients": [recipient],
            "languages": ["en"], "subjects": ["Reminder"], "bodies": ["Hi, see you soon."], "hold_until": [None],
        })  # fmt: skip
    return int(rows[0]["id"])


def status_of(system: Functions, nid: int) -> tuple[str, str | None]:
    [(status, reason)] = system.rows("SELECT status, skip_reason FROM notifications WHERE id = %s", nid)
    return status, reason


class TestSmsOptOut:
    async def test_stop_blocks_the_reminder_and_start_lets_the_next_one_through(
        self, system: Functions, db: Database
    ) -> None:
        """A STOP recorded after planning: skipped, no call; after START the next reminder is sent."""
        await seed(db, appointments=("appt-1", "appt-2"))
        first = await queued(db, "sms", PHONE)
        system.sql("INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", PHONE)

        assert await system.send("sms-sender", first, "sms") == 200
        assert status_of(system, first) == ("skipped", "opted out") and system.twilio.attempts == 0

        system.sql("DELETE FROM sms_opt_outs WHERE number = %s", PHONE)  # START
        second = await queued(db, "sms", PHONE, "appt-2")
        assert await system.send("sms-sender", second, "sms") == 200
        assert status_of(system, second) == ("sent", None) and [m.to for m in system.twilio.messages] == [PHONE]

    async def test_twilio_21610_records_the_opt_out_and_never_retries(self, system: Functions, db: Database) -> None:
        """Twilio's 21610: the number is opted out from then on, the message failed, answered 200 (no retry)."""
        await seed(db, preference="sms", phone=REFUSED_AT_TWILIO, email=None)
        nid = await queued(db, "sms", REFUSED_AT_TWILIO)

        assert await system.send("sms-sender", nid, "sms") == 200
        assert await system.send("sms-sender", nid, "sms") == 200  # a redelivery changes nothing

        assert status_of(system, nid) == ("failed", None) and system.twilio.attempts == 1
        assert system.rows("SELECT number, source FROM sms_opt_outs") == [(REFUSED_AT_TWILIO, "provider:21610")]
        assert system.rows("SELECT kind, severity FROM alerts") == [("delivery_failed", "critical")]

    async def test_an_opt_out_written_during_the_claim_is_never_missed(self, system: Functions, db: Database) -> None:
        """A STOP committing while the claim looks is seen: the claim waits for it, then skips."""
        await seed(db)
        nid = await queued(db, "sms", PHONE)
        with psycopg.connect(system.url) as stop:  # the webhooks function, mid-transaction
            stop.execute(b"INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", (PHONE,))
            claim = asyncio.create_task(system.send("sms-sender", nid, "sms"))
            await _until(lambda: _advisory_waiters(system) == 1)
            stop.commit()
        assert await claim == 200
        assert status_of(system, nid) == ("skipped", "opted out") and system.twilio.attempts == 0

    async def test_a_stop_during_the_pacing_wait_stops_the_sms(self, system: Functions, db: Database) -> None:
        """Claimed, then waiting for its pacing turn when the STOP commits: re-read after the wait, no call."""
        await seed(db, appointments=("appt-1", "appt-2"))
        first, second = await queued(db, "sms", PHONE), await queued(db, "sms", PHONE, "appt-2")
        system.start("sms-sender", TWILIO_MAX_MPS="0.1")  # turns 10 s apart: the second waits
        assert await system.send("sms-sender", first, "sms") == 200
        waiting = asyncio.create_task(system.send("sms-sender", second, "sms"))
        await _until(lambda: status_of(system, second)[0] == "sending")  # claimed, now waiting for its turn
        system.sql("INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", PHONE)
        assert await waiting == 200
        assert status_of(system, second) == ("skipped", "opted out") and system.twilio.attempts == 1


class TestEmailSuppression:
    async def test_a_suppressed_address_is_never_written_to(self, system: Functions, db: Database) -> None:
        """A bounced address (stored lower-cased): skipped 'suppressed', SES never called."""
        await seed(db)
        nid = await queued(db, "email", "Ada@Example.org")
        system.sql("INSERT INTO email_suppressions (address, reason) VALUES ('ada@example.org', 'bounce')")
        before = len(system.ses.sent_messages())

        assert await system.send("email-sender", nid, "email") == 200

        assert status_of(system, nid) == ("skipped", "suppressed") and len(system.ses.sent_messages()) == before

    async def test_a_bounce_during_the_pacing_wait_stops_the_email(self, system: Functions, db: Database) -> None:
        """Claimed, then waiting for its SES turn when the address is suppressed: re-read after the wait, no call."""
        await seed(db, appointments=("appt-1", "appt-2"))
        first, second = await queued(db, "email", EMAIL), await queued(db, "email", EMAIL, "appt-2")
        system.start("email-sender", SES_MAX_RATE="0.1")  # turns 10 s apart: the second waits
        before = len(system.ses.sent_messages())
        assert await system.send("email-sender", first, "email") == 200
        waiting = asyncio.create_task(system.send("email-sender", second, "email"))
        await _until(lambda: status_of(system, second)[0] == "sending")  # claimed, now waiting for its turn
        system.sql("INSERT INTO email_suppressions (address, reason) VALUES (lower(%s), 'bounce')", EMAIL)
        assert await waiting == 200
        assert status_of(system, second) == ("skipped", "suppressed")
        assert len(system.ses.sent_messages()) == before + 1


class TestChannelChoice:
    async def test_a_both_patient_who_opted_out_of_sms_still_gets_email(self, system: Functions, db: Database) -> None:
        """The dispatcher treats the opted-out number as unusable: email only, and a warning."""
        await seed(db)
        system.sql("INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", PHONE)
        await dispatch_reminder(system)
        assert _planned(system) == [("email", EMAIL)]
        assert system.rows("SELECT kind, severity FROM alerts") == [("no_usable_contact", "warning")]

    # EMAIL_FALLBACK -> what an SMS-only patient whose number opted out gets
    @pytest.mark.parametrize(("email_fallback", "planned", "severity"), [
        ("true", [("email", EMAIL)], "warning"),  # consent by site policy: email instead, alerted
        ("false", [], "critical"),  # no consent: nothing can be sent, a person must act
    ])  # fmt: skip
    async def test_an_sms_only_patient_who_opted_out(
        self, system: Functions, db: Database, email_fallback: str, planned: list[tuple[str, str]], severity: str
    ) -> None:
        """An SMS-only patient who said STOP is emailed only where the site allows the fallback."""
        await seed(db, preference="sms")
        system.start("dispatcher", EMAIL_FALLBACK=email_fallback)
        system.sql("INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", PHONE)
        await dispatch_reminder(system)
        assert _planned(system) == planned
        assert system.rows("SELECT kind, severity FROM alerts") == [("no_usable_contact", severity)]

    async def test_a_suppressed_address_is_not_planned(self, system: Functions, db: Database) -> None:
        """An email-only patient whose address bounced gets no email planned, and a critical alert."""
        await seed(db, preference="email")
        system.sql("INSERT INTO email_suppressions (address, reason) VALUES (%s, 'complaint')", EMAIL)
        await dispatch_reminder(system)
        assert _planned(system) == []
        assert system.rows("SELECT kind, severity FROM alerts") == [("no_usable_contact", "critical")]


async def dispatch_reminder(system: Functions, appointment_id: str = "appt-1") -> None:
    message = to_binary_event(reminder_due(appointment_id, START, "America/New_York"))
    status, _ = await system.function("dispatcher").process(dict(message.headers), message.body)
    assert status == 200


def _planned(system: Functions) -> list[tuple[str, str]]:
    return [(str(c), str(r)) for c, r in system.rows("SELECT channel, recipient FROM notifications ORDER BY id")]


def _advisory_waiters(system: Functions) -> int:
    # This test's database only: pg_locks shows the whole cluster, other runs included.
    [(count,)] = system.rows(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(count)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for a condition on the database (polled: another session's lock wait has no event to await)."""
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110 - another session's lock wait sets no event to await
            await asyncio.sleep(0.01)
