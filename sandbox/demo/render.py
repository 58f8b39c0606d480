"""The demo's closing report as text; the last line is the one-line summary."""

from __future__ import annotations

from pathlib import Path

from sandbox.demo.report import CHANNELS, TARGET_RATE, Report
from sandbox.demo.script import DayLog

__all__ = ["render"]

KINDS = ("reminder", "change", "cancellation")
# status -> (column title, width); "sent" is accepted by the provider with no receipt (yet)
COLUMNS = {"delivered": ("delivered", 11), "sent": ("no receipt", 12), "undelivered": ("undelivered", 13),
           "failed": ("failed", 8), "skipped": ("skipped", 9), "open": ("open", 6)}  # fmt: skip


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
        "  " + f"{'message':<24}" + "".join(f"{title:>{width}}" for title, width in COLUMNS.values()),
    ]
    for kind in KINDS:
        for channel in CHANNELS:
            row = {s: n for (k, c, s), n in report.messages.items() if k == kind and c == channel}
            if row:
                row["open"] = sum(n for s, n in row.items() if s not in COLUMNS)
                cells = "".join(f"{row.get(status, 0):>{width}}" for status, (_, width) in COLUMNS.items())
                lines.append(f"  {kind + ' · ' + channel:<24}{cells}")
    alerts = ", ".join(f"{kind} {n}" for kind, n in sorted(report.alerts.items())) or "none"
    raised = sorted(report.monitor_alerts.items())
    monitor = ", ".join(f"{kind} {n}" for kind, n in raised if not kind.endswith(")")) or "none"
    resolved = ", ".join(f"{kind.removesuffix(' (resolved)')} {n}" for kind, n in raised if kind.endswith(")"))
    broker = " · ".join(f"{k} {v}" for k, v in report.broker.items())
    lines += [
        "",
        f"  delivered      {report.delivered():,} of {report.deliverable():,} deliverable = "
        f"{report.rate:.2%} (target {TARGET_RATE:.0%})",
        "                 "
        + " · ".join(f"{c} {report.delivered(c):,} of {report.deliverable(c):,} {_how(report, c)}" for c in CHANNELS),
        f"  receipts       {_receipts(report)}",
        "  settled        "
        + " · ".join(f"{c} {report.settled_rate(c):.2%}" for c in CHANNELS if c in report.receipt_channels)
        + " = delivered / (delivered + undelivered + failed): the monitor's measure, alerted below 99%",
        f"  not delivered  {report.count(status='failed')} refused at send · {report.count(status='undelivered')} "
        f"undelivered by receipt · {report.counts['fallbacks']} emailed instead of an SMS · "
        f"{report.counts['suppressed']} addresses suppressed (each alerted)",
        f"  duplicates     {report.duplicates} (same text to the same recipient twice, counted at the providers)",
        f"  alerts         {alerts}",
        f"  monitor        {report.monitor_ticks} ticks answered · open alerts it raised: {monitor}"
        + (f" · raised and since resolved: {resolved}" if resolved else ""),
        f"  broker         {broker}",
        f"  bad input      {report.counts['rejected']} rejected events · {report.counts['dead']} dead letters",
        f"  messages sent  {outbox}/sms.jsonl and {outbox}/email.jsonl · function logs in {logs}/",
        f"  wall time      {wall_s:.1f} s · peak memory {peak_memory / 2**20:.0f} MB "
        "(PSS, every process the demo started)",
        *(f"  PROBLEM        {note}" for note in report.notes),
        _summary(report, wall_s),
    ]
    return "\n".join(lines)


def _how(report: Report, channel: str) -> str:
    if channel == "sms":
        return "by Twilio status callback"
    if channel in report.receipt_channels:
        return "by SES Delivery event (signed SNS)"
    return "accepted by the SMTP server (SMTP sends no receipts)"


def _receipts(report: Report) -> str:
    kept = " + ".join(f"{n:,} {provider}" for (provider, verified), n in sorted(report.receipts.items()) if verified)
    unverified = sum(n for (_, verified), n in report.receipts.items() if not verified)
    return f"{kept or 'none'} kept and verified · {unverified} refused as unverified"


def _summary(report: Report, wall_s: float) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    return (
        f"{verdict}: {report.count():,} messages, {report.rate:.2%} delivered (target {TARGET_RATE:.0%}), "
        f"{report.duplicates} duplicates, {sum(report.alerts.values())} alerts, {wall_s:.0f} s"
    )
