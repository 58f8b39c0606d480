"""Waiting for a provider turn, shared by every pod through PostgreSQL (``domain.pacing``: GCRA).

``Pacer.wait_turn(key, rate)`` reserves the key's next turn in one atomic statement
(``pacing_take_turn``: an upsert on ``pacing_schedule`` that computes ``next_at`` on the database's
clock, so pods with skewed clocks still share one schedule), then sleeps until it. A turn further
away than ``max_wait_s`` is not reserved: the caller gets ``ProviderRetryable`` (503, the broker
retries later) and the schedule is unchanged, so a backlog never turns into a retry storm that
pushes everyone's turn back. Keep ``max_wait_s`` near half the Trigger's timeout, and the Trigger's
parallelism near ``per_second × max_wait_s``: then requests wait in-process instead of bouncing.

Nothing is held while waiting: no transaction, no connection, no notification claim.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from patient_notify.db import Database
from patient_notify.domain.pacing import Rate, send_at_for
from patient_notify.errors import ProviderRetryable

__all__ = ["Pacer", "Rate"]

log = logging.getLogger(__name__)


class Pacer:
    def __init__(
        self, db: Database, *, max_wait_s: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._db = db
        self._max_wait_s = max_wait_s
        self._sleep = sleep

    async def wait_turn(self, key: str, rate: Rate | None) -> float:
        """Wait for the key's next turn (none when ``rate`` is None); the seconds waited."""
        if rate is None:
            return 0.0
        params = {"key": key, "interval_s": rate.interval_s, "tolerance_s": rate.tolerance_s,
                  "max_wait_s": self._max_wait_s}  # fmt: skip
        async with self._db.transaction() as tx:
            row = await tx.one("pacing_take_turn", params)
        if row is None:
            log.warning("pacing.busy", extra={"provider": key.partition(":")[0]})
            raise ProviderRetryable(key.partition(":")[0], "paced", f"no turn within {self._max_wait_s:g} s")
        now = float(row["now"])
        wait = max(0.0, send_at_for(float(row["next_at"]), now, rate) - now)
        if wait > 0:
            await self._sleep(wait)
        return wait
