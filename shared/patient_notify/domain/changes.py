"""What changed in an appointment between two writes: the facts a change notice is built from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patient_notify.events import AppointmentFacts, ChangeNoticeDue

__all__ = ["changes_in"]


def changes_in(rows: Sequence[Mapping[str, Any]], *, detected_by: str) -> list[ChangeNoticeDue]:
    """One event per appointment whose version moved; new and unchanged appointments give none."""
    return [
        _changed(row, detected_by)
        for row in rows
        if row["old_version"] is not None and row["version"] > row["old_version"]
    ]


def _changed(row: Mapping[str, Any], detected_by: str) -> ChangeNoticeDue:
    before = AppointmentFacts(
        starts_at=row["old_starts_at"], location_id=row["old_location_id"], status=row["old_status"]
    )
    after = AppointmentFacts(starts_at=row["starts_at"], location_id=row["location_id"], status=row["status"])
    return ChangeNoticeDue(
        appointment_id=row["id"], version=row["version"], reason=_reason(before, after),
        previous=before, current=after, detected_by=detected_by,
    )  # fmt: skip


def _reason(before: AppointmentFacts, after: AppointmentFacts) -> str:
    if after.status == "cancelled" and before.status != "cancelled":
        return "cancelled"
    if before.status == "cancelled" and after.status == "booked":
        return "rebooked"
    if after.status != before.status:
        return "status-changed"
    return "rescheduled" if after.starts_at != before.starts_at else "relocated"
