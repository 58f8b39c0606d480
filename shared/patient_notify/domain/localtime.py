"""Wall-clock time → instant, with DST gaps and folds resolved explicitly."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["instant_at"]


def instant_at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall clock in ``zone`` shows ``wall`` on ``day``.

    A repeated wall time (fold) resolves to its first occurrence. A nonexistent one (gap)
    resolves to the first instant after the gap, when clocks show the first wall time that exists.
    """
    naive = datetime.combine(day, wall)
    earlier = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    later = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    for candidate in sorted((earlier, later)):
        if candidate.astimezone(zone).replace(tzinfo=None) == naive:
            return candidate
    return _end_of_gap(min(earlier, later), max(earlier, later), zone)


def _end_of_gap(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """Bisect to the transition: the first second whose offset is the post-gap offset."""
    target = after.astimezone(zone).utcoffset()
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
