"""Channel fallback: an SMS that cannot reach the patient is replaced by one email.

When: an SMS that surely did not arrive — ``failed`` (the sms-sender calls this for the refusals
about the number itself: Twilio 21211, 21614, 21610; SNS InvalidParameter), ``undelivered`` (the
webhooks function, on a receipt), or ``skipped`` because the number opted out. Never for a message
that may yet arrive (``sent``, ``unknown``).

Consent (``patient_notify.domain.channels``): ``both`` and ``email`` patients chose email; an
``sms`` patient only through the site's ``EMAIL_FALLBACK`` (default true), passed here as
``email_fallback``. Every caller passes its own setting of it.

What: the same occasion (appointment, kind, version) planned again on email alone, by the
dispatcher's own planners, so it is rendered with the same templates and claims the dispatcher's
natural key for that email. Hence exactly one email per occasion: a ``both`` patient's planned
email, or an earlier fallback, makes this one a no-op (``covered``). Nothing is planned when the
appointment changed since the SMS (the change notice tells the patient) or is no longer booked.
The new row points at the SMS (``fallback_of``, one per message), both status histories say so,
and its ``email.send.v1`` event is staged in the caller's transaction: publish
``Fallback.outbox_ids`` after commit (the outbox drain re-sends it otherwise).

    async with db.transaction() as tx:
        ...                                         # mark the SMS undelivered
        fallback = await fallback_to_email(tx, notification_id, email_fallback=settings.email_fallback)
    await runtime.publisher.publish(fallback.outbox_ids)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from patient_notify.changelog import recorded_change
from patient_notify.codec import new_event
from patient_notify.db import Transaction
from patient_notify.domain.channels import email_fallback_contacts, usable_contacts
from patient_notify.domain.dispatch import DispatchContext, DispatchDecision, plan_reminder_dispatch
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient
from patient_notify.domain.notices import QuietHours, plan_change_notice
from patient_notify.domain.sending import fallback_blocker
from patient_notify.errors import EventRejected
from patient_notify.events import SOURCE_PREFIX, send_request
from patient_notify.outbox import stage

__all__ = ["Fallback", "fallback_to_email"]

log = logging.getLogger(__name__)
SOURCE = f"{SOURCE_PREFIX}/fallback"
_LIVE = frozenset({"queued", "sending", "sent", "delivered", "unknown"})  # may yet reach the patient


@dataclass(frozen=True)
class Fallback:
    email_id: int | None  # the email this call created
    outbox_ids: tuple[int, ...]  # its send event, staged: publish after commit
    covered: bool  # an email reaches (or may reach) the patient for this occasion
    reason: str  # what happened, for the alert and the log (ids only)


async def fallback_to_email(tx: Transaction, notification_id: int, *, email_fallback: bool = True) -> Fallback:
    """Replace an undeliverable SMS by one email for the same occasion, if the patient allows it."""
    sms = await tx.one("fallback_source", {"id": notification_id})
    if sms is None:
        return _none(notification_id, "unknown notification")
    if why_not := fallback_blocker(sms["channel"], sms["status"], sms["skip_reason"]):
        return _none(notification_id, why_not)
    ctx = await _context(tx, sms["appointment_id"], email_fallback=email_fallback)
    if ctx.appointment.version != sms["appointment_version"]:
        return _none(notification_id, "appointment changed since: its notice tells the patient")
    decision = await _plan_again(tx, sms, ctx)
    if not decision.notifications:
        return _none(notification_id, decision.skipped or "no usable email address the patient allows")
    return await _claim(tx, notification_id, decision)


async def _context(tx: Transaction, appointment_id: str, *, email_fallback: bool) -> DispatchContext:
    """The occasion's context with email as the only channel, and only the addresses allowed."""
    row = await tx.one("dispatch_context", {"appointment_id": appointment_id})
    assert row is not None  # the notification references the appointment
    rows = await tx.all("sender_blocked_contacts", {"patient_id": row["patient_id"]})
    blocked = {(b["channel"], b["value"]) for b in rows}
    preference = row["channel_preference"]
    contacts = usable_contacts(preference, (ContactPoint.model_validate(c) for c in row["contacts"]), blocked,
                               email_fallback=email_fallback)  # fmt: skip
    allowed = email_fallback_contacts(preference, contacts, email_fallback=email_fallback)
    return DispatchContext(_appointment(row), _patient_on_email(row), _location(row), allowed)


async def _plan_again(tx: Transaction, sms: Mapping[str, Any], ctx: DispatchContext) -> DispatchDecision:
    if sms["kind"] == "reminder":
        return plan_reminder_dispatch(ctx.appointment.starts_at.astimezone(ctx.patient_zone).date(), ctx)
    try:
        change = await recorded_change(tx, ctx.appointment.id, ctx.appointment.version)
    except EventRejected:
        return DispatchDecision(skipped="no recorded change for this version")
    names = await tx.all("location_names", {"ids": [change.previous.location_id]})
    return plan_change_notice(
        ctx, version=change.version, reason=change.reason, previous_start=change.previous.starts_at,
        previous_venue=next((r["name"] for r in names), ""), now=datetime.now(UTC), quiet=QuietHours(),
    )  # fmt: skip


async def _claim(tx: Transaction, sms_id: int, decision: DispatchDecision) -> Fallback:
    intent = replace(decision.notifications[0], hold_until=None)
    params = {**{k: getattr(intent, k) for k in _INTENT_FIELDS}, "fallback_of": sms_id}
    created = await tx.one("fallback_claim_email", params)
    if created is None:
        existing = await tx.one("fallback_existing_email", params)
        live = existing is not None and existing["status"] in _LIVE
        note = f"email for this occasion already exists: notification {existing['id']}" if existing else "no email"
        return Fallback(None, (), live, note)
    email_id = int(created["id"])
    await tx.run("fallback_record", {"id": sms_id, "email_id": email_id})
    event = new_event(send_request(email_id, intent.appointment_id, "email"), source=SOURCE, subject=str(email_id))
    outbox_ids = tuple(await stage(tx, [event]))
    log.info("fallback.staged", extra={"notification_id": sms_id, "channel": "email", "count": 1})
    return Fallback(email_id, outbox_ids, True, f"email fallback: notification {email_id}")


def _none(notification_id: int, reason: str) -> Fallback:
    log.info("fallback.none", extra={"notification_id": notification_id, "reason": reason})
    return Fallback(None, (), False, f"no email fallback: {reason}")


_INTENT_FIELDS = ("natural_key", "appointment_id", "appointment_version", "kind", "recipient", "language",
                  "subject", "body")  # fmt: skip


def _appointment(row: Mapping[str, Any]) -> Appointment:
    return Appointment(id=row["id"], patient_id=row["patient_id"], location_id=row["location_id"],
                       starts_at=row["starts_at"], status=row["status"], version=row["version"])  # fmt: skip


def _patient_on_email(row: Mapping[str, Any]) -> Patient:
    return Patient(id=row["patient_id"], given_name=row["given_name"], family_name=row["family_name"],
                   language=row["language"], timezone=row["patient_timezone"], channel_preference="email")  # fmt: skip


def _location(row: Mapping[str, Any]) -> Location:
    return Location(id=row["location_id"], name=row["location_name"], address=row["location_address"],
                    phone=row["location_phone"], timezone=row["location_timezone"])  # fmt: skip
