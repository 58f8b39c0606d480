"""Publishing against the clock: a tick must answer well inside its Trigger's 60 s timeout.

The broker redelivers a tick that has not answered in time, so a tick that publishes 20,000
reminders itself would be sent again (and again, then dead-lettered). Instead it publishes what
it staged in chunks while its budget lasts, and leaves the rest in the outbox, where the next
drain (this function's next tick, or the monitor's) sends it. Every sender leases rows before
posting them (``patient_notify.outbox``), so no row is sent by two of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from patient_notify.outbox import Publisher, PublishReport

__all__ = ["PublishBudget"]


class PublishBudget:
    """Chunks of ``chunk`` rows until ``deadline`` (on ``clock``) or until the ingress fails one.

    A chunk in flight when the deadline passes is finished, so the tick can overrun the budget by
    one chunk: ``chunk`` is a couple of rounds of the publisher's concurrency, at most a couple of
    HTTP timeouts against a hung ingress. After a failed chunk nothing more is tried this tick.
    """

    def __init__(self, publisher: Publisher, chunk: int, deadline: float, clock: Callable[[], float]) -> None:
        self._publisher = publisher
        self._chunk = chunk
        self._deadline = deadline
        self._clock = clock
        self._ingress_failing = False

    async def publish(self, ids: Sequence[int]) -> PublishReport:
        """The staged rows, first to last; what is left when time runs out waits for a drain."""
        total = PublishReport(0, 0)
        for first in range(0, len(ids), self._chunk):
            if self._spent():
                break
            report = await self._send(self._publisher.publish(ids[first : first + self._chunk]))
            total = _sum(total, report)
        return total

    async def drain(self) -> PublishReport:
        """Rows nobody published (older than the drain's age), chunk by chunk while time lasts."""
        total = PublishReport(0, 0)
        while not self._spent():
            report = await self._send(self._publisher.drain(limit=self._chunk))
            total = _sum(total, report)
            if report.published < self._chunk:
                break
        return total

    async def _send(self, chunk: Awaitable[PublishReport]) -> PublishReport:
        report = await chunk
        self._ingress_failing = self._ingress_failing or report.failed > 0
        return report

    def _spent(self) -> bool:
        """Out of time, or the ingress is failing: a later drain retries, not this tick."""
        return self._ingress_failing or self._clock() >= self._deadline


def _sum(a: PublishReport, b: PublishReport) -> PublishReport:
    return PublishReport(a.published + b.published, a.failed + b.failed)
