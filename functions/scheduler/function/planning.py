"""Pure: an alert for every reminder planned late, and for every one given up on (short-notice
bookings, which nobody could have reminded on time, in one alert a day).

Which reminders are due, and their events, are decided set-based in SQL (``plan_due_reminders``):
building 100,000 events in Python and handing them to the driver took most of a tick.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from patient_notify.domain.alerts import Alert

__all__ = ["late_reminder_alerts", "missed_reminder_alerts"]


def late_reminder_alerts(
    rows: Sequence[Mapping[str, Any]], short_notice: Collection[str], now: datetime
) -> list[Alert]:
    """A reminder planned after its 09:00-12:00 window still goes out, flagged late: warn once per
    reminder when it was known in time (late data, an outage). Those whose reminder day was known
    only after the window (``short_notice``: booked less than three days ahead) are counted in one
    alert a day instead: nothing failed."""
    late = [row for row in rows if row["late"]]
    alerts = [
        Alert(f"reminder-late:{row['id']}:{row['reminder_local_date']}", "reminder_late", "warning", row["id"],
              f"reminder planned after its 09:00-12:00 window (due {_utc(row['reminder_due_at']):%Y-%m-%dT%H:%MZ})")
        for row in late if row["id"] not in short_notice
    ]  # fmt: skip
    booked_late = sum(1 for row in late if row["id"] in short_notice)
    return alerts + _short_notice(booked_late, "sent after their 09:00-12:00 window", now)


def missed_reminder_alerts(rows: Sequence[Mapping[str, Any]], now: datetime) -> list[Alert]:
    """An appointment still ahead that can no longer be reminded in time: critical when it was known
    in time (an outage, late data); past ones need nobody; one booked too close to be reminded at all
    (``short_notice``) is counted in the day's short-notice alert."""
    upcoming = [row for row in rows if row["upcoming"]]
    alerts = [
        Alert(f"reminder-missed:{row['id']}:{row['reminder_local_date']}", "reminder_missed", "critical",
              row["id"], "no reminder was sent before the late cutoff (data arrived late, or an outage)")
        for row in upcoming if not row["short_notice"]
    ]  # fmt: skip
    booked_too_close = sum(1 for row in upcoming if row["short_notice"])
    return alerts + _short_notice(booked_too_close, "not sent: booked after the late cutoff", now)


def _short_notice(count: int, what: str, now: datetime) -> list[Alert]:
    """One warning a day (UTC), its detail the latest tick's count; ``occurrences`` counts the ticks."""
    if not count:
        return []
    day = f"{_utc(now):%Y-%m-%d}"
    return [Alert(f"reminder-short-notice:{day}:{what}", "reminder_short_notice", "warning", day,
                  f"{count} reminders for appointments booked at short notice {what} (this tick)")]  # fmt: skip


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)
