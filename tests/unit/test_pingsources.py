"""PingSources as the local broker reads them from knative/, and when they fire."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from sandbox.pingsources import PING_TYPE, PingSource, load_pingsources
from sandbox.processes import ROOT


def _times(source: PingSource, after: datetime, count: int) -> list[datetime]:
    return list(islice(source.fire_times(after), count))


class TestLoading:
    def test_the_manifests_pingsources_are_read_with_schedule_zone_and_data(self) -> None:
        """Every tick from knative/base/pingsources.yaml, with the fields the ping adapter uses."""
        sources = {s.name: s for s in load_pingsources(ROOT / "knative")}
        assert set(sources) == {"scheduler-tick", "etl-tick", "monitor-tick"}
        scheduler = sources["scheduler-tick"]
        assert (scheduler.schedule, scheduler.timezone, scheduler.data) == (
            "*/5 * * * *", "Etc/UTC", '{"job":"plan-reminders"}',
        )  # fmt: skip
        assert scheduler.source == "/apis/v1/namespaces/patient-notify/pingsources/scheduler-tick"


class TestFireTimes:
    @pytest.mark.parametrize(
        ("zone", "expected_utc_hours"),
        [
            ("America/New_York", [14, 14, 13, 13]),  # 09:00 EST, then EDT from 8 March 2026
            ("Europe/London", [9, 9, 9, 9]),  # the UK moves its clocks on 29 March, not in this span
            ("Asia/Kolkata", [3, 3, 3, 3]),  # 09:00 IST is 03:30 UTC; no DST
        ],
    )
    def test_a_daily_schedule_fires_at_local_time_across_a_dst_switch(
        self, zone: str, expected_utc_hours: list[int]
    ) -> None:
        """ "0 9 * * *" fires at 09:00 on the wall clock of its timezone, whatever the offset that day."""
        source = PingSource("daily", "ns", "0 9 * * *", timezone=zone)
        times = _times(source, datetime(2026, 3, 5, 23, 0, tzinfo=UTC), 4)
        assert [t.hour for t in times] == expected_utc_hours
        assert all(t.tzinfo == UTC for t in times)

    def test_the_hour_that_does_not_exist_is_skipped(self) -> None:
        """On 8 March 2026 New York has no 02:xx: "*/30 1-3 * * *" fires at 01:00, 01:30, 03:00, 03:30."""
        source = PingSource("night", "ns", "*/30 1-3 * * *", timezone="America/New_York")
        times = _times(source, datetime(2026, 3, 8, 5, 0, tzinfo=UTC), 4)
        assert [t.isoformat() for t in times] == [
            "2026-03-08T06:00:00+00:00", "2026-03-08T06:30:00+00:00",
            "2026-03-08T07:00:00+00:00", "2026-03-08T07:30:00+00:00",
        ]  # fmt: skip

    def test_the_event_carries_the_scheduled_time_and_the_specs_data(self) -> None:
        """type dev.knative.sources.ping, the PingSource's source, time = the instant, data as written."""
        source = PingSource("tick", "ns", "* * * * *", data='{"job":"x"}')
        at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
        event = source.event(at)
        attributes = event.get_attributes()
        assert (attributes["type"], attributes["source"], attributes["time"]) == (
            PING_TYPE, "/apis/v1/namespaces/ns/pingsources/tick", at,
        )  # fmt: skip
        assert event.get_data() == b'{"job":"x"}'
