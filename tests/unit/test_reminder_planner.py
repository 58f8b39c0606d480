"""The reminder planner (DESIGN §6) as properties over every IANA zone and DST transition."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from patient_notify.domain.localtime import instant_at
from patient_notify.domain.reminders import WINDOW_END, WINDOW_START, reminder_plan_for

ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})

appointments = st.builds(
    lambda zone, day, minute, ident: (
        ZoneInfo(zone), instant_at(day, time(minute // 60, minute % 60), ZoneInfo(zone)), ident,
    ),
    st.sampled_from(ZONES),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    st.integers(min_value=0, max_value=24 * 60 - 1),
    st.text(min_size=1, max_size=12),
)  # fmt: skip


@functools.cache
def _transition_days(zone: str) -> tuple[date, ...]:
    """Days in 2020-2035 on which the zone's UTC offset changes (DST and other switches)."""
    tz, day, found = ZoneInfo(zone), date(2020, 1, 1), []
    while day < date(2036, 1, 1):
        if instant_at(day, time(0), tz).utcoffset() != datetime.combine(day, time(23, 59), tz).utcoffset():
            found.append(day)
        day += timedelta(days=1)
    return tuple(found)


ZONES_WITH_SWITCHES = [
    z
    for z in (
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Pacific/Chatham",
        "Asia/Tehran",
        "America/Havana",
        "Africa/Casablanca",
        "Europe/Chisinau",
        "America/Asuncion",
    )
    if _transition_days(z)
]

# Appointments on, or three days after, a day whose clocks change: the reminder lands on the switch.
around_switches = st.sampled_from(ZONES_WITH_SWITCHES).flatmap(
    lambda zone: st.builds(
        lambda day, shift, minute, ident: (
            ZoneInfo(zone), instant_at(day + timedelta(days=shift), time(minute // 60, minute % 60), ZoneInfo(zone)), ident,
        ),
        st.sampled_from(_transition_days(zone)), st.sampled_from([0, 3]),
        st.integers(min_value=0, max_value=24 * 60 - 1), st.text(min_size=1, max_size=12),
    )
)  # fmt: skip


def _window_exists(day: date, zone: ZoneInfo) -> bool:
    """Some wall time between 09:00 and 12:00 exists on that day (no day-long gap swallowed it)."""
    return instant_at(day, WINDOW_START, zone).astimezone(zone).date() == day


class TestReminderInstant:
    @settings(max_examples=1500, deadline=None)
    @given(appointments | around_switches)
    def test_inside_the_window_on_the_right_local_date(self, case: tuple[ZoneInfo, datetime, str]) -> None:
        """The instant shows 09:00-12:00 on the wall clock, three local days before the appointment."""
        zone, starts_at, ident = case
        plan = reminder_plan_for(ident, starts_at, zone)
        local = plan.due_at.astimezone(zone)
        remind_on = starts_at.astimezone(zone).date() - timedelta(days=3)
        assert plan.local_date == starts_at.astimezone(zone).date()
        assert plan.due_at <= plan.window_end
        if _window_exists(remind_on, zone):
            assert local.date() == remind_on
            assert WINDOW_START <= local.time() < WINDOW_END
            assert plan.due_at < plan.window_end

    @settings(max_examples=1000, deadline=None)
    @given(appointments | around_switches)
    def test_never_after_the_appointment(self, case: tuple[ZoneInfo, datetime, str]) -> None:
        """A reminder is always planned before the appointment starts."""
        zone, starts_at, ident = case
        assert reminder_plan_for(ident, starts_at, zone).due_at < starts_at

    @settings(max_examples=1000, deadline=None)
    @given(appointments)
    def test_planning_twice_gives_the_same_plan(self, case: tuple[ZoneInfo, datetime, str]) -> None:
        """Planning is a pure function of the appointment: repeated ticks agree."""
        zone, starts_at, ident = case
        assert reminder_plan_for(ident, starts_at, zone) == reminder_plan_for(ident, starts_at, ZoneInfo(zone.key))

    def test_spring_forward_is_three_wall_clock_days(self) -> None:
        """Across a spring-forward, "three days before" is 71 real hours, not 72."""
        zone = ZoneInfo("America/New_York")
        start = datetime(2026, 3, 10, 10, 0, tzinfo=zone)  # DST began 2026-03-08 02:00
        plan = reminder_plan_for("a", start.astimezone(UTC), zone)
        assert plan.due_at.astimezone(zone).date() == date(2026, 3, 7)
        assert instant_at(date(2026, 3, 10), time(10), zone) - instant_at(
            date(2026, 3, 7), time(10), zone
        ) == timedelta(hours=71)

    def test_reminders_spread_over_the_window(self) -> None:
        """A day's reminders are spread across 09:00-12:00, not bunched at 09:00."""
        zone = ZoneInfo("Europe/Madrid")
        start = datetime(2026, 6, 10, 10, 0, tzinfo=zone)
        hours = {reminder_plan_for(f"a{i}", start, zone).due_at.astimezone(zone).hour for i in range(200)}
        assert hours == {9, 10, 11}


class TestWallClockResolution:
    # (zone, day, wall time, expected UTC instant)
    CASES = (
        ("America/New_York", date(2026, 3, 8), time(2, 30), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # gap: end of gap
        ("America/New_York", date(2026, 11, 1), time(1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # fold: first
        ("Europe/London", date(2026, 7, 1), time(9, 0), datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),  # ordinary
        (
            "Australia/Lord_Howe",
            date(2026, 10, 4),
            time(2, 15),
            datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
        ),  # 30-min gap
    )

    def test_gaps_and_folds_resolve_as_documented(self) -> None:
        """A nonexistent wall time resolves to the end of the gap; a repeated one to its first occurrence."""
        for zone, day, wall, expected in self.CASES:
            assert instant_at(day, wall, ZoneInfo(zone)) == expected, zone
