"""Which pass to run, and what a changed appointment looks like as an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from patient_notify.domain.changes import changes_in
from tests.support.functions import load_module

runs = load_module("etl", "runs")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _plan(last: dict[str, datetime] | None) -> Any:
    return runs.plan_pass(last, NOW, horizon=14 * DAY, lookback=timedelta(minutes=10), full_every=DAY)


class TestPlanPass:
    @pytest.mark.parametrize(("last", "mode", "since"), [
        (None, "full", None),  # first pass ever: everything in the horizon
        ({"last_started_at": NOW - timedelta(minutes=15), "last_full_at": NOW - 2 * DAY}, "full", None),  # reconcile due
        ({"last_started_at": NOW - timedelta(minutes=15), "last_full_at": NOW - timedelta(hours=3)},
         "incremental", NOW - timedelta(minutes=25)),  # since the last start, less the lookback
        # The due reconcile failed last time: the changes since the last success first, ...
        ({"last_started_at": NOW - timedelta(minutes=15), "last_full_at": NOW - 2 * DAY,
          "latest_mode": "full", "latest_status": "failed"}, "incremental", NOW - timedelta(minutes=25)),
        ({"last_started_at": NOW - timedelta(minutes=15), "last_full_at": NOW - 2 * DAY,
          "latest_mode": "full", "latest_status": "superseded"}, "incremental", NOW - timedelta(minutes=25)),
        # ... then the reconcile again
        ({"last_started_at": NOW - timedelta(minutes=15), "last_full_at": NOW - 2 * DAY,
          "latest_mode": "incremental", "latest_status": "succeeded"}, "full", None),
    ])  # fmt: skip
    def test_full_when_due_else_incremental_since_the_watermark(self, last: Any, mode: str, since: Any) -> None:
        """A full reconcile when none succeeded within a day; otherwise only what changed since."""
        plan = _plan(last)
        assert (plan.mode, plan.since) == (mode, since)
        assert plan.window_end - plan.window_start == 14 * DAY


def _row(**overrides: object) -> dict[str, object]:
    start = NOW + 3 * DAY
    row: dict[str, object] = {
        "id": "a1", "version": 2, "starts_at": start, "location_id": "loc-1", "status": "booked",
        "old_version": 1, "old_starts_at": start, "old_location_id": "loc-1", "old_status": "booked",
    }  # fmt: skip
    return {**row, **overrides}


class TestChangesIn:
    @pytest.mark.parametrize(("overrides", "reason"), [
        ({"starts_at": NOW + 4 * DAY}, "rescheduled"),
        ({"location_id": "loc-2"}, "relocated"),
        ({"status": "cancelled"}, "cancelled"),
        ({"status": "noshow"}, "status-changed"),
        ({"old_status": "cancelled"}, "rebooked"),  # reinstated after a cancellation
    ])  # fmt: skip
    def test_each_change_is_one_event_with_its_reason_and_version(
        self, overrides: dict[str, object], reason: str
    ) -> None:
        """A bumped version gives one event carrying the reason, the new version and both sets of facts."""
        [event] = changes_in([_row(**overrides)], detected_by="etl")
        assert (event.reason, event.version, event.previous.location_id) == (reason, 2, "loc-1")

    @pytest.mark.parametrize("overrides", [
        {"old_version": None},  # a new appointment: nothing to announce
        {"version": 1},  # unchanged re-fetch
    ])  # fmt: skip
    def test_new_or_unchanged_appointments_give_nothing(self, overrides: dict[str, object]) -> None:
        """Only an appointment whose version moved is announced."""
        assert changes_in([_row(**overrides)], detected_by="etl") == []
