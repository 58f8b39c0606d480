"""The cached source records: what we know about patients, their contacts, clinics, appointments."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Appointment",
    "AppointmentStatus",
    "Channel",
    "ChannelPreference",
    "ContactPoint",
    "Location",
    "Patient",
    "is_e164",
    "is_zone",
]

Channel = Literal["sms", "email"]
ChannelPreference = Literal["sms", "email", "both"]
AppointmentStatus = Literal[
    "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
    "noshow", "entered-in-error", "checked-in", "waitlist",
]  # fmt: skip


def is_e164(value: str) -> bool:
    """A dialable international number written in E.164 (``+`` and digits only)."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted == value and phonenumbers.is_valid_number(parsed)


def is_zone(name: str) -> bool:
    """An IANA zone name zoneinfo knows ("Europe" is a folder, not a zone)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, such as "Europe"
        return False
    return True


def _zone(name: str) -> str:
    if not is_zone(name):
        raise ValueError(f"unknown IANA time zone {name!r}")
    return name


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(_Record):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    address: str = ""
    phone: str = Field(min_length=3)
    timezone: str

    _check_zone = field_validator("timezone")(_zone)


class Patient(_Record):
    id: str = Field(min_length=1)
    given_name: str = Field(min_length=1)
    family_name: str = ""
    language: str = "en"
    timezone: str | None = None
    channel_preference: ChannelPreference

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class ContactPoint(_Record):
    patient_id: str
    channel: Channel
    value: str
    rank: int = 1
    opted_out: bool = False

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: str) -> str:
        return value.strip()

    def usable(self) -> bool:
        if self.opted_out:
            return False
        return is_e164(self.value) if self.channel == "sms" else "@" in self.value.strip("@")


class Appointment(_Record):
    id: str = Field(min_length=1)
    patient_id: str
    location_id: str
    starts_at: AwareDatetime
    status: AppointmentStatus
    version: int = Field(default=1, ge=1)  # ours: bumped by every change of time, venue or status
    # The appointment system's own version (FHIR meta.versionId, announced source_version): an
    # older one never overwrites a newer one.
    source_version: int | None = Field(default=None, ge=1)
