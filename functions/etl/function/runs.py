"""The ledger of passes (``etl_runs``): where each started, how far it got, how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

__all__ = ["PassPlan", "PassReport", "plan_pass"]

Mode = Literal["incremental", "full"]


@dataclass(frozen=True)
class PassPlan:
    """A fresh pass: what to ask the source for."""

    mode: Mode
    window_start: datetime
    window_end: datetime
    since: datetime | None


@dataclass
class PassReport:
    run_id: int
    mode: str
    status: str = "running"
    resumed: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    error: str | None = None

    def summary(self) -> str:
        c = self.counts
        return (
            f"etl {self.status}: mode={self.mode} resumed={self.resumed} pages={c.get('pages', 0)} "
            f"fetched={c.get('fetched', 0)} upserted={c.get('upserted', 0)} changed={c.get('changed', 0)} "
            f"rejected={c.get('rejected', 0)} missing={c.get('missing', 0)} requests={c.get('requests', 0)} "
            f"retries={c.get('retries', 0)} in {self.duration_s:.1f} s" + (f" ({self.error})" if self.error else "")
        )


def plan_pass(
    last: dict[str, Any] | None, now: datetime, *, horizon: timedelta, lookback: timedelta, full_every: timedelta
) -> PassPlan:
    """Pure: a full reconcile when none succeeded within ``full_every``, else incremental since the
    last success's start, less ``lookback`` (clock skew, records updated while that pass ran).

    A full reconcile that failed is followed by an incremental pass before it is tried again: a
    page that fails every time must not hold back every newer move and cancellation (a full pass
    reads the oldest records first)."""
    full_due = last is None or last["last_full_at"] is None or now - last["last_full_at"] >= full_every
    if full_due and last is not None and last.get("latest_mode") == "full" and last.get("latest_status") != "succeeded":
        full_due = False  # alternate: the changes first, the reconcile again next time
    since = None if full_due or last is None else last["last_started_at"] - lookback
    return PassPlan("full" if full_due else "incremental", now, now + horizon, since)
