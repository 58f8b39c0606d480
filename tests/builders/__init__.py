"""Small builders for test records: ``make_patient(**overrides)`` and friends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient

__all__ = ["make_appointment", "make_contact", "make_location", "make_patient"]


def make_location(**overrides: Any) -> Location:
    values: dict[str, Any] = {
        "id": "loc-1", "name": "Riverside Clinic", "address": "1 River St",
        "phone": "+12025550100", "timezone": "America/New_York",
    }  # fmt: skip
    return Location(**{**values, **overrides})


def make_patient(**overrides: Any) -> Patient:
    values: dict[str, Any] = {
        "id": "pat-1", "given_name": "Ada", "family_name": "Lovelace", "language": "en",
        "timezone": None, "channel_preference": "both",
    }  # fmt: skip
    return Patient(**{**values, **overrides})


def make_contact(**overrides: Any) -> ContactPoint:
    values: dict[str, Any] = {"patient_id": "pat-1", "channel": "sms", "value": "+12025550123"}
    return ContactPoint(**{**values, **overrides})


def make_appointment(**overrides: Any) -> Appointment:
    values: dict[str, Any] = {
        "id": "appt-1", "patient_id": "pat-1", "location_id": "loc-1",
        "starts_at": datetime.now(UTC) + timedelta(days=4), "status": "booked", "version": 1,
    }  # fmt: skip
    return Appointment(**{**values, **overrides})
