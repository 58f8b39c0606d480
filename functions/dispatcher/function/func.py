"""dispatcher: a due reminder → one claimed notification and one send event per chosen channel."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from patient_notify.alerts import raise_alerts
from patient_notify.codec import model_from_event, new_event
from patient_notify.db import Transaction
from patient_notify.domain.dispatch import DispatchDecision, plan_reminder_dispatch
from patient_notify.errors import EventRejected
from patient_notify.events import EmailSendRequested, ReminderDue, SmsSendRequested
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.outbox import stage
from patient_notify.settings import Settings

from .context import context_from_row

log = logging.getLogger(__name__)
SOURCE = "/patient-notify/dispatcher"


class DispatcherSettings(Settings):
    pass


class Dispatcher:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def on_reminder_due(self, event: BaseCloudEvent) -> None:
        due = model_from_event(event, ReminderDue)
        async with self._runtime.db.transaction() as tx:
            if await _seen_before(tx, event):
                log.info("dispatch.duplicate", extra={"event_id": event.get_id()})
                return
            row = await tx.one("dispatch_context", {"appointment_id": due.appointment_id})
            if row is None:
                raise EventRejected(f"unknown appointment {due.appointment_id}", event_type=ReminderDue.TYPE)
            decision = plan_reminder_dispatch(due.local_date, context_from_row(row))
            ids = await stage(tx, await _claim(tx, decision))
            await raise_alerts(tx, decision.alerts)
        await self._runtime.publisher.publish(ids)
        log.info("dispatch.planned", extra={
            "appointment_id": due.appointment_id, "count": len(ids), "reason": decision.skipped,
        })  # fmt: skip


async def _seen_before(tx: Transaction, event: BaseCloudEvent) -> bool:
    params = {"source": event.get_source(), "id": event.get_id(), "type": event.get_type()}
    return await tx.one("record_processed_event", params) is None


async def _claim(tx: Transaction, decision: DispatchDecision) -> Sequence[CloudEvent]:
    """Insert the intents; only rows this call created get a send event (exactly once)."""
    n = decision.notifications
    claimed = await tx.all("claim_notifications", {
        "natural_keys": [i.natural_key for i in n], "appointment_ids": [i.appointment_id for i in n],
        "appointment_versions": [i.appointment_version for i in n], "kinds": [i.kind for i in n],
        "channels": [i.channel for i in n], "recipients": [i.recipient for i in n],
        "languages": [i.language for i in n], "subjects": [i.subject for i in n],
        "bodies": [i.body for i in n],
    })  # fmt: skip
    return [_send_event(row["id"], row["appointment_id"], row["channel"]) for row in claimed]


def _send_event(notification_id: int, appointment_id: str, channel: str) -> CloudEvent:
    model = SmsSendRequested if channel == "sms" else EmailSendRequested
    data = model(notification_id=notification_id, appointment_id=appointment_id)
    return new_event(data, source=SOURCE, subject=str(notification_id))


def wire(settings: DispatcherSettings, runtime: Runtime) -> Mapping[str, Route]:
    return {ReminderDue.TYPE: Dispatcher(runtime).on_reminder_due}


def new() -> EventFunction[DispatcherSettings]:
    return EventFunction("dispatcher", DispatcherSettings, wire)
