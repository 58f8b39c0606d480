"""Applying a change the appointment system announced: newest version wins, once."""

from __future__ import annotations

import logging

from cloudevents.core.base import BaseCloudEvent

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.changelog import record_changes
from patient_notify.db import Transaction
from patient_notify.domain.changes import changes_in
from patient_notify.domain.models import Appointment
from patient_notify.errors import EventRejected
from patient_notify.events import AppointmentChanged, ChangeNoticeDue

log = logging.getLogger(__name__)


async def apply_announced_change(
    tx: Transaction, event: BaseCloudEvent, announced: AppointmentChanged
) -> ChangeNoticeDue | None:
    """Update the cached appointment; the change to notify about, or None (stale or no difference)."""
    params = {"appointment_id": announced.appointment_id, "location_id": announced.location_id}
    row = await tx.one("lock_appointment_for_change", params)
    if row is None:
        raise EventRejected(f"unknown appointment {announced.appointment_id}: not loaded by the ETL yet",
                            event_type=AppointmentChanged.TYPE)  # fmt: skip
    if not row["location_known"]:
        raise EventRejected(f"unknown location {announced.location_id}", event_type=AppointmentChanged.TYPE)
    if row["source_version"] is not None and announced.source_version <= row["source_version"]:
        outcome = "stale" if announced.source_version < row["source_version"] else "same version"
        await tx.run("set_processed_outcome", {"source": event.get_source(), "id": event.get_id(), "outcome": outcome})
        log.info("change.ignored", extra={"appointment_id": announced.appointment_id, "reason": outcome})
        return None
    current = Appointment(
        id=announced.appointment_id, patient_id=row["patient_id"], location_id=announced.location_id,
        starts_at=announced.starts_at, status=announced.status, source_version=announced.source_version,
    )  # fmt: skip
    rows = await save_batch(tx, SourceBatch(appointments=[current]))
    changes = changes_in(rows, detected_by=event.get_source())
    await record_changes(tx, changes)
    return changes[0] if changes else None
