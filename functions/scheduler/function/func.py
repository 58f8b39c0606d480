"""scheduler: on each PingSource tick, emit a "reminder due" event for every reminder now due."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from cloudevents.core.base import BaseCloudEvent
from pydantic import Field

from patient_notify.alerts import raise_alerts
from patient_notify.codec import model_from_event, new_event
from patient_notify.events import PING, PingTick, send_request
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.outbox import stage
from patient_notify.settings import Settings

from .capacity import WINDOW, capacity_alerts, loads_from_rows, shortfalls
from .planning import missed_reminder_alerts, reminders_due

log = logging.getLogger(__name__)
SOURCE = "/patient-notify/scheduler"


class SchedulerSettings(Settings):
    reminder_late_cutoff_hours: float = 12.0  # a late reminder still goes out until this long before
    scheduler_batch_size: int = 5000
    # Sending capacity, for the daily check that each window's reminders fit (capacity_short alert):
    # the senders' own pacing settings; unset (unpaced), what the provider gives a new sender.
    twilio_max_mps: float = Field(default=1.0, gt=0)  # a US long code sends about 1 SMS a second
    ses_max_rate: float = Field(default=1.0, gt=0)  # SES sandbox; production accounts start at 14


class Scheduler:
    def __init__(self, runtime: Runtime, settings: SchedulerSettings) -> None:
        self._runtime = runtime
        self._cutoff = timedelta(hours=settings.reminder_late_cutoff_hours)
        self._batch = settings.scheduler_batch_size
        self._rates = {"sms": settings.twilio_max_mps, "email": settings.ses_max_rate}

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
        await self._check_capacity(now)
        log.info("reminders.planned", extra={
            "count": planned, "failed": missed, "applied": released, "published": drained.published,
        })  # fmt: skip

    async def _check_capacity(self, now: datetime) -> None:
        """The next 24 hours' reminders against the providers' rates; an alert per channel and day."""
        async with self._runtime.db.transaction() as tx:
            params = {"now": now, "since": now - WINDOW, "until": now + timedelta(hours=24)}
            short = shortfalls(loads_from_rows(await tx.all("monitor_reminder_load", params)), self._rates, now)
            await raise_alerts(tx, capacity_alerts(short))
        for s in short:
            log.warning("capacity.short", extra={"channel": s.channel, "count": s.demand})

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
