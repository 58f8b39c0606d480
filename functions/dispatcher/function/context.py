"""Row → domain records for the dispatcher's one read (``dispatch_context``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patient_notify.domain.dispatch import DispatchContext
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient


def context_from_row(row: Mapping[str, Any]) -> DispatchContext:
    return DispatchContext(
        appointment=Appointment(
            id=row["id"], patient_id=row["patient_id"], location_id=row["location_id"],
            starts_at=row["starts_at"], status=row["status"], version=row["version"],
        ),
        patient=Patient(
            id=row["patient_id"], given_name=row["given_name"], family_name=row["family_name"],
            language=row["language"], timezone=row["patient_timezone"],
            channel_preference=row["channel_preference"],
        ),
        location=Location(
            id=row["location_id"], name=row["location_name"], address=row["location_address"],
            phone=row["location_phone"], timezone=row["location_timezone"],
        ),
        contacts=tuple(ContactPoint.model_validate(c) for c in row["contacts"]),
    )  # fmt: skip
