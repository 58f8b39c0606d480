"""Publishing against the clock: a tick must answer well inside its Trigger's timeout.

The broker redelivers a tick that has not answered in time, so a tick that publishes 20,000
reminders itself (the scheduler), or drains a backlog behind a slow ingress (the monitor), would
be sent again (and again, then dead-lettered). Instead it publishes in chunks while its budget
lasts, and leaves the rest in the outbox, where the next drain (the scheduler's next tick, or the
monitor's) sends it. Every sender leases rows before posting them (``patient_notify.outbox``), so
no row is sent by two of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from patient_notify.outbox import DRAIN_MIN_AGE_S, Publisher, PublishReport

__all__ = ["PublishBudget"]


class PublishBudget:
    """Chunks of ``chunk`` rows until ``deadline`` (on ``clock``).

    A chunk in flight when the deadline passes is finished, so the tick can overrun the budget by
    one chunk: ``chunk`` is a couple of rounds of the publisher's concurrency, at most a couple of
    HTTP timeouts against a hung ingress. A ``publish`` or ``drain`` stops after a chunk in which
    every row failed (the ingress is down: trying the rest would only count failures against them).
    A chunk in which only some failed goes on: the ingress refused those events, and the monitor
    alerts them (their ``attempts``).
    """

    def __init__(self, publisher: Publisher, chunk: int, deadline: float, clock: Callable[[], float]) -> None:
        self._publisher = publisher
        self._chunk = chunk
        self._deadline = deadline
        self._clock = clock

    async def publish(self, ids: Sequence[int]) -> PublishReport:
        """The staged rows, first to last; what is left when time runs out waits for a drain."""
        total = PublishReport(0, 0)
        for first in range(0, len(ids), self._chunk):
            if self._spent():
                break
            report = await self._publisher.publish(ids[first : first + self._chunk])
            total = _sum(total, report)
            if _ingress_down(report):
                break
        return total

    async def drain(self, *, min_age_s: float = DRAIN_MIN_AGE_S, most: int | None = None) -> PublishReport:
        """Rows nobody published (older than ``min_age_s``), chunk by chunk while time lasts, up to
        ``most`` rows (no cap: None)."""
        total = PublishReport(0, 0)
        while not self._spent():
            left = self._chunk if most is None else min(self._chunk, most - total.published - total.failed)
            if left <= 0:
                break
            # One pass, oldest first: a refused row is not posted again before the next tick.
            report = await self._publisher.drain(limit=left, min_age_s=min_age_s, after_id=total.last_id)
            total = _sum(total, report)
            if report.published + report.failed < left or _ingress_down(report):
                break  # nothing older is left, or nothing gets through
        return total

    def _spent(self) -> bool:
        return self._clock() >= self._deadline


def _ingress_down(report: PublishReport) -> bool:
    return report.failed > 0 and report.published == 0


def _sum(a: PublishReport, b: PublishReport) -> PublishReport:
    return PublishReport(a.published + b.published, a.failed + b.failed, max(a.last_id, b.last_id))
