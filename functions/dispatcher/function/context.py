"""Row → domain records for the dispatcher's read (``dispatch_context``, ``sender_blocked_contacts``).

Opted-out numbers and suppressed addresses reach the planners marked unusable, so channel choice
never picks them (``patient_notify.domain.channels``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from patient_notify.domain.channels import usable_contacts
from patient_notify.domain.dispatch import DispatchContext
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient


def context_from_row(
    row: Mapping[str, Any], blocked: Collection[tuple[str, str]] = (), *, email_fallback: bool = True
) -> DispatchContext:
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
        contacts=usable_contacts(row["channel_preference"], (ContactPoint.model_validate(c) for c in row["contacts"]),
                                 blocked, email_fallback=email_fallback),
    )  # fmt: skip
