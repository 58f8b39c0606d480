"""What the day did, read from the database, the stand-ins and the broker; and whether it passed.

Delivered means accepted by the provider (status ``sent``); provider receipts come with the
webhooks function. What could be delivered is every message minus those deliberately not sent
(``skipped``: superseded by a newer notice, or the appointment was cancelled) and those the
provider refused for good (``failed``: e.g. Twilio 21211, an invalid number), each of which
raised an alert. Anything else (``queued``, ``sending``, ``unknown``) counts against the rate.
Duplicates are counted at the providers: the same text to the same recipient twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from sandbox.demo.system import DemoSystem

__all__ = ["TARGET_RATE", "Report", "gather"]

TARGET_RATE = 0.99


@dataclass(frozen=True)
class Report:
    appointments: dict[str, int]  # by status
    messages: dict[tuple[str, str, str], int]  # (kind, channel, status) -> count
    alerts: dict[str, int]  # kind -> count
    at_providers: dict[str, int]  # channel -> messages the stand-in accepted
    duplicates: int
    rejected_events: int
    dead_letters: int
    broker: dict[str, int]
    etl: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def count(self, *, status: str | None = None, channel: str | None = None) -> int:
        return sum(n for (_, c, s), n in self.messages.items()
                   if (status is None or s == status) and (channel is None or c == channel))  # fmt: skip

    @property
    def deliverable(self) -> int:
        return self.count() - self.count(status="skipped") - self.count(status="failed")

    @property
    def rate(self) -> float:
        return self.count(status="sent") / self.deliverable if self.deliverable else 1.0

    @property
    def passed(self) -> bool:
        return self.rate >= TARGET_RATE and self.duplicates == 0 and not self.notes


def gather(system: DemoSystem) -> Report:
    with psycopg.connect(system.database.url) as conn:
        appointments = _pairs(conn, "SELECT status, count(*) FROM appointments GROUP BY 1")
        rows = conn.execute("SELECT kind, channel, status, count(*) FROM notifications GROUP BY 1, 2, 3").fetchall()
        alerts = _pairs(conn, "SELECT kind, count(*) FROM alerts GROUP BY 1")
        [(rejected,)] = conn.execute("SELECT count(*) FROM rejected_events").fetchall()
        [(dead,)] = conn.execute("SELECT count(*) FROM dead_letters").fetchall()
        [(unpublished,)] = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchall()
        [(passes,)] = conn.execute("SELECT count(*) FROM etl_runs WHERE status = 'succeeded'").fetchall()
    sms, email = Counter(system.sent_sms()), Counter(system.sent_email())
    messages = {(str(k), str(c), str(s)): int(n) for k, c, s, n in rows}
    stats = system.broker.stats
    report = Report(
        appointments=appointments, messages=messages, alerts=alerts,
        at_providers={"sms": len(sms), "email": len(email)},
        duplicates=sum(n - 1 for n in (sms + email).values() if n > 1),
        rejected_events=int(rejected), dead_letters=int(dead),
        broker={"ingested": stats.ingested, "delivered": sum(stats.delivered.values()),
                "retried": sum(stats.retried.values()), "dead-lettered": len(stats.dead_lettered),
                "dropped": len(stats.dropped), "errors": len(stats.errors)},
        etl={"passes": int(passes), "requests": system.api.requests, "faults injected": system.api.failures_injected},
    )  # fmt: skip
    _cross_check(report, int(unpublished), stats.dropped, stats.errors)
    return report


def _cross_check(report: Report, unpublished: int, dropped: list[tuple[str, int]], errors: list[str]) -> None:
    """Disagreements between what we recorded and what the world saw fail the run, with the reason."""
    for channel in ("sms", "email"):
        recorded = report.count(status="sent", channel=channel)
        if recorded != report.at_providers[channel]:
            report.notes.append(
                f"{channel}: {recorded} recorded as sent, {report.at_providers[channel]} at the provider"
            )
    if unpublished:
        report.notes.append(f"{unpublished} outbox rows never published")
    if dropped:
        report.notes.append(f"broker dropped {len(dropped)} events (4xx answers): {dropped[:3]}")
    if errors:
        report.notes.append(f"broker errors: {errors[:3]}")


def _pairs(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> dict[str, int]:
    return {str(key): int(str(n)) for key, n in conn.execute(sql.encode()).fetchall()}
