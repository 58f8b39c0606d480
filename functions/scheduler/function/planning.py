"""Pure: an alert for every reminder planned late, and for every one given up on.

Which reminders are due, and their events, are decided set-based in SQL (``plan_due_reminders``):
building 100,000 events in Python and handing them to the driver took most of a tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from patient_notify.domain.alerts import Alert

__all__ = ["late_reminder_alerts", "missed_reminder_alerts"]


def late_reminder_alerts(rows: Sequence[Mapping[str, Any]]) -> list[Alert]:
    """A reminder planned after its 09:00-12:00 window still goes out, flagged late: warn once per reminder."""
    return [
        Alert(f"reminder-late:{row['id']}:{row['reminder_local_date']}", "reminder_late", "warning", row["id"],
              f"reminder planned after its 09:00-12:00 window (due {_utc(row['reminder_due_at']):%Y-%m-%dT%H:%MZ})")
        for row in rows if row["late"]
    ]  # fmt: skip


def missed_reminder_alerts(rows: Sequence[Mapping[str, Any]]) -> list[Alert]:
    """An appointment still ahead that can no longer be reminded in time; past ones need nobody."""
    return [
        Alert(f"reminder-missed:{row['id']}:{row['reminder_local_date']}", "reminder_missed", "critical",
              row["id"], "no reminder was sent before the late cutoff (data arrived late, or an outage)")
        for row in rows if row["upcoming"]
    ]  # fmt: skip


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)
