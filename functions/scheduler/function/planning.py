"""Pure: due appointments → "reminder due" events, and an alert for every reminder sent late."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from patient_notify.domain.alerts import Alert
from patient_notify.events import ReminderDue

__all__ = ["reminders_due"]


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
