"""scheduler: on each PingSource tick, emit a "reminder due" event for every reminder now due."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from cloudevents.core.base import BaseCloudEvent

from patient_notify.alerts import raise_alerts
from patient_notify.codec import model_from_event, new_event
from patient_notify.events import PING, PingTick, send_request
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.outbox import stage
from patient_notify.settings import Settings

from .planning import missed_reminder_alerts, reminders_due

log = logging.getLogger(__name__)
SOURCE = "/patient-notify/scheduler"


class SchedulerSettings(Settings):
    reminder_late_cutoff_hours: float = 12.0  # a late reminder still goes out until this long before
    scheduler_batch_size: int = 5000


class Scheduler:
    def __init__(self, runtime: Runtime, settings: SchedulerSettings) -> None:
        self._runtime = runtime
        self._cutoff = timedelta(hours=settings.reminder_late_cutoff_hours)
        self._batch = settings.scheduler_batch_size

    async def on_tick(self, event: BaseCloudEvent) -> None:
        """The tick's ``time`` is the instant planned for: the PingSource is the clock."""
        model_from_event(event, PingTick)
        now = event.get_time() or datetime.now(UTC)
        planned = 0
        while (count := await self._plan_batch(now)) > 0:
            planned += count
            if count < self._batch:
                break
        missed = await self._give_up_missed(now)
        released = await self._release_held_notices(now)
        drained = await self._runtime.publisher.drain()
        log.info("reminders.planned", extra={
            "count": planned, "failed": missed, "applied": released, "published": drained.published,
        })  # fmt: skip

    async def _release_held_notices(self, now: datetime) -> int:
        """Change notices held through quiet hours whose hold has ended get their send events."""
        async with self._runtime.db.transaction() as tx:
            rows = await tx.all("release_held_notices", {"now": now, "limit": self._batch})
            events = [
                new_event(send_request(r["id"], r["appointment_id"], r["channel"]), source=SOURCE, subject=str(r["id"]))
                for r in rows
            ]  # fmt: skip
            ids = await stage(tx, events)
        await self._runtime.publisher.publish(ids)
        return len(rows)

    async def _give_up_missed(self, now: datetime) -> int:
        async with self._runtime.db.transaction() as tx:
            params = {"now": now, "cutoff": self._cutoff, "limit": self._batch}
            rows = await tx.all("give_up_missed_reminders", params)
            await raise_alerts(tx, missed_reminder_alerts(rows))
        return len(rows)

    async def _plan_batch(self, now: datetime) -> int:
        async with self._runtime.db.transaction() as tx:
            rows = await tx.all("claim_due_reminders", {"now": now, "cutoff": self._cutoff, "limit": self._batch})
            due, alerts = reminders_due(rows, now)
            events = [new_event(r, source=SOURCE, subject=r.appointment_id) for r in due]
            ids = await stage(tx, events)
            await raise_alerts(tx, alerts)
        await self._runtime.publisher.publish(ids)
        return len(rows)


def wire(settings: SchedulerSettings, runtime: Runtime) -> Mapping[str, Route]:
    return {PING: Scheduler(runtime, settings).on_tick}


def new() -> EventFunction[SchedulerSettings]:
    return EventFunction("scheduler", SchedulerSettings, wire)
