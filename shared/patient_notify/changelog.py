"""The record of each version bump: written with the bump, read to build the notice."""

from __future__ import annotations

import json
from collections.abc import Sequence

from patient_notify.db import Transaction
from patient_notify.errors import EventRejected
from patient_notify.events import ChangeNoticeDue

__all__ = ["record_changes", "recorded_change"]


async def record_changes(tx: Transaction, changes: Sequence[ChangeNoticeDue]) -> None:
    await tx.run("record_appointment_versions", {
        "appointment_ids": [c.appointment_id for c in changes], "versions": [c.version for c in changes],
        "reasons": [c.reason for c in changes],
        "previous": [c.previous.model_dump_json() for c in changes],
        "current": [c.current.model_dump_json() for c in changes],
        "detected_by": [c.detected_by for c in changes],
    })  # fmt: skip


async def recorded_change(tx: Transaction, appointment_id: str, version: int) -> ChangeNoticeDue:
    """The change as the database recorded it; an event naming a change nobody made is rejected."""
    row = await tx.one("appointment_version", {"appointment_id": appointment_id, "version": version})
    if row is None:
        raise EventRejected(f"no recorded change to version {version} of appointment {appointment_id}",
                            event_type=ChangeNoticeDue.TYPE)  # fmt: skip
    return ChangeNoticeDue.model_validate({
        **row, "previous": _obj(row["previous"]), "current": _obj(row["current"]),
    })  # fmt: skip


def _obj(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value
