"""Writes the cached source records (locations, patients, contacts, appointments) set-based.

Each appointment's reminder plan is computed here, in the patient's zone (else the clinic's),
so the scheduler's tick is one indexed query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from patient_notify.db import Transaction
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient
from patient_notify.domain.reminders import reminder_plan_for

__all__ = ["SourceBatch", "save_batch"]


@dataclass(frozen=True)
class SourceBatch:
    locations: Sequence[Location] = ()
    patients: Sequence[Patient] = ()
    contacts: Sequence[ContactPoint] = ()
    appointments: Sequence[Appointment] = field(default_factory=tuple)


async def save_batch(tx: Transaction, batch: SourceBatch) -> None:
    await tx.run("upsert_locations", {
        "ids": [x.id for x in batch.locations], "names": [x.name for x in batch.locations],
        "addresses": [x.address for x in batch.locations],
        "phones": [x.phone for x in batch.locations],
        "timezones": [x.timezone for x in batch.locations],
    })  # fmt: skip
    await tx.run("upsert_patients", {
        "ids": [p.id for p in batch.patients], "given_names": [p.given_name for p in batch.patients],
        "family_names": [p.family_name for p in batch.patients],
        "languages": [p.language for p in batch.patients],
        "timezones": [p.timezone for p in batch.patients],
        "preferences": [p.channel_preference for p in batch.patients],
    })  # fmt: skip
    await tx.run("upsert_contact_points", {
        "patient_ids": [c.patient_id for c in batch.contacts],
        "channels": [c.channel for c in batch.contacts],
        "values": [c.value for c in batch.contacts], "ranks": [c.rank for c in batch.contacts],
    })  # fmt: skip
    await _save_appointments(tx, batch.appointments)


async def _save_appointments(tx: Transaction, appointments: Sequence[Appointment]) -> None:
    rows = await tx.all("appointment_zones", {
        "ids": [a.id for a in appointments],
        "patient_ids": [a.patient_id for a in appointments],
        "location_ids": [a.location_id for a in appointments],
    })  # fmt: skip
    zones = {row["id"]: ZoneInfo(row["timezone"]) for row in rows}
    plans = [reminder_plan_for(a.id, a.starts_at, zones[a.id]) for a in appointments]
    await tx.run("upsert_appointments", {
        "ids": [a.id for a in appointments], "patient_ids": [a.patient_id for a in appointments],
        "location_ids": [a.location_id for a in appointments],
        "starts": [a.starts_at for a in appointments], "statuses": [a.status for a in appointments],
        "versions": [a.version for a in appointments],
        "local_dates": [p.local_date for p in plans], "due": [p.due_at for p in plans],
        "window_ends": [p.window_end for p in plans],
    })  # fmt: skip
