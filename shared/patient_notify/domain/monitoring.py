"""What the monitor concludes from what it found: alerts to raise and conditions that cleared.

Pure: rows (mappings, as the database port returns them) in, ``Alert`` values out. Each alert
about one notification or outbox row has that id as its subject and ``<kind>:<id>`` as its key,
the key the senders use too (``delivery_unknown:<id>``), so one incident is one row whoever sees
it first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from patient_notify.domain.alerts import Alert

__all__ = [
    "DEAD_LETTERS_QUEUED", "DELIVERY_RATE_LOW", "DELIVERY_UNKNOWN", "DLQ_UNREADABLE", "ETL_STALE",
    "EVENT_UNPROCESSED", "NOTIFICATION_STALLED", "OUTBOX_UNPUBLISHED", "RATE_WINDOWS_H", "RECEIPT_MISSING",
    "RECEIPT_UNMATCHED", "QueueReading", "RateWindow", "data_freshness_alert", "dead_letter_queue_alerts",
    "lost_event_alerts", "outbox_alerts", "rate_alerts", "rate_windows", "receipt_alerts", "stale_send_alerts",
    "stalled_alerts", "unknown_alerts", "unmatched_receipt_alerts",
]  # fmt: skip

Row = Mapping[str, Any]
DELIVERY_UNKNOWN = "delivery_unknown"
RECEIPT_MISSING = "receipt_missing"
RECEIPT_UNMATCHED = "receipt_unmatched"
NOTIFICATION_STALLED = "notification_stalled"
OUTBOX_UNPUBLISHED = "outbox_unpublished"
EVENT_UNPROCESSED = "event_unprocessed"
DELIVERY_RATE_LOW = "delivery_rate_low"
ETL_STALE = "etl_stale"
DEAD_LETTERS_QUEUED = "dead_letters_queued"
DLQ_UNREADABLE = "dead_letter_queue_unreadable"
RATE_WINDOWS_H = (1, 24)
BROKER = "rabbitmq"  # the subject of an unreadable-queues alert when the broker itself is unreachable


def _at(instant: datetime) -> str:
    """ISO, minutes, UTC: a form the contact-data guards never mistake for a phone number."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _about(kind: str, row_id: object, severity: Literal["warning", "critical"], detail: str) -> Alert:
    return Alert(f"{kind}:{row_id}", kind, severity, str(row_id), detail)


def stale_send_alerts(rows: Iterable[Row]) -> list[Alert]:
    return [_about(DELIVERY_UNKNOWN, r["id"], "critical", (
        f"{r['channel']} claimed for sending at {_at(r['since'])} and never settled: the provider may "
        "have it; check its console before resending"
    )) for r in rows]  # fmt: skip


def unknown_alerts(rows: Iterable[Row]) -> list[Alert]:
    return [_about(DELIVERY_UNKNOWN, r["id"], "critical", (
        f"{r['channel']} outcome unknown since {_at(r['since'])}; check the provider's console before resending"
    )) for r in rows]  # fmt: skip


def stalled_alerts(rows: Iterable[Row]) -> list[Alert]:
    return [_about(NOTIFICATION_STALLED, r["id"], "warning", (
        f"{r['channel']} queued since {_at(r['since'])} with nothing in flight (an event lost or answered "
        "4xx): its send event was staged again"
    )) for r in rows]  # fmt: skip


def receipt_alerts(rows: Iterable[Row]) -> list[Alert]:
    return [_about(RECEIPT_MISSING, r["id"], "warning", (
        f"{r['channel']} accepted by {r['provider'] or 'the provider'} at {_at(r['since'])}; no delivery "
        "receipt since: check the webhook and the provider's console"
    )) for r in rows]  # fmt: skip


def unmatched_receipt_alerts(rows: Iterable[Row], grace: timedelta) -> list[Alert]:
    """One alert per provider for the receipts given up on (each receipt is given up on once)."""
    given_up: dict[str, list[Row]] = {}
    for r in rows:
        given_up.setdefault(r["provider"], []).append(r)
    hours = grace.total_seconds() / 3600
    return [Alert(f"{RECEIPT_UNMATCHED}:{provider}", RECEIPT_UNMATCHED, "warning", provider, (
        f"{len(found)} verified {provider} receipts matched no notification within {hours:.0f} h "
        f"(the first: receipt {min(r['id'] for r in found)}, received {_at(min(r['received_at'] for r in found))}): "
        "a provider id never recorded (a send left unknown?) or a callback for a message we did not send"
    )) for provider, found in sorted(given_up.items())]  # fmt: skip


def lost_event_alerts(rows: Iterable[Row]) -> list[Alert]:
    return [_about(EVENT_UNPROCESSED, r["id"], "warning", (
        f"{r['type']} (outbox {r['id']}, written {_at(r['since'])}) was accepted by the broker and never "
        "processed: published again"
    )) for r in rows]  # fmt: skip


def outbox_alerts(rows: Iterable[Row]) -> list[Alert]:
    return [_about(OUTBOX_UNPUBLISHED, r["id"], "critical", (
        f"{r['type']} (outbox {r['id']}) unpublished since {_at(r['since'])} after {r['attempts']} "
        f"attempts: {r['last_error'] or 'not tried yet'}"
    )) for r in rows]  # fmt: skip


@dataclass(frozen=True)
class RateWindow:
    channel: str
    hours: int
    delivered: int
    settled: int  # delivered + undelivered + failed + unknown (+ sent with the receipt overdue)

    @property
    def rate(self) -> float:
        return self.delivered / self.settled if self.settled else 1.0

    @property
    def key(self) -> str:
        return f"{DELIVERY_RATE_LOW}:{self.channel}:{self.hours}h"


def rate_windows(rows: Iterable[Row]) -> list[RateWindow]:
    return [RateWindow(r["channel"], int(r["hours"]), int(r["delivered"]), int(r["settled"])) for r in rows]


def rate_alerts(windows: Sequence[RateWindow], *, target: float, min_sample: int) -> list[Alert]:
    """A window is judged only on at least ``min_sample`` outcomes; alerts for the rest clear."""
    return [
        Alert(w.key, DELIVERY_RATE_LOW, "critical", w.channel, (
            f"{w.channel} delivered {w.delivered} of {w.settled} over the last {w.hours} h = "
            f"{w.rate:.2%}, under the {target:.0%} target"
        ))
        for w in windows if w.settled >= min_sample and w.rate < target
    ]  # fmt: skip


def data_freshness_alert(newest: Row | None, now: datetime, stale_after: timedelta) -> Alert | None:
    """The cached data is stale when no ETL pass of any source has succeeded for ``stale_after``."""
    if newest is None:
        return Alert(ETL_STALE, ETL_STALE, "critical", None, "no ETL pass has ever succeeded: no data to send from")
    age = now - newest["last_success_at"]
    if age <= stale_after:
        return None
    return Alert(ETL_STALE, ETL_STALE, "critical", str(newest["source"]), (
        f"the last successful ETL pass finished at {_at(newest['last_success_at'])}, "
        f"{age.total_seconds() / 60:.0f} min ago (stale after {stale_after.total_seconds() / 60:.0f} min)"
    ))  # fmt: skip


@dataclass(frozen=True)
class QueueReading:
    queue: str
    depth: int | None  # None: could not be read
    error: str | None = None


def dead_letter_queue_alerts(
    readings: Sequence[QueueReading], broker_error: str | None
) -> tuple[list[Alert], list[str]]:
    """Alerts to raise and keys to resolve. While the broker is unreachable nothing else is known."""
    unreachable = f"{DLQ_UNREADABLE}:{BROKER}"
    if broker_error is not None:
        return [Alert(unreachable, DLQ_UNREADABLE, "critical", BROKER, (
            f"cannot read the dead-letter queues: {broker_error}"
        ))], []  # fmt: skip
    raised: list[Alert] = []
    resolved = [unreachable]
    for r in readings:
        depth_key, unreadable_key = f"{DEAD_LETTERS_QUEUED}:{r.queue}", f"{DLQ_UNREADABLE}:{r.queue}"
        if r.depth is None:
            raised.append(Alert(unreadable_key, DLQ_UNREADABLE, "critical", r.queue, f"cannot read: {r.error}"))
            continue
        resolved.append(unreadable_key)
        if r.depth > 0:
            raised.append(Alert(depth_key, DEAD_LETTERS_QUEUED, "critical", r.queue, (
                f"{r.depth} dead-lettered events wait in the queue: the dead-letter sink is not taking them"
            )))  # fmt: skip
        else:
            resolved.append(depth_key)
    return raised, resolved
