"""Random interleavings of changes and reminders, delivered out of order and twice: what the patient gets."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from cloudevents.core.base import BaseCloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.codec import decode_http
from patient_notify.db import Database
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.integration.change_harness import ChangeHarness, announced, change_harness, reminder_due

ZONE = "America/New_York"
SERIAL = itertools.count(1000)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("reschedule"), st.integers(1, 96)),  # move by this many hours
        st.tuples(st.just("relocate"), st.just(0)),  # to the other clinic
        st.tuples(st.just("cancel"), st.just(0)),
        st.tuples(st.just("reminder"), st.just(0)),  # the scheduler finds the reminder due
        st.tuples(st.just("deliver"), st.integers(0, 10_000)),  # any pending event, out of order
        st.tuples(st.just("redeliver"), st.integers(0, 10_000)),  # a duplicate of a delivered one
    ),
    min_size=1, max_size=25,
)  # fmt: skip


@dataclass
class World:
    """The appointment system's truth and the broker's pool of undelivered and delivered events."""

    appointment_id: str
    start: datetime
    location: str = "loc-1"
    status: str = "booked"
    source_version: int = 1
    pending: list[BaseCloudEvent] = field(default_factory=list)
    delivered: list[BaseCloudEvent] = field(default_factory=list)


@pytest.fixture
def harness(migrated_database_url: str, loop: asyncio.AbstractEventLoop) -> Iterator[ChangeHarness]:
    context = change_harness(migrated_database_url)
    h = loop.run_until_complete(context.__aenter__())
    yield h
    loop.run_until_complete(context.__aexit__(None, None, None))


class TestInterleavings:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(operations=OPERATIONS, seed=st.integers(0, 2**16))
    def test_patient_only_gets_current_details_and_one_notice_per_version(
        self, harness: ChangeHarness, loop: asyncio.AbstractEventLoop, operations: list[tuple[str, int]], seed: int
    ) -> None:
        """Whatever the order and duplication: every message sent matches the version current when it was
        sent, nothing but the cancellation notice follows a cancellation, one notice per version and channel."""
        loop.run_until_complete(_scenario(harness, operations, random.Random(seed)))


async def _scenario(h: ChangeHarness, operations: list[tuple[str, int]], rng: random.Random) -> None:
    n = next(SERIAL)
    world = World(f"prop-{n}", (datetime.now(UTC) + timedelta(days=8)).replace(second=0, microsecond=0))
    phone, email = f"+1202555{n % 10_000:04d}", f"prop{n}@example.org"
    db = Database(h.database_url, max_size=1)
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [make_location(), make_location(id="loc-2", name="Hilltop Clinic")],
            [make_patient(id=f"pat-{n}")],
            [make_contact(patient_id=f"pat-{n}", value=phone), make_contact(patient_id=f"pat-{n}", channel="email", value=email)],
            [make_appointment(id=world.appointment_id, patient_id=f"pat-{n}", starts_at=world.start, source_version=1)],
        ))  # fmt: skip
    await db.close()
    for operation, argument in operations:
        await _apply(h, world, operation, argument)
    while world.pending:  # the broker eventually delivers everything, in its own order
        await _apply(h, world, "deliver", rng.randrange(len(world.pending)))
    _check_at_most_once(h, world, phone, email)


async def _apply(h: ChangeHarness, world: World, operation: str, argument: int) -> None:
    if operation in ("reschedule", "relocate", "cancel") and world.status == "booked":
        world.source_version += 1
        if operation == "reschedule":
            world.start += timedelta(hours=argument)
        elif operation == "relocate":
            world.location = "loc-2" if world.location == "loc-1" else "loc-1"
        else:
            world.status = "cancelled"
        reason = {"reschedule": "rescheduled", "relocate": "relocated", "cancel": "cancelled"}[operation]
        world.pending.append(
            announced(world.appointment_id, world.source_version, reason, world.start, world.location, world.status)
        )
    elif operation == "reminder":
        world.pending.append(reminder_due(world.appointment_id, world.start, ZONE))
    elif operation == "deliver" and world.pending:
        await _deliver(h, world, world.pending.pop(argument % len(world.pending)))
    elif operation == "redeliver" and world.delivered:
        await _deliver(h, world, world.delivered[argument % len(world.delivered)])


async def _deliver(h: ChangeHarness, world: World, event: BaseCloudEvent) -> None:
    before = {row[0] for row in _sent_rows(h, world)}
    status = await h.deliver(event)  # type: ignore[arg-type]
    assert status in (200, 202), status
    world.delivered.append(event)
    world.pending.extend(decode_http(headers, body) for headers, body in h.emitted())
    version, current_status = h.appointment(world.appointment_id)
    for notification_id, kind, notified_version in _sent_rows(h, world):
        if notification_id in before:
            continue
        assert notified_version == version, f"{kind} for v{notified_version} sent while v{version} is current"
        if current_status == "cancelled":
            assert kind == "cancellation", f"a {kind} was sent after the cancellation"


def _sent_rows(h: ChangeHarness, world: World) -> list[tuple[Any, ...]]:
    with psycopg.connect(h.database_url) as conn:
        return conn.execute(
            "SELECT id, kind, appointment_version FROM notifications WHERE appointment_id = %s AND status = 'sent'",
            (world.appointment_id,),
        ).fetchall()


def _check_at_most_once(h: ChangeHarness, world: World, phone: str, email: str) -> None:
    with psycopg.connect(h.database_url) as conn:
        sent = conn.execute(
            "SELECT kind, appointment_version, channel, count(*) FROM notifications"
            " WHERE appointment_id = %s AND status = 'sent' GROUP BY 1, 2, 3", (world.appointment_id,)
        ).fetchall()  # fmt: skip
    assert all(count == 1 for *_, count in sent)
    sms_rows = sum(count for kind, _, channel, count in sent if channel == "sms")
    email_rows = sum(count for kind, _, channel, count in sent if channel == "email")
    assert sum(m.to == phone for m in h.twilio.messages) == sms_rows  # no provider call without its row
    assert sum(email in m.rcpt_tos for m in h.smtp.messages) == email_rows
