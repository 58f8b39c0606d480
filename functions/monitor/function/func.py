"""monitor: on each monitor-tick (PingSource), find what is stuck, late or failing, and tell a person.

Each tick, in order: apply the receipts that arrived before the sender recorded the provider's
message id (and alert those still matching nothing after a day); re-arm our events the broker
accepted and nobody recorded; drain the outbox; reconcile notifications past their deadline (stale
sends → unknown, stalled queued → send event staged again, unknown and receipt-less ones alerted)
and alert outbox rows still unpublished; judge the delivery rate per channel over 1 h and 24 h, the
ETL data's age and the dead-letter queues' depths; resolve what cleared; push every alert change to
the sinks. It publishes for at most ``PUBLISH_BUDGET_S``; what is left waits in the outbox. The
monitor is also a dead-letter sink: ``EventFunction`` records any event carrying
``knativeerrordest`` (records.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from cloudevents.core.base import BaseCloudEvent

from patient_notify.alert_sinks import AlertSink, build_sinks, push_alerts
from patient_notify.alerts import raise_alerts, resolve_alerts
from patient_notify.codec import model_from_event
from patient_notify.domain.monitoring import dead_letter_queue_alerts
from patient_notify.domain.sending import STALE_SENDING_S
from patient_notify.events import PING, PingTick
from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.publish_budget import PublishBudget

from .checks import RECEIPT_MATCH_GRACE, Limits, judge_delivery_rates, judge_freshness, rearm_lost_events, reconcile
from .late_receipts import apply_late_receipts
from .queues import QueueDepths, RabbitQueueDepths
from .settings import MonitorSettings

__all__ = ["Monitor", "MonitorSettings", "new", "wire"]

log = logging.getLogger(__name__)
# Fixed by the monitor-tick Trigger's 60 s timeout, not by the site, hence constants. The tick
# publishes (email fallbacks, the outbox drain, re-staged sends) for at most PUBLISH_BUDGET_S from
# its start; a chunk in flight then can take CHUNK_ROUNDS x the 10 s HTTP timeout against a hung
# ingress; then the checks, the queue depths and the sinks (tests/unit/test_publish_budget.py
# checks the sum against the Trigger). What is left waits in the outbox for the next tick.
PUBLISH_BUDGET_S = 25.0
CHUNK_ROUNDS = 2  # a publish chunk is this many rounds of publish_concurrency POSTs


class Monitor:
    def __init__(
        self, runtime: Runtime, settings: MonitorSettings, sinks: Sequence[AlertSink], queues: QueueDepths | None,
        *, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._runtime, self._settings, self._sinks, self._queues = runtime, settings, sinks, queues
        self._limits = limits_from(settings)
        self._chunk = settings.publish_concurrency * CHUNK_ROUNDS
        self._clock = clock  # measures the publish budget; tests pass one that counts POSTs

    async def on_tick(self, event: BaseCloudEvent) -> None:
        model_from_event(event, PingTick)
        budget = PublishBudget(self._runtime.publisher, self._chunk, self._clock() + PUBLISH_BUDGET_S, self._clock)
        now, ahead = await self._tick_time(event)
        db, limits = self._runtime.db, self._limits
        # First: what they settle is neither overdue nor a failure. Their email fallbacks go out at once.
        late = await apply_late_receipts(db, now, limits, email_fallback=self._settings.email_fallback)
        fallbacks = await budget.publish(late.outbox_ids)
        rearmed = await rearm_lost_events(db, now, limits)  # before the drain, which sends them again
        # The drain ages rows by the database's clock: shift the grace by how far the tick is ahead of it.
        grace_s = (limits.grace - ahead).total_seconds()
        drained = await budget.drain(min_age_s=grace_s, most=limits.batch)
        staged, raised = await reconcile(db, now, limits)
        restaged = await budget.publish(staged)
        await judge_delivery_rates(db, now, limits)
        await judge_freshness(db, now, limits)
        await self._judge_dead_letter_queues()
        s = self._settings
        pushed = await push_alerts(db, self._sinks, now=now, storm_threshold=s.alert_storm_threshold,
                                   limit=s.alert_push_limit)  # fmt: skip
        log.info("monitor.tick", extra={
            "count": raised + rearmed, "published": drained.published + restaged.published + fallbacks.published,
            "failed": drained.failed + restaged.failed + fallbacks.failed + pushed.failed, "applied": pushed.pushed,
        })  # fmt: skip

    async def _tick_time(self, event: BaseCloudEvent) -> tuple[datetime, timedelta]:
        """The tick's instant, and how far it is ahead of the database's clock (never negative)."""
        async with self._runtime.db.transaction() as tx:
            row = await tx.one("monitor_database_clock")
        database_now: datetime = row["now"] if row else datetime.now(UTC)
        tick = event.get_time() if self._settings.monitor_clock == "tick" else None
        now = tick or database_now
        return now, max(timedelta(0), now - database_now)

    async def _judge_dead_letter_queues(self) -> None:
        names = self._settings.dlq_queues()
        if self._queues is None or not names:
            return
        readings, broker_error = await asyncio.to_thread(self._queues.read, names)
        raised, cleared = dead_letter_queue_alerts(readings, broker_error)
        async with self._runtime.db.transaction() as tx:
            await raise_alerts(tx, raised)
            await resolve_alerts(tx, cleared)


def limits_from(s: MonitorSettings) -> Limits:
    return Limits(
        batch=s.monitor_batch_size, lookback=timedelta(hours=s.monitor_lookback_hours),
        grace=timedelta(seconds=s.monitor_outbox_grace_s), stall=timedelta(minutes=s.monitor_stall_minutes),
        stale_send=timedelta(seconds=STALE_SENDING_S), receipt=timedelta(minutes=s.monitor_receipt_timeout_minutes),
        receipt_match_grace=RECEIPT_MATCH_GRACE,
        receiptless=tuple(s.receiptless_providers()), rate_target=s.monitor_rate_target,
        rate_min_sample=s.monitor_rate_min_sample, etl_stale_after=timedelta(minutes=s.etl_stale_after_minutes),
    )  # fmt: skip


def wire(
    settings: MonitorSettings, runtime: Runtime, *, clock: Callable[[], float] = time.monotonic
) -> Mapping[str, Route]:
    sinks = build_sinks(settings.sink_config(), runtime.http)
    if not sinks:
        log.warning("start.no_alert_sinks", extra={"function": runtime.name})
    url = settings.rabbitmq_url
    queues = RabbitQueueDepths(url.get_secret_value(), settings.monitor_dlq_timeout_s) if url else None
    return {PING: Monitor(runtime, settings, sinks, queues, clock=clock).on_tick}


def new(*, clock: Callable[[], float] = time.monotonic) -> EventFunction[MonitorSettings]:
    """The function; ``clock`` times the publish budget (tests pass their own)."""
    return EventFunction("monitor", MonitorSettings, functools.partial(wire, clock=clock))
