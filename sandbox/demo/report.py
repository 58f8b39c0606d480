"""What the day did, read from the database, the stand-ins and the broker; and whether it passed.

Delivered means what the provider's receipt says, where the provider sends receipts: Twilio's
signed status callback ``delivered`` for SMS, and SES's ``Delivery`` event (through a signed SNS
notification) for email on SES; both applied by the webhooks function, which sets ``receipt_at``.
SMTP sends no receipts: there, an email counts as delivered once the server accepted it
(``sent``), and the report says so. What could be delivered is every message minus those
deliberately not sent (``skipped``: superseded by a newer notice, or the appointment was
cancelled) and those the provider showed cannot arrive: refused for good at send (``failed``,
e.g. Twilio 21211) or reported undeliverable by a receipt (``undelivered``: an unreachable
handset, a hard bounce), each of which raised an alert. Anything else (``sent`` with no receipt,
``queued``, ``sending``, ``unknown``) counts against the rate. Duplicates are counted at the
providers: the same text to the same recipient twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from patient_notify.domain import monitoring
from sandbox.demo.script import DayLog
from sandbox.demo.system import DemoSystem

__all__ = ["CHANNELS", "TARGET_RATE", "Report", "gather"]

TARGET_RATE = 0.99
CHANNELS = ("sms", "email")
# The kinds of alert the monitor raises (delivery_unknown: the senders raise it too, for the same incident).
MONITOR_KINDS = [
    monitoring.DELIVERY_UNKNOWN, monitoring.RECEIPT_MISSING, monitoring.NOTIFICATION_STALLED,
    monitoring.OUTBOX_UNPUBLISHED, monitoring.EVENT_UNPROCESSED, monitoring.DELIVERY_RATE_LOW, monitoring.ETL_STALE,
    monitoring.DEAD_LETTERS_QUEUED, monitoring.DLQ_UNREADABLE, "alert_sink_failed",
]  # fmt: skip
_COUNTS = {  # name -> SQL answering one count
    "unpublished": "SELECT count(*) FROM outbox WHERE published_at IS NULL",
    "passes": "SELECT count(*) FROM etl_runs WHERE status = 'succeeded'",
    "rejected": "SELECT count(*) FROM rejected_events",
    "dead": "SELECT count(*) FROM dead_letters",
    "fallbacks": "SELECT count(*) FROM notifications WHERE fallback_of IS NOT NULL",
    "suppressed": "SELECT count(*) FROM email_suppressions",
    # A final receipt kept for a message still 'sent': it arrived before the send was recorded.
    "unapplied": """SELECT count(*) FROM notifications n WHERE n.status = 'sent' AND EXISTS (
                        SELECT 1 FROM provider_receipts r WHERE r.verified AND r.provider = n.provider
                        AND r.provider_message_id = n.provider_message_id
                        AND r.status IN ('delivered', 'undelivered', 'failed', 'Delivery', 'Bounce'))""",
}


@dataclass(frozen=True)
class Report:
    appointments: dict[str, int]  # by status
    messages: dict[tuple[str, str, str], int]  # (kind, channel, status) -> count
    alerts: dict[str, int]  # kind -> count
    monitor_alerts: dict[str, int]  # of the kinds the monitor raises: 'kind' open, 'kind (resolved)'
    at_providers: dict[str, int]  # channel -> messages the stand-in accepted
    accepted: dict[str, int]  # channel -> notifications recorded with a provider message id
    receipts: dict[tuple[str, bool], int]  # (provider, verified) -> receipts kept
    receipt_channels: frozenset[str]  # channels whose "delivered" is a provider receipt
    counts: dict[str, int]  # _COUNTS
    duplicates: int
    broker: dict[str, int]
    monitor_ticks: int  # monitor-tick events the monitor answered 2xx
    etl: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def count(self, *, status: str | None = None, channel: str | None = None) -> int:
        return sum(n for (_, c, s), n in self.messages.items()
                   if (status is None or s == status) and (channel is None or c == channel))  # fmt: skip

    def delivered(self, channel: str | None = None) -> int:
        channels = CHANNELS if channel is None else (channel,)
        return sum(self.count(status="delivered" if c in self.receipt_channels else "sent", channel=c)
                   for c in channels)  # fmt: skip

    def deliverable(self, channel: str | None = None) -> int:
        excluded = ("skipped", "failed", "undelivered")
        return self.count(channel=channel) - sum(self.count(status=s, channel=channel) for s in excluded)

    def settled_rate(self, channel: str) -> float:
        """The monitor's measure: delivered / (delivered + undelivered + failed)."""
        settled = sum(self.count(status=s, channel=channel) for s in ("delivered", "undelivered", "failed"))
        return self.count(status="delivered", channel=channel) / settled if settled else 1.0

    @property
    def rate(self) -> float:
        return self.delivered() / self.deliverable() if self.deliverable() else 1.0

    @property
    def passed(self) -> bool:
        return self.rate >= TARGET_RATE and self.duplicates == 0 and not self.notes


def gather(system: DemoSystem, day: DayLog) -> Report:
    with psycopg.connect(system.database.url) as conn:
        appointments = _pairs(conn, "SELECT status, count(*) FROM appointments GROUP BY 1")
        rows = conn.execute("SELECT kind, channel, status, count(*) FROM notifications GROUP BY 1, 2, 3").fetchall()
        alerts = _pairs(conn, "SELECT kind, count(*) FROM alerts GROUP BY 1")
        monitor_alerts = {kind: n for kind, n in _pairs(conn, "SELECT CASE WHEN resolved_at IS NULL THEN kind "
                          "ELSE kind || ' (resolved)' END, count(*) FROM alerts GROUP BY 1").items()
                          if kind.removesuffix(" (resolved)") in MONITOR_KINDS}  # fmt: skip
        accepted = _pairs(conn, "SELECT channel, count(*) FROM notifications "
                                "WHERE provider_message_id IS NOT NULL GROUP BY 1")  # fmt: skip
        receipts = conn.execute("SELECT provider, verified, count(*) FROM provider_receipts GROUP BY 1, 2").fetchall()
        counts = {name: int(str(conn.execute(sql.encode()).fetchall()[0][0])) for name, sql in _COUNTS.items()}
    sms, email = Counter(system.sent_sms()), Counter(system.sent_email())
    stats = system.broker.stats
    report = Report(
        appointments=appointments, messages={(str(k), str(c), str(s)): int(n) for k, c, s, n in rows},
        alerts=alerts, monitor_alerts=monitor_alerts, at_providers={"sms": len(sms), "email": len(email)},
        accepted=accepted, receipts={(str(p), bool(v)): int(n) for p, v, n in receipts},
        receipt_channels=frozenset({"sms"} | ({"email"} if system.email_receipts else set())), counts=counts,
        duplicates=sum(n - 1 for n in (sms + email).values() if n > 1),
        broker={"ingested": stats.ingested, "delivered": sum(stats.delivered.values()),
                "retried": sum(stats.retried.values()), "dead-lettered": len(stats.dead_lettered),
                "dropped": len(stats.dropped), "errors": len(stats.errors)},
        monitor_ticks=stats.delivered["monitor-tick"],
        etl={"passes": counts["passes"], "requests": system.api.requests,
             "faults injected": system.api.failures_injected},
    )  # fmt: skip
    _cross_check(report, system, day)
    return report


def _cross_check(report: Report, system: DemoSystem, day: DayLog) -> None:
    """Disagreements between what we recorded and what the world saw fail the run, with the reason."""
    for channel in CHANNELS:
        if report.accepted.get(channel, 0) != report.at_providers[channel]:
            report.notes.append(f"{channel}: {report.accepted.get(channel, 0)} recorded as accepted, "
                                f"{report.at_providers[channel]} at the provider")  # fmt: skip
    unverified = sum(n for (_, verified), n in report.receipts.items() if not verified)
    publisher = system.email_receipts.publisher if system.email_receipts else None
    problems = {
        "outbox rows never published": report.counts["unpublished"],
        "receipts refused as unverified": unverified,
        "Twilio callbacks not answered 2xx": system.twilio.callbacks_failed,
        "SES events not answered 2xx": publisher.refused if publisher else 0,
        "final receipts that arrived before their send was recorded (kept, not applied)": report.counts["unapplied"],
        "broker errors": report.broker["errors"], "events the broker dropped (4xx answers)": report.broker["dropped"],
    }  # fmt: skip
    report.notes.extend(f"{n} {what}" for what, n in problems.items() if n)
    if day.receipts_owed:
        report.notes.append("the providers still owed receipts when the demo stopped waiting")
    report.notes.extend(f"broker: {error}" for error in system.broker.stats.errors[:3])


def _pairs(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> dict[str, int]:
    return {str(key): int(str(n)) for key, n in conn.execute(sql.encode()).fetchall()}
