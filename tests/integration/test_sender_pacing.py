"""Provider pacing through PostgreSQL: concurrent senders in several "pods" never exceed the rate,
and a 429/503 storm costs few extra provider calls."""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Sequence

import psycopg
import pytest

from patient_notify.db import Database
from patient_notify.domain.pacing import Rate, next_turn
from patient_notify.errors import ProviderRetryable
from patient_notify.pacing import Pacer
from sandbox.sns_provider import sns_sent_sms
from tests.integration.test_failover import FakeClock, sns_settings, until_handled
from tests.integration.test_opt_outs import PHONE, Functions, queued, seed, ses, system

__all__ = ["ses", "system"]  # the fixtures, shared with the opt-out tests

# Messages a second, and at once.
RATE, BURST = 10, 2
# How late a request may reach the provider after its turn: the thread hand-off, the HTTP client
# and, on a loaded 2-core machine, the OS scheduler (a fault-tier run in CI saw 0.24 s).
JITTER_S = 0.5


def busiest_second(times: Sequence[float]) -> int:
    """The most timestamps in any one-second window [t, t + 1)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def most_in_a_second(per_second: int, burst: int) -> int:
    """The most requests a provider may see in any [t, t + 1): the schedule's own bound, plus the
    turns of the ``JITTER_S`` before t, whose requests can arrive late, inside the window.

    The schedule is proved exact on its own clock (``test_the_database_keeps_the_domain_schedule``,
    ``tests/unit/test_pacing.py``); this bound is for requests timed where they arrive."""
    return per_second + burst - 1 + math.ceil(JITTER_S * per_second)


async def queued_messages(db: Database, count: int) -> list[int]:
    appointments = tuple(f"appt-{i}" for i in range(count))
    await seed(db, appointments=appointments)
    return [await queued(db, "sms", PHONE, a) for a in appointments]


def start_pods(system: Functions, pods: int, **settings: str) -> None:
    """Several sms-sender instances, each with its own pool: pods sharing only the database."""
    for _ in range(pods):
        system.start("sms-sender", clock=FakeClock(), TWILIO_MAX_MPS=str(RATE), TWILIO_BURST=str(BURST),
                     PACING_MAX_WAIT_S="30", **settings)  # fmt: skip


async def send_all(system: Functions, ids: list[int]) -> None:
    """Every message at once, spread over the pods, each retried as the broker would."""
    pods = [f for name, f in system.started if name == "sms-sender"]

    async def one(index: int, nid: int) -> None:
        statuses = await until_handled(system, nid, retries=10, via=pods[index % len(pods)])
        assert statuses[-1] == 200

    await asyncio.gather(*(one(i, nid) for i, nid in enumerate(ids)))


class TestSchedule:
    async def test_the_database_keeps_the_domain_schedule(self, db: Database) -> None:
        """Each reservation in SQL is exactly domain.pacing's next turn, on the database's clock."""
        rate, previous = Rate(50, 3), None
        for _ in range(20):
            async with db.transaction() as tx:
                row = await tx.one("pacing_take_turn", {"key": "twilio:x", "interval_s": rate.interval_s,
                                                        "tolerance_s": rate.tolerance_s, "max_wait_s": 60})  # fmt: skip
            assert row is not None
            assert next_turn(previous, row["now"], rate).next_at == pytest.approx(row["next_at"], abs=1e-6)
            previous = row["next_at"]

    async def test_a_turn_too_far_away_is_refused_and_reserves_nothing(self, db: Database) -> None:
        """Beyond the longest wait: ProviderRetryable (503), and the schedule is as it was."""
        # Turns 10 s apart, so the test's own pace on a loaded machine cannot blur them (nothing sleeps).
        pacer = Pacer(db, max_wait_s=10, sleep=_no_sleep)
        waits = [await pacer.wait_turn("twilio:y", Rate(0.1)) for _ in range(2)]  # now, then in 10 s
        schedule = await _schedule(db, "twilio:y")
        with pytest.raises(ProviderRetryable) as raised:
            await pacer.wait_turn("twilio:y", Rate(0.1))  # in 20 s: too far
        assert waits == [0, pytest.approx(10, abs=2)] and raised.value.code == "paced"
        assert await _schedule(db, "twilio:y") == schedule

    async def test_concurrent_callers_get_successive_turns(self, db: Database) -> None:
        """Ten callers at once on a key with turns 10 s apart: one goes now, the others wait 10, 20 ... 90 s."""
        pacer = Pacer(db, max_wait_s=200, sleep=_no_sleep)
        waits = await asyncio.gather(*(pacer.wait_turn("ses:z", Rate(0.1)) for _ in range(10)))
        assert sorted(waits) == pytest.approx([10.0 * i for i in range(10)], abs=2)


class TestPacedSenders:
    async def test_concurrent_pods_never_exceed_the_rate(self, system: Functions, db: Database) -> None:
        """40 SMS at once through two pods: Twilio accepts each once, never faster than the rate."""
        ids = await queued_messages(db, 40)
        accepted: list[float] = []
        system.twilio.listeners.append(lambda _: accepted.append(time.monotonic()))
        start_pods(system, 2)
        await send_all(system, ids)
        assert len(accepted) == len(system.twilio.messages) == 40 and system.twilio.attempts == 40
        assert busiest_second(accepted) <= most_in_a_second(RATE, BURST)
        assert max(accepted) - min(accepted) >= (40 - BURST) / RATE - JITTER_S  # paced, not merely lucky

    # Twilio's refusal rate -> the storm (429 and 503 alternately)
    @pytest.mark.parametrize("failure_rate", [0.2, 0.5])
    async def test_a_storm_costs_few_extra_calls(self, system: Functions, db: Database, failure_rate: float) -> None:
        """Under a 429/503 storm the breaker moves traffic to SNS: Twilio sees at most 1.3 calls per message."""
        ids = await queued_messages(db, 40)
        accepted: list[float] = []
        system.twilio.failure_rate, system.twilio.listeners[:] = (
            failure_rate,
            [lambda _: accepted.append(time.monotonic())],
        )
        sns_before = len(sns_sent_sms(system.ses.region))
        start_pods(system, 2, **sns_settings(system.ses, SMS_FAILOVER_THRESHOLD="3", SMS_FAILOVER_FAILURE_RATE="0.2",
                                             SMS_FAILOVER_WINDOW="10"))  # fmt: skip
        await send_all(system, ids)
        via_sns = len(sns_sent_sms(system.ses.region)) - sns_before
        assert len(system.twilio.messages) + via_sns == 40
        assert system.rows("SELECT status, count(*) FROM notifications GROUP BY status") == [("sent", 40)]
        assert system.twilio.attempts <= 1.3 * 40 and system.twilio.attempts + via_sns <= 1.3 * 40
        assert busiest_second(accepted) <= most_in_a_second(RATE, BURST)


async def _no_sleep(seconds: float) -> None:
    """The turn is what is under test, not the waiting."""


async def _schedule(db: Database, key: str) -> float:
    async with await psycopg.AsyncConnection.connect(db.url) as conn:
        cursor = await conn.execute(b"SELECT next_at FROM pacing_schedule WHERE key = %s", (key,))
        row = await cursor.fetchone()
    assert row is not None
    return float(row[0])
