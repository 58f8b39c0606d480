"""The plain JSON appointments API (sites without FHIR) → ``MappedPage``. Pure.

    GET {base}/appointments?from=<iso>&to=<iso>[&updated_since=<iso>]&limit=<n>
    → {"appointments": [record, ...], "next": "<absolute url>" | null}

One record is one appointment with its patient and location inside it; the schema is
``docs/json-api.schema.json``. The record is the unit of quarantine: a record that breaks the
schema, has a status outside the FHIR value set, or whose patient or location is invalid is
quarantined whole (source id: the appointment's id). Within a well-formed record, phone numbers
and addresses that cannot be used are dropped as in FHIR (see ``mapping``); ``updated_at`` is
not used; ``version`` (optional) is the appointment system's own version of the record.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from patient_notify.domain.models import Appointment, Location

from .mapping import (
    ContactCandidate,
    InvalidRecord,
    MappedPage,
    PageMalformed,
    PageParts,
    PatientRecord,
    appointment_status,
    aware_iso,
    instant,
    next_link,
    patient_record,
    validated,
)

__all__ = ["first_json_url", "map_json_page"]


class _Wire(BaseModel):
    # Strict: a number is not a string here. Unknown fields are ignored, so the API can grow.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Phone(_Wire):
    number: str
    rank: int | None = None


class _Email(_Wire):
    address: str
    rank: int | None = None


class _Patient(_Wire):
    id: str
    given_name: str
    family_name: str = ""
    language: str = "en"
    timezone: str | None = None
    channel_preference: str | None = None
    phones: list[_Phone] = Field(default_factory=list)
    emails: list[_Email] = Field(default_factory=list)


class _Location(_Wire):
    id: str
    name: str
    address: str = ""
    phone: str
    timezone: str | None = None


class _Record(_Wire):
    id: str
    status: str
    start: str
    version: int | None = Field(default=None, ge=1, lt=2**31)
    patient: _Patient | None = None
    location: _Location | None = None


def first_json_url(base_url: str, *, start: datetime, end: datetime, since: datetime | None, page_size: int) -> str:
    params = {"from": aware_iso(start), "to": aware_iso(end)}
    if since is not None:
        params["updated_since"] = aware_iso(since)
    return f"{base_url.rstrip('/')}/appointments?{urlencode({**params, 'limit': str(page_size)})}"


def map_json_page(body: bytes, *, default_zone: str, default_region: str) -> MappedPage:
    page = _envelope(body)
    parts = PageParts()
    for raw in page["appointments"]:
        source_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            parts.keep(*_record(raw, default_zone, default_region))
        except InvalidRecord as bad:
            parts.quarantine(source_id if isinstance(source_id, str) else "", bad.reason, raw, appointment=True)
    return parts.page(next_link(page.get("next"), "next"))


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        page = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise PageMalformed("not JSON") from None
    if not isinstance(page, dict) or not isinstance(page.get("appointments"), list):
        raise PageMalformed("not an appointments page (no 'appointments' list)")
    return page


def _record(raw: object, zone: str, region: str) -> tuple[Appointment, PatientRecord, Location]:
    record = validated(_Record, "appointment", raw)
    status = appointment_status(record.status, "appointment.status")
    starts_at = instant(record.start, "appointment.start")
    if record.patient is None:
        raise InvalidRecord("appointment.patient: missing")
    if record.location is None:
        raise InvalidRecord("appointment.location: missing")
    patient, location = _patient(record.patient, region), _location(record.location, zone)
    values = {"id": record.id, "patient_id": patient.patient.id, "location_id": location.id,
              "starts_at": starts_at, "status": status, "source_version": record.version}  # fmt: skip
    return validated(Appointment, "appointment", values), patient, location


def _patient(wire: _Patient, region: str) -> PatientRecord:
    values = wire.model_dump(exclude={"phones", "emails"})
    candidates = [ContactCandidate("sms", p.number, p.rank) for p in wire.phones]
    candidates += [ContactCandidate("email", e.address, e.rank) for e in wire.emails]
    return patient_record("patient", values, candidates, region)


def _location(wire: _Location, zone: str) -> Location:
    return validated(Location, "location", {**wire.model_dump(), "timezone": wire.timezone or zone})
