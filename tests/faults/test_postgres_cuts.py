"""The sms-sender's PostgreSQL connections cut at each step of a send (DESIGN §5).

The sms-sender runs as its own func-python process whose ``DATABASE_URL`` goes through a fault
proxy in front of the real PostgreSQL; the send event is delivered as its Trigger would (again
after each 5xx). Cuts before the claim and after the commit cost a retry and nothing else:
exactly one SMS. A cut between Twilio's acceptance and the commit leaves the provider holding a
message we could not record: it must end ``unknown`` with a ``delivery_unknown`` alert (the
monitor's reconciliation), never resent and never silent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from patient_notify.catalog import SourceBatch
from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.events import send_request
from sandbox.faultproxy import FaultProxy
from sandbox.ses import SesStandIn
from sandbox.twilio import SentSms
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.conftest import _admin as admin
from tests.conftest import database_url
from tests.faults.conftest import Figures
from tests.faults.harness import System, load_batch, start_system

SENDER_RETRIES = 6  # knative/base/triggers.yaml, sms-sender


@pytest.fixture(scope="module")
def database(template_database: str) -> Iterator[str]:
    """One database for the module's scenarios (each its own appointment): the processes start once."""
    name = f"pn_faults_{uuid.uuid4().hex[:12]}"
    admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield database_url(name)
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def postgres_proxy(database: str) -> Iterator[FaultProxy]:
    address = urlsplit(database)
    with FaultProxy(address.hostname or "127.0.0.1", address.port or 5432) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def system(database: str, postgres_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    address = urlsplit(database)
    proxied = address._replace(netloc=f"{address.username}@{postgres_proxy.address}").geturl()
    with ExitStack() as stack:
        ses = stack.enter_context(SesStandIn())
        yield start_system(stack, database, ses, tmp_path_factory.mktemp("cuts"), functions=("sms-sender", "monitor"),
                           settings={"sms-sender": {"DATABASE_URL": proxied}})  # fmt: skip


@pytest.fixture(autouse=True)
def healed(postgres_proxy: FaultProxy, system: System) -> Iterator[None]:
    """Each scenario starts with a reachable database and no listeners on Twilio."""
    yield
    postgres_proxy.heal()
    system.twilio.listeners.clear()


def queued_sms(system: System, appointment_id: str, phone: str) -> int:
    """A reminder the dispatcher planned: queued, its send event about to be delivered."""
    load_batch(system.database_url, batch=_batch(appointment_id, phone))

    async def claim() -> int:
        db = Database(system.database_url, max_size=1)
        try:
            async with db.transaction() as tx:
                rows = await tx.all("claim_notifications", {
                    "natural_keys": [f"reminder:{appointment_id}:sms:cut"], "appointment_ids": [appointment_id],
                    "appointment_versions": [1], "kinds": ["reminder"], "channels": ["sms"], "recipients": [phone],
                    "languages": ["en"], "subjects": [""], "bodies": ["See you soon."], "hold_until": [None],
                })  # fmt: skip
        finally:
            await db.close()
        return int(rows[0]["id"])

    return asyncio.run(claim())


def _batch(appointment_id: str, phone: str) -> SourceBatch:
    patient = f"pat-{appointment_id}"
    return SourceBatch(
        [make_location()], [make_patient(id=patient, channel_preference="sms")],
        [make_contact(patient_id=patient, value=phone)],
        [make_appointment(id=appointment_id, patient_id=patient, starts_at=datetime.now(UTC) + timedelta(days=4))],
    )  # fmt: skip


def deliver(system: System, notification_id: int) -> int:
    """One delivery of the send event by the sms-sender Trigger: the status the function answered."""
    event = new_event(send_request(notification_id, "appt", "sms"), source="/patient-notify/dispatcher",
                      subject=str(notification_id), event_id=f"send-{notification_id}")  # fmt: skip
    return system.post(system.functions["sms-sender"].url, event)


def deliver_until_handled(system: System, notification_id: int) -> list[int]:
    """Delivered as the Trigger does: again after each 5xx, up to its 6 retries. Each pooled
    connection the cut killed fails one request before the pool replaces it."""
    answers = [deliver(system, notification_id)]
    while answers[-1] >= 500 and len(answers) <= SENDER_RETRIES:
        answers.append(deliver(system, notification_id))
    return answers


def sent_to(system: System, phone: str) -> int:
    return sum(1 for m in system.twilio.messages if m.to == phone)


def status(system: System, notification_id: int) -> str:
    return str(system.rows("SELECT status FROM notifications WHERE id = %s", notification_id)[0][0])


def database_gone(proxy: FaultProxy) -> None:
    """Every open connection reset, and every new one until ``heal()``."""
    proxy.reset_next(None)
    proxy.cut_all()


class TestPostgresCut:
    def test_cut_before_the_claim_costs_a_retry_and_sends_once(
        self, system: System, postgres_proxy: FaultProxy, figures: Figures
    ) -> None:
        """No database at the claim: 503 and no provider call; a redelivery sends it, once."""
        phone, before = "+12025550141", system.twilio.attempts
        nid = queued_sms(system, "appt-before", phone)
        database_gone(postgres_proxy)
        first = deliver(system, nid)
        assert (first, system.twilio.attempts - before, status(system, nid)) == (503, 0, "queued")
        postgres_proxy.heal()
        answers = [first, *deliver_until_handled(system, nid), deliver(system, nid)]  # and a late duplicate
        figures(answers=answers, sms=sent_to(system, phone), status=status(system, nid))
        assert answers[-2:] == [200, 200] and sent_to(system, phone) == 1 and status(system, nid) == "sent"

    def test_cut_between_provider_call_and_commit_ends_unknown_and_alerted(
        self, system: System, postgres_proxy: FaultProxy, figures: Figures
    ) -> None:
        """Twilio accepted, the database went before 'sent' was recorded: never resent; the monitor
        finds the claim stale and records it ``unknown`` with a delivery_unknown alert."""
        phone = "+12025550142"
        nid = queued_sms(system, "appt-between", phone)

        def cut_on_accept(_: SentSms) -> None:  # runs in Twilio's handler, before its 201 goes back
            database_gone(postgres_proxy)

        system.twilio.listeners.append(cut_on_accept)
        first = deliver(system, nid)
        system.twilio.listeners.remove(cut_on_accept)
        assert (first, status(system, nid)) == (503, "sending")  # the outcome could not be recorded
        postgres_proxy.heal()
        redelivered = deliver_until_handled(system, nid)  # the claim looks in flight: not sent again
        assert (redelivered[-1], status(system, nid)) == (200, "sending")
        # Later than the sender's 120 s staleness rule, the monitor reconciles.
        assert system.tick_monitor(datetime.now(UTC) + timedelta(minutes=3)) == 200
        after_monitor = deliver(system, nid)  # a redelivery now finds it settled as unknown
        alerts = system.rows("SELECT kind, severity FROM alerts WHERE subject = %s AND kind LIKE 'delivery_%%'",
                             str(nid))  # fmt: skip
        figures(answers=[first, *redelivered, after_monitor], sms=sent_to(system, phone),
                status=status(system, nid), alerts=alerts)  # fmt: skip
        assert after_monitor == 200 and sent_to(system, phone) == 1
        assert status(system, nid) == "unknown"
        assert alerts == [("delivery_unknown", "critical")]

    def test_cut_after_the_commit_sends_once(
        self, system: System, postgres_proxy: FaultProxy, figures: Figures
    ) -> None:
        """Sent and recorded, then the database goes and the event comes again: 503, later 'already sent'."""
        phone = "+12025550143"
        nid = queued_sms(system, "appt-after", phone)
        first = deliver_until_handled(system, nid)
        assert (first[-1], status(system, nid)) == (200, "sent")
        database_gone(postgres_proxy)
        duplicate = deliver(system, nid)
        postgres_proxy.heal()
        answers = [*first, duplicate, *deliver_until_handled(system, nid)]
        figures(answers=answers, sms=sent_to(system, phone), status=status(system, nid))
        assert duplicate == 503 and answers[-1] == 200
        assert sent_to(system, phone) == 1 and status(system, nid) == "sent"
        alerts = system.rows("SELECT count(*) FROM alerts WHERE subject = %s AND kind LIKE 'delivery_%%'", str(nid))
        assert alerts == [(0,)]
