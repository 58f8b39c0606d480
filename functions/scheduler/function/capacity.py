"""Pure: can the reminders still to send go out inside their windows at the providers' rates?

Each reminder must be sent inside its patient's 09:00-12:00 local window. With windows in several
zones overlapping, the test is the interval one (a fluid rate, earliest deadline first): for every
span [a, b] from a window's start (or now, if it has begun) to a window's end, the reminders whose
windows lie inside it must fit in ``rate × (b − a)``. The worst span per channel is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from patient_notify.domain.alerts import Alert
from patient_notify.domain.reminders import WINDOW_END, WINDOW_START

__all__ = ["WINDOW", "Shortfall", "WindowLoad", "capacity_alerts", "loads_from_rows", "shortfalls"]

WINDOW = datetime.combine(date.min, WINDOW_END) - datetime.combine(date.min, WINDOW_START)


@dataclass(frozen=True)
class WindowLoad:
    channel: str
    start: datetime
    end: datetime
    reminders: int


@dataclass(frozen=True)
class Shortfall:
    channel: str
    start: datetime
    end: datetime
    demand: int
    capacity: int
    rate_per_s: float


def loads_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[WindowLoad]:
    return [WindowLoad(r["channel"], r["window_end"] - WINDOW, r["window_end"], int(r["reminders"])) for r in rows]


def shortfalls(loads: Sequence[WindowLoad], rates: Mapping[str, float], now: datetime) -> list[Shortfall]:
    found = []
    for channel, rate in sorted(rates.items()):
        spans = [(max(w.start, now), w.end, w.reminders) for w in loads if w.channel == channel and w.end > now]
        worst = max((_span(channel, rate, a, b, spans) for a in {s[0] for s in spans} for b in {s[1] for s in spans}
                     if b > a), key=lambda s: s.demand - s.capacity, default=None)  # fmt: skip
        if worst is not None and worst.demand > worst.capacity:
            found.append(worst)
    return found


Span = tuple[datetime, datetime, int]  # (start, or now if begun; end; reminders)


def _span(channel: str, rate: float, a: datetime, b: datetime, spans: Sequence[Span]) -> Shortfall:
    demand = sum(n for start, end, n in spans if start >= a and end <= b)
    return Shortfall(channel, a, b, demand, int(rate * (b - a).total_seconds()), rate)


def capacity_alerts(found: Iterable[Shortfall]) -> list[Alert]:
    """One alert per channel and day (the UTC date the short span ends), however often it is seen."""
    return [
        Alert(f"capacity_short:{s.channel}:{s.end.astimezone(UTC).date()}", "capacity_short", "critical", s.channel,
              f"{s.demand} {s.channel} reminders are due between {_at(s.start)} and {_at(s.end)}, but at "
              f"{s.rate_per_s:g}/s only {s.capacity} can be sent: raise the provider's throughput (more numbers, "
              "a short code, a higher SES quota), or some will go out after their window")
        for s in found
    ]  # fmt: skip


def _at(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
