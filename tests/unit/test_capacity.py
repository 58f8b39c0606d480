"""The scheduler's capacity check: can each window's reminders go out at the providers' rates? (pure)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.functions import load_module

capacity = load_module("scheduler", "capacity")
NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
NOON_NY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 12:00 in New York: that window is 14:00-17:00 UTC


def load(channel: str, end: datetime, reminders: int) -> object:
    return capacity.WindowLoad(channel, end - capacity.WINDOW, end, reminders)


class TestShortfalls:
    @pytest.mark.parametrize(("reminders", "rate", "short"), [
        (10_800, 1.0, False),  # exactly 1/s for 3 hours: fits
        (10_801, 1.0, True),  # one more does not
        (8_000, 1.0, False),  # the hospital's day on one long code
        (24_000, 2.0, True),  # two long codes are not enough for 24,000
    ])  # fmt: skip
    def test_one_window_fits_rate_times_three_hours(self, reminders: int, rate: float, short: bool) -> None:
        """A single zone: the window's reminders must fit in rate × 3 h."""
        found = capacity.shortfalls([load("sms", NOON_NY, reminders)], {"sms": rate}, NOW)
        assert bool(found) is short

    def test_overlapping_zones_share_the_capacity(self) -> None:
        """New York and Chicago overlap by 2 h: 6,000 each fit their own 3 h, but 12,000 do not fit 4 h at 0.75/s."""
        loads = [load("sms", NOON_NY, 6_000), load("sms", NOON_NY + timedelta(hours=1), 6_000)]
        [short] = capacity.shortfalls(loads, {"sms": 0.75}, NOW)
        assert (short.demand, short.capacity) == (12_000, 10_800)
        assert short.end - short.start == timedelta(hours=4)

    def test_zones_far_apart_each_get_the_whole_rate(self) -> None:
        """New York and Los Angeles do not overlap: 10,000 each fit at 1/s."""
        loads = [load("sms", NOON_NY, 10_000), load("sms", NOON_NY + timedelta(hours=3), 10_000)]
        assert capacity.shortfalls(loads, {"sms": 1.0}, NOW) == []

    def test_a_window_already_open_has_only_its_remaining_time(self) -> None:
        """At 16:00 UTC, one hour of New York's window is left: 4,000 still to send at 1/s do not fit."""
        [short] = capacity.shortfalls([load("sms", NOON_NY, 4_000)], {"sms": 1.0}, NOON_NY - timedelta(hours=1))
        assert (short.demand, short.capacity) == (4_000, 3_600)

    def test_channels_are_judged_on_their_own_rate(self) -> None:
        """Email at 14/s takes what SMS at 1/s cannot."""
        loads = [load("sms", NOON_NY, 20_000), load("email", NOON_NY, 20_000)]
        assert [s.channel for s in capacity.shortfalls(loads, {"sms": 1.0, "email": 14.0}, NOW)] == ["sms"]

    def test_a_closed_window_is_not_judged(self) -> None:
        """Late reminders (their window has ended) go out anyway and are alerted as late elsewhere."""
        assert capacity.shortfalls([load("sms", NOW - timedelta(hours=1), 50_000)], {"sms": 1.0}, NOW) == []


class TestAlerts:
    def test_one_alert_per_channel_and_day_naming_no_one(self) -> None:
        """Keyed by channel and date, so each tick of the day sees the same incident; the detail gives the numbers."""
        [short] = capacity.shortfalls([load("sms", NOON_NY, 12_000)], {"sms": 1.0}, NOW)
        [alert] = capacity.capacity_alerts([short])
        assert alert.dedup_key == "capacity_short:sms:2026-11-25" and (alert.kind, alert.subject) == (
            "capacity_short",
            "sms",
        )
        assert "12000 sms reminders" in alert.detail and "only 10800" in alert.detail
        assert "2026-11-25T14:00Z and 2026-11-25T17:00Z" in alert.detail

    def test_rows_from_the_database_become_loads(self) -> None:
        """Each row is a window ending at its end instant, three hours long."""
        [w] = capacity.loads_from_rows([{"channel": "sms", "window_end": NOON_NY, "reminders": 3}])
        assert (w.start, w.end, w.reminders) == (NOON_NY - timedelta(hours=3), NOON_NY, 3)
