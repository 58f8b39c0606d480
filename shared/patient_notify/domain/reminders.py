"""When a reminder is due: 09:00–12:00 patient-local, three wall-clock days before (DESIGN §6)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from patient_notify.domain.localtime import instant_at

__all__ = ["DAYS_BEFORE", "WINDOW_END", "WINDOW_START", "ReminderPlan", "reminder_plan_for"]

DAYS_BEFORE = 3
WINDOW_START = time(9, 0)
WINDOW_END = time(12, 0)


@dataclass(frozen=True)
class ReminderPlan:
    local_date: date  # the appointment's date in the patient's zone: part of the reminder's key
    due_at: datetime  # UTC, spread inside the window
    window_end: datetime  # UTC; a reminder planned after this is late


def reminder_plan_for(appointment_id: str, starts_at: datetime, zone: ZoneInfo) -> ReminderPlan:
    """Deterministic: the same appointment always gets the same instant (planning is repeatable)."""
    local_date = starts_at.astimezone(zone).date()
    remind_on = local_date - timedelta(days=DAYS_BEFORE)
    opens = instant_at(remind_on, WINDOW_START, zone)
    closes = instant_at(remind_on, WINDOW_END, zone)
    offset = timedelta(seconds=int(_spread(appointment_id) * (closes - opens).total_seconds()))
    due = min(opens + offset, starts_at.astimezone(UTC))
    return ReminderPlan(local_date=local_date, due_at=due, window_end=closes)


def _spread(key: str) -> float:
    """A stable fraction in [0, 1) so a day's reminders spread over the window, not all at 09:00."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
