"""Writes the cached source records (locations, patients, contacts, appointments) set-based.

Each appointment's reminder plan is computed here, in the patient's zone (else the clinic's),
so the scheduler's tick is one indexed query. A record repeated in a batch counts once (the
last copy wins): a statement may not update the same row twice.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from patient_notify.db import Transaction
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient
from patient_notify.domain.reminders import reminder_plan_for
from patient_notify.errors import DatabaseError

__all__ = ["SourceBatch", "save_batch"]

T = TypeVar("T")


@dataclass(frozen=True)
class SourceBatch:
    locations: Sequence[Location] = ()
    patients: Sequence[Patient] = ()
    contacts: Sequence[ContactPoint] = ()  # for the batch's patients: their complete current set
    appointments: Sequence[Appointment] = ()


async def save_batch(tx: Transaction, batch: SourceBatch, *, seen_at: datetime | None = None) -> list[dict[str, Any]]:
    """Upsert everything; returns one row per appointment with its old and new version and facts."""
    locations = _last_wins(batch.locations, lambda x: x.id)
    patients = _last_wins(batch.patients, lambda p: p.id)
    contacts = _last_wins(batch.contacts, lambda c: (c.patient_id, c.channel, c.value))
    await tx.run("upsert_locations", {
        "ids": [x.id for x in locations], "names": [x.name for x in locations],
        "addresses": [x.address for x in locations], "phones": [x.phone for x in locations],
        "timezones": [x.timezone for x in locations],
    })  # fmt: skip
    await tx.run("upsert_patients", {
        "ids": [p.id for p in patients], "given_names": [p.given_name for p in patients],
        "family_names": [p.family_name for p in patients], "languages": [p.language for p in patients],
        "timezones": [p.timezone for p in patients],
        "preferences": [p.channel_preference for p in patients],
    })  # fmt: skip
    contact_columns = {
        "patient_ids": [c.patient_id for c in contacts], "channels": [c.channel for c in contacts],
        "values": [c.value for c in contacts],
    }  # fmt: skip
    await tx.run("prune_contact_points", {**contact_columns, "batch_patient_ids": [p.id for p in patients]})
    await tx.run("upsert_contact_points", {**contact_columns, "ranks": [c.rank for c in contacts]})
    appointments = _last_wins(batch.appointments, lambda a: a.id)
    return await _save_appointments(tx, appointments, seen_at or datetime.now(UTC))


async def _save_appointments(
    tx: Transaction, appointments: Sequence[Appointment], seen_at: datetime
) -> list[dict[str, Any]]:
    if not appointments:
        return []
    rows = await tx.all("appointment_zones", {
        "ids": [a.id for a in appointments],
        "patient_ids": [a.patient_id for a in appointments],
        "location_ids": [a.location_id for a in appointments],
    })  # fmt: skip
    zones = {row["id"]: ZoneInfo(row["timezone"]) for row in rows}
    if missing := [a.id for a in appointments if a.id not in zones]:
        raise DatabaseError(f"appointments without a known patient or location: {missing[:5]}")
    plans = [reminder_plan_for(a.id, a.starts_at, zones[a.id]) for a in appointments]
    await tx.all("lock_appointments", {"ids": [a.id for a in appointments]})
    rows = await tx.all("upsert_appointments", {
        "ids": [a.id for a in appointments], "patient_ids": [a.patient_id for a in appointments],
        "location_ids": [a.location_id for a in appointments],
        "starts": [a.starts_at for a in appointments], "statuses": [a.status for a in appointments],
        "local_dates": [p.local_date for p in plans], "due": [p.due_at for p in plans],
        "window_ends": [p.window_end for p in plans], "seen_at": seen_at,
        "source_versions": [a.source_version for a in appointments],
    })  # fmt: skip
    await tx.run("touch_appointments", {"ids": [a.id for a in appointments], "seen_at": seen_at})
    return rows


def _last_wins(records: Iterable[T], key: Any) -> list[T]:
    unique: dict[Hashable, T] = {}
    for record in records:
        unique[key(record)] = record
    return list(unique.values())
