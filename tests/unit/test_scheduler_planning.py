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
        assert planning.late_reminder_alerts([_row()], set(), NOW) == []

    def test_a_late_reminder_is_warned_once_per_reminder(self) -> None:
        """A reminder planned after 12:00 local still goes out; a warning keyed by appointment and day says so."""
        [alert] = planning.late_reminder_alerts([_row(late=True), _row(id="a2")], set(), NOW)
        assert (alert.dedup_key, alert.kind, alert.severity, alert.subject) == (
            "reminder-late:a1:2026-03-10", "reminder_late", "warning", "a1")  # fmt: skip

    def test_the_due_time_is_told_in_utc_whatever_the_session_zone(self) -> None:
        """The driver hands timestamps back in the session's zone; the alert says the instant in UTC."""
        local = (NOW - timedelta(minutes=5)).astimezone(ZoneInfo("America/New_York"))
        [alert] = planning.late_reminder_alerts([_row(late=True, reminder_due_at=local)], set(), NOW)
        assert "(due 2026-03-07T14:55Z)" in alert.detail


class TestMissedReminders:
    def test_only_upcoming_appointments_raise_an_alert(self) -> None:
        """A reminder given up on for an appointment still ahead is critical; one already past is not news."""
        rows = [{"id": "a1", "reminder_local_date": date(2026, 3, 10), "upcoming": True, "short_notice": False},
                {"id": "a2", "reminder_local_date": date(2026, 3, 1), "upcoming": False, "short_notice": False}]  # fmt: skip
        assert [(a.subject, a.severity) for a in planning.missed_reminder_alerts(rows, NOW)] == [("a1", "critical")]

    def test_appointments_booked_too_close_to_remind_are_counted_in_one_warning_a_day(self) -> None:
        """Booked after the cutoff: no reminder was possible, so no critical alert each; one warning for the day."""
        rows = [{"id": f"a{i}", "reminder_local_date": date(2026, 3, 7), "upcoming": True, "short_notice": True}
                for i in range(3)]  # fmt: skip
        [alert] = planning.missed_reminder_alerts(rows, NOW)
        later = planning.missed_reminder_alerts(rows[:1], NOW + timedelta(hours=2))
        assert (alert.kind, alert.severity, alert.subject) == ("reminder_short_notice", "warning", "2026-03-07")
        assert "3 reminders" in alert.detail and [a.dedup_key for a in later] == [alert.dedup_key]


class TestShortNotice:
    def test_a_late_reminder_for_a_short_notice_booking_is_counted_not_alerted_alone(self) -> None:
        """Late because the booking came after the window: counted in the day's warning; late by an outage: its own."""
        rows = [_row(late=True), _row(id="a2", late=True), _row(id="a3", late=True)]
        alerts = planning.late_reminder_alerts(rows, {"a2", "a3"}, NOW)
        assert [(a.kind, a.subject) for a in alerts] == [
            ("reminder_late", "a1"),
            ("reminder_short_notice", "2026-03-07"),
        ]
        assert "2 reminders" in alerts[1].detail
