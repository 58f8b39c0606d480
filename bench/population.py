"""N appointments whose reminders are all due at one tick, written through the ETL's own upsert.

Every appointment is on one local day in one zone, so every reminder window is the same
09:00-12:00 three days before; the tick at the window's end finds them all due and none late.
Patients choose sms, email or both in turn and have both a mobile number and an address, so the
stand-ins must accept exactly one message per (recipient, channel) in ``expected``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient
from patient_notify.domain.reminders import reminder_plan_for

__all__ = ["DuePopulation", "due_population", "seed"]

ZONE = "America/New_York"
PREFERENCES = ("sms", "email", "both")
BATCH = 5000  # records per transaction while seeding


@dataclass(frozen=True)
class DuePopulation:
    count: int
    day: date  # the appointments' local day
    tick_at: datetime  # every reminder is due, none late
    expected: frozenset[tuple[str, str]]  # (recipient, channel)

    def batches(self) -> Iterator[SourceBatch]:
        clinic = Location(id="loc-bench", name="Riverside Clinic", address="1 Main St", phone="+12025550100",
                          timezone=ZONE)  # fmt: skip
        for first in range(0, self.count, BATCH):
            numbers = range(first, min(first + BATCH, self.count))
            patients, appointments = [_patient(i) for i in numbers], [self._appointment(i) for i in numbers]
            yield SourceBatch([clinic], patients, [c for i in numbers for c in _contacts(i)], appointments)

    def _appointment(self, i: int) -> Appointment:
        starts = datetime.combine(self.day, time(8 + i % 9, 15 * (i % 4)), ZoneInfo(ZONE))
        return Appointment(id=f"appt-{i}", patient_id=f"pat-{i}", location_id="loc-bench", starts_at=starts,
                           status="booked", source_version=1)  # fmt: skip


def due_population(count: int, today: date) -> DuePopulation:
    """Appointments ten days after ``today``; their reminders fall due seven days after it."""
    day = today + timedelta(days=10)
    plan = reminder_plan_for("appt-0", datetime.combine(day, time(9), ZoneInfo(ZONE)), ZoneInfo(ZONE))
    expected = {(_phone(i), "sms") for i in range(count) if PREFERENCES[i % 3] != "email"}
    expected |= {(_email(i), "email") for i in range(count) if PREFERENCES[i % 3] != "sms"}
    return DuePopulation(count, day, plan.window_end, frozenset(expected))


def seed(url: str, population: DuePopulation) -> None:
    asyncio.run(_seed(url, population))


async def _seed(url: str, population: DuePopulation) -> None:
    db = Database(url, max_size=1)
    try:
        for batch in population.batches():
            async with db.transaction() as tx:
                await save_batch(tx, batch)
    finally:
        await db.close()


def _patient(i: int) -> Patient:
    return Patient(id=f"pat-{i}", given_name="Pat", family_name=f"Bench{i}", channel_preference=PREFERENCES[i % 3])


def _contacts(i: int) -> list[ContactPoint]:
    return [ContactPoint(patient_id=f"pat-{i}", channel="sms", value=_phone(i)),
            ContactPoint(patient_id=f"pat-{i}", channel="email", value=_email(i))]  # fmt: skip


def _phone(i: int) -> str:
    return f"+1202{2_000_000 + i:07d}"  # unique and valid (exchanges 200-999) up to eight million


def _email(i: int) -> str:
    return f"patient{i}@example.org"
