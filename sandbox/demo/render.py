"""The demo's closing report as text; the last line is the one-line summary."""

from __future__ import annotations

from pathlib import Path

from sandbox.demo.report import TARGET_RATE, Report
from sandbox.demo.script import DayLog

__all__ = ["render"]

KINDS = ("reminder", "change", "cancellation")


def render(report: Report, day: DayLog, outbox: Path, logs: Path, wall_s: float, peak_memory: int) -> str:
    booked = report.appointments.get("booked", 0)
    lines = [
        "",
        f"Patient Notify demo: a simulated day, {day.day} (UTC), {day.ticks} PingSource ticks",
        f"  appointments   {sum(report.appointments.values()):,} loaded ({booked:,} booked) · "
        f"ETL {report.etl['passes']} passes, {report.etl['requests']} API requests, "
        f"{report.etl['faults injected']} faults injected",
        "  changes        " + (", ".join(f"{n} {reason}" for reason, n in sorted(day.changes.items())) or "none"),
        "",
        f"  {'message':<24}{'sent':>7}{'failed':>8}{'skipped':>9}{'open':>6}",
    ]
    for kind in KINDS:
        for channel in ("sms", "email"):
            row = {s: n for (k, c, s), n in report.messages.items() if k == kind and c == channel}
            if row:
                open_ = sum(n for s, n in row.items() if s not in ("sent", "failed", "skipped"))
                lines.append(f"  {kind + ' · ' + channel:<24}{row.get('sent', 0):>7}{row.get('failed', 0):>8}"
                             f"{row.get('skipped', 0):>9}{open_:>6}")  # fmt: skip
    alerts = ", ".join(f"{kind} {n}" for kind, n in sorted(report.alerts.items())) or "none"
    broker = " · ".join(f"{k} {v}" for k, v in report.broker.items())
    lines += [
        "",
        f"  delivered      {report.count(status='sent'):,} of {report.deliverable:,} deliverable = "
        f"{report.rate:.2%} (target {TARGET_RATE:.0%}; provider acceptance, receipts come with webhooks)",
        f"  duplicates     {report.duplicates} (same text to the same recipient twice, counted at the providers)",
        f"  alerts         {alerts}",
        f"  broker         {broker}",
        f"  bad input      {report.rejected_events} rejected events · {report.dead_letters} dead letters",
        f"  messages sent  {outbox}/sms.jsonl and {outbox}/email.jsonl · function logs in {logs}/",
        f"  wall time      {wall_s:.1f} s · peak memory {peak_memory / 2**20:.0f} MB "
        "(PSS, every process the demo started)",
        *(f"  PROBLEM        {note}" for note in report.notes),
        _summary(report, wall_s),
    ]
    return "\n".join(lines)


def _summary(report: Report, wall_s: float) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    return (
        f"{verdict}: {report.count():,} messages, {report.rate:.2%} delivered (target {TARGET_RATE:.0%}), "
        f"{report.duplicates} duplicates, {sum(report.alerts.values())} alerts, {wall_s:.0f} s"
    )
