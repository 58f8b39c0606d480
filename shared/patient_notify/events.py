"""Every event the system accepts or emits: its CloudEvent type constant beside its data schema."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from patient_notify.domain.models import AppointmentStatus

__all__ = [
    "EVENT_MODELS",
    "PING",
    "AppointmentChanged",
    "AppointmentFacts",
    "ChangeNoticeDue",
    "ChangeReason",
    "EmailSendRequested",
    "EventData",
    "PingTick",
    "ReminderDue",
    "SmsSendRequested",
    "send_request",
]

PING = "dev.knative.sources.ping"
SOURCE_PREFIX = "/patient-notify"
INT_MAX, BIGINT_MAX = 2**31 - 1, 2**63 - 1  # the PostgreSQL columns these numbers are stored in


class EventData(BaseModel):
    """Base of every event's data: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]


class PingTick(EventData):
    """A PingSource tick; the event's ``time`` is the instant it stands for."""

    model_config = ConfigDict(frozen=True, extra="allow")
    TYPE: ClassVar[str] = PING
    job: str | None = None


class ReminderDue(EventData):
    """The scheduler found an appointment whose reminder is due; the dispatcher picks channels."""

    TYPE: ClassVar[str] = "org.patientnotify.reminder.due.v1"
    appointment_id: str = Field(min_length=1)
    appointment_version: int = Field(ge=1, le=INT_MAX)
    local_date: date
    due_at: AwareDatetime
    late: bool = False


class _SendRequested(EventData):
    notification_id: int = Field(ge=1, le=BIGINT_MAX)
    appointment_id: str = Field(min_length=1)
    channel: Literal["sms", "email"]


class SmsSendRequested(_SendRequested):
    """One SMS to send; the sender loads recipient and text from the notification row."""

    TYPE: ClassVar[str] = "org.patientnotify.sms.send.v1"
    channel: Literal["sms"] = "sms"


class EmailSendRequested(_SendRequested):
    """One email to send; the sender loads recipient and text from the notification row."""

    TYPE: ClassVar[str] = "org.patientnotify.email.send.v1"
    channel: Literal["email"] = "email"


class AppointmentFacts(BaseModel):
    """The details a patient acts on; a change to any of them is announced."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    starts_at: AwareDatetime
    location_id: str
    status: AppointmentStatus


ChangeReason = Literal["rescheduled", "relocated", "cancelled", "rebooked", "status-changed"]


class AppointmentChanged(EventData):
    """PUBLIC: the appointment system announces that an appointment moved, changed venue or was
    cancelled. Signed (``pnsignature``, ``pnsignedat``); ``source_version`` orders announcements."""

    TYPE: ClassVar[str] = "org.patientnotify.appointment.changed.v1"
    appointment_id: str = Field(min_length=1, max_length=200)
    source_version: int = Field(ge=1, le=INT_MAX)  # the appointment system's own version: an older one is ignored
    reason: Literal["rescheduled", "relocated", "cancelled", "rebooked"]
    starts_at: AwareDatetime
    location_id: str = Field(min_length=1, max_length=200)
    status: AppointmentStatus


class ChangeNoticeDue(EventData):
    """A new version of an appointment's facts exists (the ETL saw it): tell the patient."""

    TYPE: ClassVar[str] = "org.patientnotify.notice.due.v1"
    appointment_id: str = Field(min_length=1)
    version: int = Field(ge=1, le=INT_MAX)  # ours after the change: one notice per (appointment, version, channel)
    reason: ChangeReason
    previous: AppointmentFacts
    current: AppointmentFacts
    detected_by: str


EVENT_MODELS: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (PingTick, ReminderDue, SmsSendRequested, EmailSendRequested, AppointmentChanged, ChangeNoticeDue)
}


def send_request(notification_id: int, appointment_id: str, channel: str) -> EventData:
    """The send event for one notification on its channel."""
    model = SmsSendRequested if channel == "sms" else EmailSendRequested
    return model(notification_id=notification_id, appointment_id=appointment_id)
