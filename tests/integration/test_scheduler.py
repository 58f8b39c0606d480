"""The scheduler's tick against real PostgreSQL, its broker ingress faked at the HTTP boundary."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.events import PingTick, ReminderDue
from patient_notify.function import Runtime
from patient_notify.outbox import Publisher
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.support.functions import load_module

scheduler_module = load_module("scheduler", "func")
INGRESS = "http://ingress.test/"  # answered by the MockTransport; never resolved
CONCURRENCY = 4  # small, so a handful of reminders fill several publish chunks


@dataclass
class Ingress:
    """Keeps every event's id and answers ``status``; its clock says each POST took one second."""

    event_ids: list[str] = field(default_factory=list)
    status: int = 202

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.event_ids.append(request.headers["ce-id"])
        return httpx.Response(self.status)

    def clock(self) -> float:
        return float(len(self.event_ids))


@dataclass
class Harness:
    db: Database
    ingress: Ingress
    scheduler: Any
    publisher: Publisher

    async def tick(self, at: datetime) -> None:
        await self.scheduler.on_tick(new_event(PingTick(job="plan-reminders"), source="/test", time=at))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db.url) as conn:
            return conn.execute(sql.encode()).fetchall()

    def run(self, sql: str) -> None:
        with psycopg.connect(self.db.url) as conn:
            conn.execute(sql.encode())

    def all_due(self) -> datetime:
        """The instant every seeded reminder is due at and none is late (they share one window)."""
        [(latest,)] = self.rows("SELECT max(reminder_due_at) FROM appointments")
        return latest  # type: ignore[no-any-return]


@pytest.fixture
async def harness(db: Database) -> AsyncIterator[Harness]:
    settings = scheduler_module.SchedulerSettings.from_cfg({
        "DATABASE_URL": db.url, "BROKER_URL": INGRESS, "PUBLISH_CONCURRENCY": str(CONCURRENCY),
    })  # fmt: skip
    ingress = Ingress()
    async with httpx.AsyncClient(transport=httpx.MockTransport(ingress)) as http:
        publisher = Publisher(db, INGRESS, http, CONCURRENCY)
        runtime = Runtime("scheduler", db, publisher, http)
        yield Harness(db, ingress, scheduler_module.Scheduler(runtime, settings, clock=ingress.clock), publisher)


async def _seed(db: Database, count: int, starts_at: datetime) -> None:
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [make_location()], [make_patient(id=f"p{i}") for i in range(count)],
            [make_contact(patient_id=f"p{i}") for i in range(count)],
            [make_appointment(id=f"a{i}", patient_id=f"p{i}", starts_at=starts_at) for i in range(count)],
        ))  # fmt: skip


def _reminders(h: Harness) -> dict[str, dict[str, Any]]:
    """The staged "reminder due" events' data, by appointment."""
    rows = [(s, d) for s, t, d in h.rows("SELECT subject, type, data FROM outbox") if t == ReminderDue.TYPE]
    assert len(rows) == len(dict(rows)), "a reminder was staged twice"
    return dict(rows)


STARTS = datetime.now(UTC).replace(microsecond=0) + timedelta(days=4)


class TestPlanning:
    async def test_each_due_reminder_is_staged_once_with_the_event_pydantic_would_write(self, harness: Harness) -> None:
        """The SQL-built data is ReminderDue's own JSON (microseconds too), in the outbox exactly once per reminder."""
        await _seed(harness.db, 3, STARTS)
        harness.run("UPDATE appointments SET reminder_due_at = reminder_due_at + interval '0.25 s' WHERE id = 'a2'")
        appointments = {r[0]: r[1:] for r in harness.rows(
            "SELECT id, version, reminder_local_date, reminder_due_at FROM appointments")}  # fmt: skip
        await harness.tick(harness.all_due())
        expected = {
            i: ReminderDue(appointment_id=i, appointment_version=v, local_date=d, due_at=due).model_dump(mode="json")
            for i, (v, d, due) in appointments.items()
        }  # fmt: skip
        assert _reminders(harness) == expected
        assert expected["a2"]["due_at"].endswith(".250000Z")  # the microseconds case was exercised

    async def test_a_tick_run_twice_plans_nothing_twice(self, harness: Harness) -> None:
        """The broker redelivering a tick (or two ticks at once) stages and sends each reminder once."""
        await _seed(harness.db, 5, STARTS)
        at = harness.all_due()
        await harness.tick(at)
        await harness.tick(at)
        assert sorted(_reminders(harness)) == [f"a{i}" for i in range(5)]
        assert len(harness.ingress.event_ids) == len(set(harness.ingress.event_ids)) == 5

    async def test_a_reminder_planned_after_its_window_is_flagged_late_and_alerted(self, harness: Harness) -> None:
        """Past 12:00 local (but before the cutoff) the reminder still goes, marked late, with a warning."""
        await _seed(harness.db, 1, STARTS)
        [(window_end,)] = harness.rows("SELECT reminder_window_end FROM appointments")
        await harness.tick(window_end + timedelta(hours=1))
        assert _reminders(harness)["a0"]["late"] is True
        assert harness.rows("SELECT kind, subject FROM alerts") == [("reminder_late", "a0")]


class TestShortNotice:
    """Late because of the booking, not an outage: counted in one warning a day, not alerted one by one."""

    async def test_an_appointment_booked_after_its_window_is_reminded_late_under_one_warning(
        self, harness: Harness
    ) -> None:
        """Booked two days ahead: the reminder still goes (late), and the day's short-notice warning counts it."""
        now = datetime.now(UTC)
        await _seed(harness.db, 2, now + timedelta(days=2))
        await harness.tick(now)
        assert sorted(_reminders(harness)) == ["a0", "a1"] and all(r["late"] for r in _reminders(harness).values())
        assert harness.rows("SELECT kind, severity, subject FROM alerts") == [
            ("reminder_short_notice", "warning", f"{now:%Y-%m-%d}")]  # fmt: skip

    async def test_a_move_to_a_nearer_day_counts_as_short_notice_and_an_outage_does_not(self, harness: Harness) -> None:
        """a0 known in time and planned late (an outage): its own reminder_late. a1 moved to two days
        ahead: its new reminder day was known only after its window, so it is counted, not alerted."""
        now = datetime.now(UTC)
        await _seed(harness.db, 2, now + timedelta(days=4))
        harness.run("UPDATE appointments SET reminder_planned_at = now() - interval '4 days'")  # known long ago
        async with harness.db.transaction() as tx:
            await save_batch(tx, SourceBatch(appointments=[
                make_appointment(id="a1", patient_id="p1", starts_at=now + timedelta(days=2), version=2)]))  # fmt: skip
        [(window_end,)] = harness.rows("SELECT reminder_window_end FROM appointments WHERE id = 'a0'")
        await harness.tick(window_end + timedelta(hours=1))  # the outage: a0's window passed unplanned
        kinds = {subject: kind for kind, subject in harness.rows("SELECT kind, subject FROM alerts")}
        assert kinds == {"a0": "reminder_late", f"{window_end + timedelta(hours=1):%Y-%m-%d}": "reminder_short_notice"}

    async def test_an_appointment_booked_inside_the_cutoff_is_counted_not_called_in(self, harness: Harness) -> None:
        """Booked for six hours from now: no reminder is possible; one warning, no critical reminder_missed."""
        now = datetime.now(UTC)
        await _seed(harness.db, 1, now + timedelta(hours=6))
        await harness.tick(now)
        assert _reminders(harness) == {}
        assert harness.rows("SELECT kind, severity FROM alerts") == [("reminder_short_notice", "warning")]


class TestPublishBudget:
    async def test_a_tick_stops_publishing_when_its_budget_is_spent_and_the_drain_sends_the_rest(
        self, harness: Harness
    ) -> None:
        """More reminders than the budget allows: the tick answers, the next drain sends the rest, none twice."""
        chunk = CONCURRENCY * scheduler_module.CHUNK_ROUNDS
        in_budget = chunk * math.ceil(scheduler_module.PUBLISH_BUDGET_S / chunk)  # one POST costs a second
        count = in_budget + chunk + 3
        await _seed(harness.db, count, STARTS)
        await harness.tick(harness.all_due())
        assert len(harness.ingress.event_ids) == in_budget
        [(pending,)] = harness.rows("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert pending == count - in_budget
        report = await harness.publisher.drain(min_age_s=0)
        assert (report.published, report.failed) == (count - in_budget, 0)
        staged = [r[0] for r in harness.rows("SELECT event_id FROM outbox")]
        assert sorted(harness.ingress.event_ids) == sorted(staged) and len(set(staged)) == count

    async def test_the_earliest_due_reminders_are_published_first(self, harness: Harness) -> None:
        """What the tick sends within its budget is the front of the queue, not an arbitrary part of it."""
        chunk = CONCURRENCY * scheduler_module.CHUNK_ROUNDS
        in_budget = chunk * math.ceil(scheduler_module.PUBLISH_BUDGET_S / chunk)
        await _seed(harness.db, in_budget + chunk, STARTS)
        await harness.tick(harness.all_due())
        due = {r[0]: r[1] for r in harness.rows(
            "SELECT o.event_id, a.reminder_due_at FROM outbox o JOIN appointments a ON a.id = o.subject")}  # fmt: skip
        sent = [due[i] for i in harness.ingress.event_ids]
        unsent = [t for i, t in due.items() if i not in set(harness.ingress.event_ids)]
        assert len(unsent) == chunk and max(sent) <= min(unsent)

    async def test_a_failing_ingress_stops_the_tick_after_one_chunk_and_nothing_is_lost(self, harness: Harness) -> None:
        """Refused chunks are not retried in the same tick; once the ingress is back a drain sends every event once."""
        chunk = CONCURRENCY * scheduler_module.CHUNK_ROUNDS
        await _seed(harness.db, 3 * chunk, STARTS)
        harness.ingress.status = 503
        await harness.tick(harness.all_due())
        assert len(harness.ingress.event_ids) == chunk
        harness.ingress.status, harness.ingress.event_ids = 202, []
        report = await harness.publisher.drain(min_age_s=0)
        staged = [r[0] for r in harness.rows("SELECT event_id FROM outbox")]
        assert (report.published, sorted(harness.ingress.event_ids)) == (3 * chunk, sorted(staged))
