"""dispatcher: due reminders and appointment changes → claimed notifications and send events.

Routes: reminder.due (scheduler), notice.due (changes the ETL saw), appointment.changed (signed
announcements from the appointment system). Every path claims one notification per
(appointment, version or reminder date, channel) and emits send events only for rows it created.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, time, timedelta

from cloudevents.core.base import BaseCloudEvent
from pydantic import Field, SecretStr

from patient_notify.alerts import raise_alerts
from patient_notify.changelog import recorded_change
from patient_notify.codec import model_from_event
from patient_notify.db import Transaction
from patient_notify.domain.dispatch import DispatchContext, DispatchDecision, plan_reminder_dispatch
from patient_notify.domain.notices import QuietHours, plan_change_notice
from patient_notify.errors import EventRejected
from patient_notify.events import AppointmentChanged, ChangeNoticeDue, ReminderDue
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.outbox import stage
from patient_notify.settings import Settings
from patient_notify.signing import verify_event

from .changes import apply_announced_change
from .claims import claim_and_stage, seen_before
from .context import context_from_row

log = logging.getLogger(__name__)
Plan = Callable[[Transaction], Awaitable[DispatchDecision | None]]


class DispatcherSettings(Settings):
    appointment_events_secret: SecretStr = Field(min_length=32)  # HMAC key shared with the appointment system
    appointment_events_previous_secret: SecretStr | None = Field(default=None, min_length=32)  # during rotation
    appointment_events_window_s: int = Field(default=300, ge=10, le=3600)
    notice_quiet_start: time | None = None  # e.g. 21:00 in the patient's zone; unset: no quiet hours
    notice_quiet_end: time | None = None
    notice_urgent_hours: float = Field(default=24.0, ge=0)  # closer to the appointment: send even in quiet hours
    email_fallback: bool = True  # an SMS-only patient whose number opted out is emailed (domain.channels)

    def quiet_hours(self) -> QuietHours:
        return QuietHours(self.notice_quiet_start, self.notice_quiet_end, timedelta(hours=self.notice_urgent_hours))

    def secrets(self) -> list[bytes]:
        keys = [self.appointment_events_secret, self.appointment_events_previous_secret]
        return [key.get_secret_value().encode() for key in keys if key is not None]


class Dispatcher:
    def __init__(self, runtime: Runtime, settings: DispatcherSettings) -> None:
        self._runtime = runtime
        self._settings = settings

    async def on_reminder_due(self, event: BaseCloudEvent) -> None:
        due = model_from_event(event, ReminderDue)

        async def plan(tx: Transaction) -> DispatchDecision | None:
            return plan_reminder_dispatch(due.local_date, await self._context(tx, due.appointment_id))

        await self._dispatch(event, plan)

    async def on_notice_due(self, event: BaseCloudEvent) -> None:
        due = model_from_event(event, ChangeNoticeDue)

        async def plan(tx: Transaction) -> DispatchDecision | None:
            # The event only names the change; what changed is read from the database's record.
            return await self._plan_notice(tx, await recorded_change(tx, due.appointment_id, due.version))

        await self._dispatch(event, plan)

    async def on_appointment_changed(self, event: BaseCloudEvent) -> None:
        s = self._settings
        verify_event(event, s.secrets(), now=datetime.now(UTC), window=timedelta(seconds=s.appointment_events_window_s))
        announced = model_from_event(event, AppointmentChanged)

        async def plan(tx: Transaction) -> DispatchDecision | None:
            change = await apply_announced_change(tx, event, announced)
            return None if change is None else await self._plan_notice(tx, change)

        await self._dispatch(event, plan)

    async def _plan_notice(self, tx: Transaction, due: ChangeNoticeDue) -> DispatchDecision:
        context = await self._context(tx, due.appointment_id)
        names = {r["id"]: r["name"] for r in await tx.all("location_names", {"ids": [due.previous.location_id]})}
        decision = plan_change_notice(
            context, version=due.version, reason=due.reason, previous_start=due.previous.starts_at,
            previous_venue=names.get(due.previous.location_id, ""), now=datetime.now(UTC),
            quiet=self._settings.quiet_hours(),
        )  # fmt: skip
        if decision.notifications:  # only a notice that replaces them makes older queued messages moot
            await tx.all("supersede_pending_reminders", {"appointment_id": due.appointment_id, "version": due.version})
        return decision

    async def _dispatch(self, event: BaseCloudEvent, plan: Plan) -> None:
        """Once per inbound event: plan in one transaction with the claims and their send events."""
        async with self._runtime.db.transaction() as tx:
            if await seen_before(tx, event):
                log.info("dispatch.duplicate", extra={"event_id": event.get_id(), "event_type": event.get_type()})
                return
            decision = await plan(tx)
            if decision is None:
                return
            ids = await stage(tx, await claim_and_stage(tx, decision))
            await raise_alerts(tx, decision.alerts)
        await self._runtime.publisher.publish(ids)
        log.info("dispatch.planned", extra={
            "event_type": event.get_type(), "count": len(ids), "reason": decision.skipped,
        })  # fmt: skip

    async def _context(self, tx: Transaction, appointment_id: str) -> DispatchContext:
        """The appointment, patient, clinic and contact points; opted-out and suppressed ones unusable."""
        row = await tx.one("dispatch_context", {"appointment_id": appointment_id})
        if row is None:
            raise EventRejected(f"unknown appointment {appointment_id}")
        blocked = await tx.all("sender_blocked_contacts", {"patient_id": row["patient_id"]})
        pairs = {(b["channel"], b["value"]) for b in blocked}
        return context_from_row(row, pairs, email_fallback=self._settings.email_fallback)


def wire(settings: DispatcherSettings, runtime: Runtime) -> Mapping[str, Route]:
    dispatcher = Dispatcher(runtime, settings)
    return {
        ReminderDue.TYPE: dispatcher.on_reminder_due,
        ChangeNoticeDue.TYPE: dispatcher.on_notice_due,
        AppointmentChanged.TYPE: dispatcher.on_appointment_changed,
    }


def new() -> EventFunction[DispatcherSettings]:
    return EventFunction("dispatcher", DispatcherSettings, wire)
