"""Pure: due appointments → "reminder due" events, and an alert for every reminder sent late."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from patient_notify.domain.alerts import Alert
from patient_notify.events import ReminderDue

__all__ = ["missed_reminder_alerts", "reminders_due"]


def reminders_due(rows: Sequence[Mapping[str, Any]], now: datetime) -> tuple[list[ReminderDue], list[Alert]]:
    due = [
        ReminderDue(
            appointment_id=row["id"], appointment_version=row["version"],
            local_date=row["reminder_local_date"], due_at=row["reminder_due_at"],
            late=now > row["reminder_window_end"],
        )
        for row in rows
    ]  # fmt: skip
    alerts = [
        Alert(f"reminder-late:{r.appointment_id}:{r.local_date}", "reminder_late", "warning",
              r.appointment_id, f"reminder planned after its 09:00-12:00 window (due {r.due_at:%Y-%m-%dT%H:%MZ})")
        for r in due if r.late
    ]  # fmt: skip
    return due, alerts


def missed_reminder_alerts(rows: Sequence[Mapping[str, Any]]) -> list[Alert]:
    """An appointment still ahead that can no longer be reminded in time; past ones need nobody."""
    return [
        Alert(f"reminder-missed:{row['id']}:{row['reminder_local_date']}", "reminder_missed", "critical",
              row["id"], "no reminder was sent before the late cutoff (data arrived late, or an outage)")
        for row in rows if row["upcoming"]
    ]  # fmt: skip
