"""Pushing alert changes to the sinks: each new, re-opened or resolved alert once per sink.

Per sink: the alerts it has not accepted in their current state (``alert_pushes``), oldest critical
first, at most ``limit`` a tick; storms summarised for sinks people read; what it accepted is
recorded, what it refused is retried next tick. A sink failure never loses an alert (the row is
the record; the push is only news of it) and raises ``alert_sink_failed`` for the other sinks.
``alerts.notified_state`` is set once every configured sink has the current state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from patient_notify.alert_sinks.notice import AlertNotice, notice_from_row, summarise_storms
from patient_notify.alert_sinks.sinks import AlertSink
from patient_notify.alerts import raise_alerts, resolve_alerts
from patient_notify.db import Database
from patient_notify.domain.alerts import Alert

__all__ = ["ALERT_SINK_FAILED", "PushReport", "push_alerts"]

log = logging.getLogger(__name__)
ALERT_SINK_FAILED = "alert_sink_failed"


@dataclass(frozen=True)
class PushReport:
    pushed: int  # notices accepted, summed over sinks
    failed: int


async def push_alerts(
    db: Database, sinks: Sequence[AlertSink], *, now: datetime, storm_threshold: int = 10, limit: int = 500
) -> PushReport:
    pushed = failed = 0
    touched: set[int] = set()
    for sink in sinks:
        async with db.transaction() as tx:
            refresh_s = sink.refresh.total_seconds() if sink.refresh else None
            rows = await tx.all("monitor_alerts_to_push", {
                "sink": sink.name, "refresh_s": refresh_s, "now": now, "limit": limit,
            })  # fmt: skip
        notices = [notice_from_row(row) for row in rows]
        if sink.summarises:
            notices = summarise_storms(notices, storm_threshold)
        outcomes = await sink.push(notices, now) if notices else []
        await _record(db, sink.name, notices, outcomes)
        touched.update(i for n in notices for i in n.alert_ids)
        errors = [e for e in outcomes if e is not None]
        pushed, failed = pushed + len(outcomes) - len(errors), failed + len(errors)
    if touched:
        async with db.transaction() as tx:
            await tx.run("monitor_mark_notified", {"ids": sorted(touched), "sinks": [s.name for s in sinks]})
    return PushReport(pushed, failed)


async def _record(db: Database, sink: str, notices: Sequence[AlertNotice], outcomes: Sequence[str | None]) -> None:
    pairs = [(alert_id, n.state, error) for n, error in zip(notices, outcomes, strict=True) for alert_id in n.alert_ids]
    errors = [e for e in outcomes if e is not None]
    async with db.transaction() as tx:
        if pairs:
            await tx.run("monitor_record_pushes", {
                "sink": sink, "alert_ids": [p[0] for p in pairs], "states": [p[1] for p in pairs],
                "errors": [p[2] for p in pairs],
            })  # fmt: skip
        if errors:
            await raise_alerts(tx, [Alert(f"{ALERT_SINK_FAILED}:{sink}", ALERT_SINK_FAILED, "critical", sink, (
                f"{len(errors)} of {len(outcomes)} pushes to {sink} failed ({errors[0]}); retried each tick"
            ))])  # fmt: skip
        elif outcomes:
            await resolve_alerts(tx, [f"{ALERT_SINK_FAILED}:{sink}"])
    if errors:
        log.error("alerts.push_failed", extra={"kind": sink, "failed": len(errors), "reason": errors[0]})
