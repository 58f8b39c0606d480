"""The scheduler's pure step: due rows become events; late and missed reminders become alerts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.support.functions import load_module

planning = load_module("scheduler", "planning")
NOW = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "a1", "version": 1, "reminder_local_date": date(2026, 3, 10),
        "reminder_due_at": NOW - timedelta(minutes=5), "reminder_window_end": NOW + timedelta(hours=1),
    }  # fmt: skip
    return {**row, **overrides}


class TestRemindersDue:
    def test_a_row_inside_its_window_is_due_and_not_late(self) -> None:
        """A reminder planned before its window closes is an on-time event, without alert."""
        due, alerts = planning.reminders_due([_row()], NOW)
        assert [(d.appointment_id, d.late) for d in due] == [("a1", False)] and alerts == []

    def test_a_row_past_its_window_is_late_and_alerted(self) -> None:
        """A reminder planned after 12:00 local still goes out, flagged late, with a warning alert."""
        due, alerts = planning.reminders_due([_row(reminder_window_end=NOW - timedelta(hours=1))], NOW)
        assert due[0].late and [a.kind for a in alerts] == ["reminder_late"]


class TestMissedReminders:
    def test_only_upcoming_appointments_raise_an_alert(self) -> None:
        """A reminder given up on for an appointment still ahead is critical; one already past is not news."""
        rows = [{"id": "a1", "reminder_local_date": date(2026, 3, 10), "upcoming": True},
                {"id": "a2", "reminder_local_date": date(2026, 3, 1), "upcoming": False}]  # fmt: skip
        assert [(a.subject, a.severity) for a in planning.missed_reminder_alerts(rows)] == [("a1", "critical")]
