"""The goals issue 8 sets, reported against (never asserted): each a name, a target and a check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GOALS", "Goal", "judged"]

Results = Mapping[str, Any]


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    value: Callable[[Results], float | None]
    met: Callable[[float], bool]
    unit: str = ""  # "%" shows a share as a percentage


def _get(*path: str) -> Callable[[Results], float | None]:
    def value(results: Results) -> float | None:
        found: Any = results
        for key in path:
            if not isinstance(found, Mapping) or key not in found:
                return None
            found = found[key]
        return float(found) if isinstance(found, int | float) else None

    return value


def _worst(section: str, field: str) -> Callable[[Results], float | None]:
    """The largest ``field`` over the functions in ``end_to_end[section]``."""

    def value(results: Results) -> float | None:
        functions = results.get("end_to_end", {}).get(section, {})
        return max((float(f[field]) for f in functions.values()), default=None)

    return value


GOALS = (
    Goal("end-to-end throughput", ">= 1,000 notifications/s", _get("end_to_end", "notifications_per_s"),
         lambda v: v >= 1000, "/s"),
    Goal("share of the raw pika ceiling", ">= 25%", _get("ceiling", "share_of_pika"), lambda v: v >= 0.25, "%"),
    Goal("scheduler planning, 100,000 due", "< 5 s", _get("planning", "planning_s"), lambda v: v < 5, " s"),
    Goal("change-notice latency p99", "< 250 ms", _get("change_notice_latency", "p99_ms"), lambda v: v < 250, " ms"),
    Goal("slowest cold start", "< 1 s", _worst("cold_start", "ready_s"), lambda v: v < 1, " s"),
    Goal("largest function (RSS after the run)", "< 100 MB", _worst("memory_after_run", "rss_mb"),
         lambda v: v < 100, " MB"),
)  # fmt: skip


def judged(results: Results) -> dict[str, dict[str, Any]]:
    """Each goal with its measured value and whether it was met (None: not measured this run)."""
    verdicts = {}
    for goal in GOALS:
        value = goal.value(results)
        verdicts[goal.name] = {
            "target": goal.target, "value": value, "unit": goal.unit, "met": None if value is None else goal.met(value),
        }  # fmt: skip
    return verdicts
