"""What the dispatcher decides for a due reminder: which messages to claim, which alerts to raise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from patient_notify.domain.alerts import Alert
from patient_notify.domain.channels import ChannelChoice, choose_channels
from patient_notify.domain.models import (
    Appointment,
    Channel,
    ContactPoint,
    Location,
    Patient,
)
from patient_notify.domain.templates import MessageFacts, language_for, render_reminder

__all__ = ["DispatchContext", "DispatchDecision", "NotificationIntent", "plan_reminder_dispatch", "unreachable_alerts"]


@dataclass(frozen=True)
class DispatchContext:
    appointment: Appointment
    patient: Patient
    location: Location
    contacts: Sequence[ContactPoint]

    @property
    def patient_zone(self) -> ZoneInfo:
        return ZoneInfo(self.patient.timezone or self.location.timezone)


@dataclass(frozen=True)
class NotificationIntent:
    natural_key: str
    appointment_id: str
    appointment_version: int
    kind: str
    channel: Channel
    recipient: str
    language: str
    subject: str
    body: str
    hold_until: datetime | None = None  # quiet hours: no send event until then


@dataclass(frozen=True)
class DispatchDecision:
    notifications: tuple[NotificationIntent, ...] = ()
    alerts: tuple[Alert, ...] = ()
    skipped: str | None = None  # why nothing is sent, when nothing is


def plan_reminder_dispatch(local_date: date, ctx: DispatchContext) -> DispatchDecision:
    """One reminder per chosen channel, rendered with the appointment's current details."""
    appt = ctx.appointment
    if appt.status != "booked":
        return DispatchDecision(skipped=f"appointment {appt.status}")
    if appt.starts_at.astimezone(ctx.patient_zone).date() != local_date:
        return DispatchDecision(skipped="appointment moved to another day")
    choice = choose_channels(ctx.patient.channel_preference, ctx.contacts)
    alerts = unreachable_alerts(appt.id, choice, f"{local_date}", "reminder")
    language = language_for(ctx.patient.language)
    facts = MessageFacts(
        given_name=ctx.patient.given_name,
        starts_at_local=appt.starts_at.astimezone(ZoneInfo(ctx.location.timezone)),
        venue=ctx.location.name, address=ctx.location.address, phone=ctx.location.phone,
    )  # fmt: skip
    intents = []
    for target in choice.targets:
        text = render_reminder(target.channel, language, facts)
        intents.append(NotificationIntent(
            f"reminder:{appt.id}:{target.channel}:{local_date.isoformat()}", appt.id, appt.version,
            "reminder", target.channel, target.address, language, text.subject, text.body,
        ))  # fmt: skip
    return DispatchDecision(tuple(intents), alerts)


def unreachable_alerts(appointment_id: str, choice: ChannelChoice, occasion: str, what: str) -> tuple[Alert, ...]:
    """One alert per chosen channel without a usable contact: critical when nothing can be sent."""
    return tuple(
        Alert(f"unreachable:{appointment_id}:{channel}:{occasion}", "no_usable_contact",
              "critical" if not choice.targets else "warning", appointment_id,
              f"{what} for appointment {appointment_id}: patient has no usable {channel} contact point")
        for channel in choice.unreachable
    )  # fmt: skip
