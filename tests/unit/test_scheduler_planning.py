"""The scheduler's pure step: late and missed reminders become alerts (the due ones are planned in SQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.support.functions import load_module

planning = load_module("scheduler", "planning")
NOW = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)


def _row(**overrides: object) -> dict[str, object]:
    """A row of plan_due_reminders: one reminder staged."""
    row: dict[str, object] = {
        "outbox_id": 1, "id": "a1", "reminder_local_date": date(2026, 3, 10),
        "reminder_due_at": NOW - timedelta(minutes=5), "late": False,
    }  # fmt: skip
    return {**row, **overrides}


class TestLateReminderAlerts:
    def test_a_reminder_inside_its_window_raises_nothing(self) -> None:
        """A reminder planned before its window closes is on time, without alert."""
        assert planning.late_reminder_alerts([_row()]) == []

    def test_a_late_reminder_is_warned_once_per_reminder(self) -> None:
        """A reminder planned after 12:00 local still goes out; a warning keyed by appointment and day says so."""
        [alert] = planning.late_reminder_alerts([_row(late=True), _row(id="a2")])
        assert (alert.dedup_key, alert.kind, alert.severity, alert.subject) == (
            "reminder-late:a1:2026-03-10", "reminder_late", "warning", "a1")  # fmt: skip

    def test_the_due_time_is_told_in_utc_whatever_the_session_zone(self) -> None:
        """The driver hands timestamps back in the session's zone; the alert says the instant in UTC."""
        local = (NOW - timedelta(minutes=5)).astimezone(ZoneInfo("America/New_York"))
        [alert] = planning.late_reminder_alerts([_row(late=True, reminder_due_at=local)])
        assert "(due 2026-03-07T14:55Z)" in alert.detail


class TestMissedReminders:
    def test_only_upcoming_appointments_raise_an_alert(self) -> None:
        """A reminder given up on for an appointment still ahead is critical; one already past is not news."""
        rows = [{"id": "a1", "reminder_local_date": date(2026, 3, 10), "upcoming": True},
                {"id": "a2", "reminder_local_date": date(2026, 3, 1), "upcoming": False}]  # fmt: skip
        assert [(a.subject, a.severity) for a in planning.missed_reminder_alerts(rows)] == [("a1", "critical")]
