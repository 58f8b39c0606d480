"""Which failed notifications and dead letters may be sent again, and how (pure).

A failed notification is never moved back (``notification_transitions`` is forward-only, and a
late receipt for the first attempt must not land on the retry): the retry is a new notification
claimed by ``<natural key>:redrive:<n>``, linked by ``redrive_of``, with the same text, to the
patient's usable contact point on that channel now (the fix for "invalid number" is new contact
data). It is refused when the message would be wrong or pointless: a fallback on another channel
carries it (unless that failed too), the appointment changed (the newer notice tells the patient),
passed, is no longer listed, or a reminder's appointment is no longer booked; or when no contact
point is usable (none, opted out or suppressed).

A dead letter is re-sent as the same event (id, source, type, data), so its consumer deduplicates
it like any redelivery. Refused: ticks (the next tick does their work), the appointment system's
signed announcements (the signature was not kept: the announcement would be rejected), and events
whose data was not kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from patient_notify.events import PING, AppointmentChanged

__all__ = ["DeadLetter", "FailedCandidate", "Redrive", "Refusal", "plan_dead_letter", "plan_redrive", "redrive_key"]

_FALLBACK_FAILED = frozenset({"failed", "undelivered", "skipped"})
_REDRIVE_SUFFIX = re.compile(r"^(?P<base>.*):redrive:(?P<n>\d+)$")


@dataclass(frozen=True)
class FailedCandidate:
    id: int
    natural_key: str
    status: str
    kind: str
    channel: str
    recipient: str
    appointment_id: str
    appointment_version: int
    current_version: int
    appointment_status: str
    starts_at: datetime
    missing_from_source: bool
    redriven_as: int | None
    fallback_id: int | None  # the message on another channel, sent in its place
    fallback_status: str | None
    usable_contact: str | None


@dataclass(frozen=True)
class Redrive:
    notification_id: int
    natural_key: str
    recipient: str


@dataclass(frozen=True)
class Refusal:
    id: int
    reason: str


@dataclass(frozen=True)
class DeadLetter:
    id: int
    event_source: str
    event_id: str
    event_type: str
    has_data: bool
    received_at: datetime
    redriven_at: datetime | None


def redrive_key(natural_key: str) -> str:
    """``k`` → ``k:redrive:1``; ``k:redrive:1`` → ``k:redrive:2``."""
    if match := _REDRIVE_SUFFIX.match(natural_key):
        return f"{match['base']}:redrive:{int(match['n']) + 1}"
    return f"{natural_key}:redrive:1"


def plan_redrive(c: FailedCandidate, now: datetime) -> Redrive | Refusal:
    if reason := _refusal(c, now):
        return Refusal(c.id, reason)
    assert c.usable_contact is not None  # _refusal checked it
    return Redrive(c.id, redrive_key(c.natural_key), c.usable_contact)


def plan_dead_letter(d: DeadLetter) -> Refusal | None:
    """None: re-stage it."""
    if d.redriven_at is not None:
        return Refusal(d.id, "already redriven")
    if d.event_type == PING:
        return Refusal(d.id, "a tick: the next tick does its work")
    if d.event_type == AppointmentChanged.TYPE:
        return Refusal(d.id, "signed by the appointment system and the signature was not kept: ask it to resend")
    if not d.has_data:
        return Refusal(d.id, "its data was not JSON and was not kept")
    return None


def _refusal(c: FailedCandidate, now: datetime) -> str | None:
    if c.status != "failed":
        return f"status is {c.status}: only failed notifications are redriven"
    if c.redriven_as is not None:
        return f"already redriven as #{c.redriven_as}"
    if c.fallback_id is not None and c.fallback_status not in _FALLBACK_FAILED:
        return f"its fallback #{c.fallback_id} ({c.fallback_status}) tells the patient on another channel"
    if c.missing_from_source:
        return "the appointment is no longer listed by the source"
    if c.starts_at <= now:
        return "the appointment has passed"
    if c.current_version != c.appointment_version:
        v, current = c.appointment_version, c.current_version
        return f"the appointment changed (v{v} → v{current}): the notice for v{current} tells the patient"
    if c.kind == "reminder" and c.appointment_status != "booked":
        return f"the appointment is {c.appointment_status}"
    if c.usable_contact is None:
        return f"no usable {c.channel} contact point now (none, opted out or suppressed)"
    return None
