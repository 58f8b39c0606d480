"""What mapping one source page gives the ETL, and the record rules both page formats share.

    PageMalformed    the page itself is unusable (not JSON, not the expected envelope): the
                     caller quarantines the whole page; no record on it is loaded

A bad *record* never raises: it becomes a ``Quarantined`` (its source id, a short reason with no
patient data, the raw JSON for audit) and the rest of the page still loads. Every record goes
through the domain models. Each batch holds an id once (the upsert touches a row once per
statement), and only the patients and locations of appointments it loads.

Contact points: numbers are normalised to E.164 (``default_region`` for national numbers); a
number that cannot be, or an email without a local part and a domain, is dropped and counted,
and its patient still loads. Without a stated preference a patient gets "both" if they have an
SMS number and an email address, else the channel they have, else "sms" (alerted later as
unreachable, never silently skipped).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast, get_args
from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel, ValidationError

from patient_notify.catalog import SourceBatch
from patient_notify.domain.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    ChannelPreference,
    ContactPoint,
    Location,
    Patient,
)
from patient_notify.errors import PatientNotifyError

__all__ = [
    "UNRANKED",
    "ContactCandidate",
    "InvalidRecord",
    "MappedPage",
    "PageMalformed",
    "PageParts",
    "PatientRecord",
    "Quarantined",
    "appointment_status",
    "aware_iso",
    "instant",
    "next_link",
    "patient_record",
    "validated",
]

UNRANKED = 100  # a contact point without a rank comes after every ranked one
_STATUSES = frozenset(get_args(AppointmentStatus))
_M = TypeVar("_M", bound=BaseModel)


class PageMalformed(PatientNotifyError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRecord(Exception):
    """One record cannot be loaded; the mappers turn it into a ``Quarantined``, never raise it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Quarantined:
    source_id: str  # "Appointment/123" (FHIR) or "appt-123" (JSON API); "" if unknown
    reason: str  # names fields and codes, never values a patient gave
    raw: str = field(repr=False)  # the record as JSON, for audit in the database: never logged


@dataclass(frozen=True)
class MappedPage:
    batch: SourceBatch
    quarantined: tuple[Quarantined, ...]
    next_url: str | None  # absolute; None on the last page
    fetched: int  # appointment records on the page, loaded or quarantined
    dropped_contacts: int = 0  # numbers and addresses of loaded patients that were unusable


@dataclass(frozen=True)
class ContactCandidate:
    channel: Channel
    value: object  # as the source wrote it
    rank: object = None


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    contacts: tuple[ContactPoint, ...]
    dropped_contacts: int


def aware_iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("query bounds must be timezone-aware datetimes")
    return value.isoformat()


def next_link(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise PageMalformed(f"{where}: not an absolute http(s) URL")
    return value


def appointment_status(value: object, where: str) -> AppointmentStatus:
    if value is None:
        raise InvalidRecord(f"{where}: missing")
    if not isinstance(value, str) or value not in _STATUSES:
        raise InvalidRecord(f"{where}: unknown code {str(value)[:40]!r}")
    return cast(AppointmentStatus, value)


def instant(value: object, where: str) -> datetime:
    """An ISO 8601 date-time with an offset; pydantic would also take a number as epoch seconds."""
    if value is None:
        raise InvalidRecord(f"{where}: missing")
    if not isinstance(value, str):
        raise InvalidRecord(f"{where}: expected a string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRecord(f"{where}: not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidRecord(f"{where}: no UTC offset")
    return parsed


def validated(model: type[_M], where: str, values: object) -> _M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidRecord(_reason_for(where, exc)) from None


def _reason_for(where: str, exc: ValidationError) -> str:
    """The first error's field and message; pydantic keeps the offending input out of ``msg``."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    path = "".join(f".{part}" for part in first["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}{path}: {first['msg']}{more}"


def patient_record(
    where: str, values: dict[str, Any], candidates: Iterable[ContactCandidate], region: str
) -> PatientRecord:
    usable, dropped = _normalised(candidates, region)
    if values.get("channel_preference") is None:
        values = {**values, "channel_preference": _default_preference({channel for channel, _ in usable})}
    patient = validated(Patient, where, values)
    contacts = tuple(ContactPoint(patient_id=patient.id, channel=c, value=v, rank=r) for (c, v), r in usable.items())
    return PatientRecord(patient, contacts, dropped)


def _normalised(candidates: Iterable[ContactCandidate], region: str) -> tuple[dict[tuple[Channel, str], int], int]:
    """Usable (channel, value) → best rank; and how many candidates were unusable."""
    best: dict[tuple[Channel, str], int] = {}
    dropped = 0
    for candidate in candidates:
        value = _sms_number(candidate.value, region) if candidate.channel == "sms" else _email(candidate.value)
        if value is None:
            dropped += 1
            continue
        rank = candidate.rank if type(candidate.rank) is int and candidate.rank >= 1 else UNRANKED
        best[candidate.channel, value] = min(rank, best.get((candidate.channel, value), rank))
    return best, dropped


def _sms_number(value: object, region: str) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    local, at, domain = text.rpartition("@")
    return text if at and local and domain and not any(c.isspace() for c in text) else None


def _default_preference(channels: set[Channel]) -> ChannelPreference:
    if channels == {"sms", "email"}:
        return "both"
    return "email" if channels == {"email"} else "sms"


@dataclass
class PageParts:
    """What one page has given so far; ``page()`` freezes it. Later duplicates replace earlier ones."""

    locations: dict[str, Location] = field(default_factory=dict)
    patients: dict[str, PatientRecord] = field(default_factory=dict)
    appointments: dict[str, Appointment] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    fetched: int = 0

    def keep(self, appointment: Appointment, patient: PatientRecord, location: Location) -> None:
        self.fetched += 1
        self.appointments[appointment.id] = appointment
        self.patients[patient.patient.id] = patient
        self.locations[location.id] = location

    def quarantine(self, source_id: str, reason: str, record: object, *, appointment: bool) -> None:
        self.fetched += appointment
        self.quarantined.append(Quarantined(source_id, reason, json.dumps(record, ensure_ascii=False)))

    def page(self, next_url: str | None) -> MappedPage:
        patients = self.patients.values()
        batch = SourceBatch(
            locations=tuple(self.locations.values()),
            patients=tuple(p.patient for p in patients),
            contacts=tuple(c for p in patients for c in p.contacts),
            appointments=tuple(self.appointments.values()),
        )
        dropped = sum(p.dropped_contacts for p in patients)
        return MappedPage(batch, tuple(self.quarantined), next_url, self.fetched, dropped)
