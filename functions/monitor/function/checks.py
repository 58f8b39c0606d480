"""The monitor's checks: each a bounded, set-based statement, its alerts raised in the same
transaction, and the alerts whose condition cleared resolved (patient_notify.domain.monitoring
decides; this module only gathers and applies)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from patient_notify.alerts import raise_alerts, resolve_alerts, resolve_alerts_of_kind
from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.domain import monitoring as m
from patient_notify.events import ChangeNoticeDue, EmailSendRequested, ReminderDue, SmsSendRequested, send_request
from patient_notify.outbox import stage

__all__ = ["RECEIPT_MATCH_GRACE", "Limits", "judge_delivery_rates", "judge_freshness", "rearm_lost_events", "reconcile"]

SOURCE = "/patient-notify/monitor"
SEND_TYPES = [SmsSendRequested.TYPE, EmailSendRequested.TYPE]
DISPATCHER_TYPES = [ReminderDue.TYPE, ChangeNoticeDue.TYPE]  # our events whose consumer records them
STALE_REASON = "claimed and never settled (found by the monitor)"
EVENT_LOOKBACK = timedelta(hours=24)
# A receipt still matching no notification this long after it came is alerted: a sender records the
# provider's id within seconds of the call, so a day is no race but an id never recorded.
RECEIPT_MATCH_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class Limits:
    batch: int
    lookback: timedelta  # rows older than this were alerted when they were new: not scanned again
    grace: timedelta  # an outbox row unpublished longer is re-published, then alerted
    stall: timedelta  # queued, or an event accepted, with nothing happening for this long
    stale_send: timedelta  # the senders' own rule (patient_notify.domain.sending.STALE_SENDING_S)
    receipt: timedelta
    receipt_match_grace: timedelta  # a receipt still matching no notification after this is alerted
    receiptless: tuple[str, ...]
    rate_target: float
    rate_min_sample: int
    etl_stale_after: timedelta

    def params(self, now: datetime) -> dict[str, Any]:
        return {
            "now": now, "limit": self.batch, "lookback_s": self.lookback.total_seconds(),
            # Where the lost-events check starts on its first run (then it resumes from its watermark).
            "event_lookback_s": min(self.lookback, EVENT_LOOKBACK).total_seconds(),
            "grace_s": self.grace.total_seconds(), "stall_s": self.stall.total_seconds(),
            "stale_s": self.stale_send.total_seconds(), "receipt_s": self.receipt.total_seconds(),
            "match_grace_s": self.receipt_match_grace.total_seconds(), "receiptless": list(self.receiptless),
        }  # fmt: skip


async def rearm_lost_events(db: Database, now: datetime, limits: Limits) -> int:
    """Our events the broker accepted and nobody ever recorded go out again with the next drain."""
    async with db.transaction() as tx:
        rows = await tx.all("monitor_rearm_lost_events", {**limits.params(now), "types": DISPATCHER_TYPES})
        await raise_alerts(tx, m.lost_event_alerts(rows))
        # A full batch may have left events unexamined after the last one returned: resume there.
        until = max(r["published_at"] for r in rows) if len(rows) >= limits.batch else now - limits.stall
        await tx.run("monitor_advance_watermark", {"check": "lost_events", "until": until})
    return len(rows)


async def reconcile(db: Database, now: datetime, limits: Limits) -> tuple[list[int], int]:
    """Notifications and outbox rows past their deadline; returns (outbox ids to publish, alerts raised)."""
    params = limits.params(now)
    async with db.transaction() as tx:
        # Before anything is staged below: a row written by this tick is not overdue.
        alerts = m.outbox_alerts(await tx.all("monitor_outbox_unpublished", params))
        alerts += m.stale_send_alerts(await tx.all("monitor_expire_stale_sends", {**params, "reason": STALE_REASON}))
        await raise_alerts(tx, alerts)
        stalled = await tx.all("monitor_stalled_notifications", {**params, "send_types": SEND_TYPES})
        ids = await stage(tx, [
            new_event(send_request(r["id"], r["appointment_id"], r["channel"]), source=SOURCE, subject=str(r["id"]))
            for r in stalled
        ])  # fmt: skip
        later = m.stalled_alerts(stalled) + m.unknown_alerts(await tx.all("monitor_unknown_unalerted", params))
        later += m.receipt_alerts(await tx.all("monitor_receipts_overdue", params))
        await raise_alerts(tx, later)
        await tx.all("monitor_resolve_cleared", params)
    return ids, len(alerts) + len(later)


async def judge_delivery_rates(db: Database, now: datetime, limits: Limits) -> list[m.RateWindow]:
    async with db.transaction() as tx:
        rows = await tx.all("monitor_delivery_outcomes", {**limits.params(now), "windows": list(m.RATE_WINDOWS_H)})
        windows = m.rate_windows(rows)
        low = m.rate_alerts(windows, target=limits.rate_target, min_sample=limits.rate_min_sample)
        await raise_alerts(tx, low)
        await resolve_alerts_of_kind(tx, m.DELIVERY_RATE_LOW, [a.dedup_key for a in low])
    return windows


async def judge_freshness(db: Database, now: datetime, limits: Limits) -> bool:
    """True when the cached data is fresh."""
    async with db.transaction() as tx:
        alert = m.data_freshness_alert(await tx.one("monitor_data_freshness"), now, limits.etl_stale_after)
        if alert is None:
            await resolve_alerts(tx, [m.ETL_STALE])
        else:
            await raise_alerts(tx, [alert])
    return alert is None
