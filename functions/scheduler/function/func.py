"""scheduler: on each PingSource tick, emit a "reminder due" event for every reminder now due.

A tick plans and stages every due reminder (set-based, in batches of ``scheduler_batch_size``),
then publishes for at most ``PUBLISH_BUDGET_S`` and answers; what it did not publish is in the
outbox, and the next drain sends it (``patient_notify.publish_budget``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from cloudevents.core.base import BaseCloudEvent
from pydantic import Field

from patient_notify.alerts import raise_alerts
from patient_notify.codec import model_from_event, new_event
from patient_notify.events import PING, PingTick, ReminderDue, send_request
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.outbox import stage
from patient_notify.publish_budget import PublishBudget
from patient_notify.settings import Settings

from .capacity import WINDOW, capacity_alerts, loads_from_rows, shortfalls
from .planning import late_reminder_alerts, missed_reminder_alerts

log = logging.getLogger(__name__)
SOURCE = "/patient-notify/scheduler"
# Fixed by the scheduler-tick Trigger's 120 s timeout, not by the site, hence constants. The budget
# runs from the tick's start (planning 100,000 takes a few seconds); a chunk in flight when it ends
# can take CHUNK_ROUNDS x the 10 s HTTP timeout against a hung ingress; then the capacity check and
# the answer (tests/unit/test_publish_budget.py checks the sum against the Trigger).
PUBLISH_BUDGET_S = 90.0
CHUNK_ROUNDS = 2  # a publish chunk is this many rounds of publish_concurrency POSTs


class SchedulerSettings(Settings):
    reminder_late_cutoff_hours: float = 12.0  # a late reminder still goes out until this long before
    scheduler_batch_size: int = 5000
    # Sending capacity, for the daily check that each window's reminders fit (capacity_short alert):
    # the senders' own pacing settings; unset (unpaced), what the provider gives a new sender.
    twilio_max_mps: float = Field(default=1.0, gt=0)  # a US long code sends about 1 SMS a second
    ses_max_rate: float = Field(default=1.0, gt=0)  # SES sandbox; production accounts start at 14


class Scheduler:
    def __init__(
        self, runtime: Runtime, settings: SchedulerSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._runtime = runtime
        self._cutoff = timedelta(hours=settings.reminder_late_cutoff_hours)
        self._batch = settings.scheduler_batch_size
        self._chunk = settings.publish_concurrency * CHUNK_ROUNDS
        self._rates = {"sms": settings.twilio_max_mps, "email": settings.ses_max_rate}
        self._clock = clock  # measures the publish budget; tests pass one that counts POSTs

    async def on_tick(self, event: BaseCloudEvent) -> None:
        """The tick's ``time`` is the instant planned for: the PingSource is the clock."""
        model_from_event(event, PingTick)
        now = event.get_time() or datetime.now(UTC)
        budget = PublishBudget(self._runtime.publisher, self._chunk, self._clock() + PUBLISH_BUDGET_S, self._clock)
        planned = await self._plan(now)
        missed = await self._give_up_missed(now)
        released = await self._release_held_notices(now)
        published = await budget.publish([*released, *planned])  # change notices first: they are urgent
        drained = await budget.drain()
        await self._check_capacity(now)
        log.info("reminders.planned", extra={
            "count": len(planned), "failed": missed, "applied": len(released),
            "published": published.published + drained.published,
        })  # fmt: skip
        if deferred := len(released) + len(planned) - published.published - published.failed:
            log.info("outbox.deferred", extra={"count": deferred})  # out of time: the next drain sends them

    async def _check_capacity(self, now: datetime) -> None:
        """The next 24 hours' reminders against the providers' rates; an alert per channel and day."""
        async with self._runtime.db.transaction() as tx:
            params = {"now": now, "since": now - WINDOW, "until": now + timedelta(hours=24)}
            short = shortfalls(loads_from_rows(await tx.all("monitor_reminder_load", params)), self._rates, now)
            await raise_alerts(tx, capacity_alerts(short))
        for s in short:
            log.warning("capacity.short", extra={"channel": s.channel, "count": s.demand})

    async def _release_held_notices(self, now: datetime) -> list[int]:
        """Change notices held through quiet hours whose hold has ended get their send events."""
        async with self._runtime.db.transaction() as tx:
            rows = await tx.all("release_held_notices", {"now": now, "limit": self._batch})
            events = [
                new_event(send_request(r["id"], r["appointment_id"], r["channel"]), source=SOURCE, subject=str(r["id"]))
                for r in rows
            ]  # fmt: skip
            return await stage(tx, events)

    async def _give_up_missed(self, now: datetime) -> int:
        async with self._runtime.db.transaction() as tx:
            params = {"now": now, "cutoff": self._cutoff, "limit": self._batch}
            rows = await tx.all("give_up_missed_reminders", params)
            await raise_alerts(tx, missed_reminder_alerts(rows, now))
        return len(rows)

    async def _plan(self, now: datetime) -> list[int]:
        """Claim and stage every due reminder, a batch per transaction; their outbox ids."""
        staged: list[int] = []
        params = {"now": now, "cutoff": self._cutoff, "limit": self._batch, "type": ReminderDue.TYPE, "source": SOURCE}
        while True:
            async with self._runtime.db.transaction() as tx:
                rows = await tx.all("plan_due_reminders", params)
                late = [row["id"] for row in rows if row["late"]]
                short = await tx.all("short_notice_reminders", {"ids": late}) if late else []
                await raise_alerts(tx, late_reminder_alerts(rows, {r["id"] for r in short}, now))
            staged += [row["outbox_id"] for row in rows]
            if len(rows) < self._batch:
                return staged


def wire(settings: SchedulerSettings, runtime: Runtime) -> Mapping[str, Route]:
    return {PING: Scheduler(runtime, settings).on_tick}


def new() -> EventFunction[SchedulerSettings]:
    return EventFunction("scheduler", SchedulerSettings, wire)
