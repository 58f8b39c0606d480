"""Provider pacing as a shared schedule of turns: GCRA, the generic cell rate algorithm.

A provider key (one Twilio sender number, one SES region) sends at most ``per_second`` messages a
second, with up to ``burst`` at once after a quiet spell. Its whole state is one number,
``next_at``: when the key's schedule is next free. Taking a turn at ``now``::

    base    = max(next_at, now)                  an idle schedule earns no credit beyond the burst
    send_at = max(now, base - tolerance)         tolerance = (burst - 1) × interval
    next_at = base + interval                    interval  = 1 / per_second

Turns are handed out in order, and any two turns i < j satisfy
``send_at_j - send_at_i ≥ (j - i - (burst - 1)) × interval``, so no window of ``w`` seconds holds
more than ``burst + w × per_second`` sends (``tests/unit/test_pacing.py`` proves it by property).
A caller waits for its turn, or gives it up unreserved when it is further away than it may wait:
a refused caller costs the schedule nothing, so retries cannot push everyone else back.

``patient_notify.pacing`` runs the same two lines in one SQL statement, on the database's clock,
so every pod shares the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rate", "Turn", "next_turn", "send_at_for"]


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")

    @property
    def interval_s(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance_s(self) -> float:
        return (self.burst - 1) * self.interval_s


@dataclass(frozen=True)
class Turn:
    send_at: float  # when this caller may call the provider
    next_at: float  # the key's schedule after this turn

    def wait_s(self, now: float) -> float:
        return max(0.0, self.send_at - now)


def next_turn(next_at: float | None, now: float, rate: Rate) -> Turn:
    """The next turn on a schedule (``None``: a key never used), taken at ``now``."""
    base = now if next_at is None else max(next_at, now)
    return Turn(send_at=max(now, base - rate.tolerance_s), next_at=base + rate.interval_s)


def send_at_for(next_at_after: float, now: float, rate: Rate) -> float:
    """The turn's send time, from the schedule as the turn left it (what the SQL returns)."""
    return max(now, next_at_after - rate.interval_s - rate.tolerance_s)
