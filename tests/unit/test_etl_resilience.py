"""Calling a flaky source: retries with jitter honouring Retry-After, and a breaker that tolerates 10%."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from tests.support.functions import load_module

resilience = load_module("etl", "resilience")


def _client(handler: httpx.MockTransport, breaker: Any = None, attempts: int = 6) -> Any:
    http = httpx.AsyncClient(transport=handler)
    return resilience.SourceClient(http, breaker or resilience.CircuitBreaker(), attempts=attempts, max_backoff_s=0.0)


def _answers(*statuses: int, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    queue = list(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(queue.pop(0) if queue else 200, headers=headers, content=b"{}")

    return httpx.MockTransport(handle)


class TestSourceClient:
    async def test_retries_until_success(self) -> None:
        """500, 503 and a dropped connection are retried; the answer comes back, the retries are counted."""
        calls = iter([httpx.Response(500), httpx.Response(503), None, httpx.Response(200, content=b"ok")])

        def handle(request: httpx.Request) -> httpx.Response:
            answer = next(calls)
            if answer is None:
                raise httpx.RemoteProtocolError("dropped", request=request)
            return answer

        client = _client(httpx.MockTransport(handle))
        assert await client.get("http://source/x") == b"ok"
        assert (client.requests, client.retries) == (4, 3)

    async def test_gives_up_after_its_attempts(self) -> None:
        """A source failing every attempt raises SourceUnavailable naming the last failure."""
        client = _client(_answers(*[503] * 10), attempts=3)
        with pytest.raises(resilience.SourceUnavailable, match="HTTP 503"):
            await client.get("http://source/x")

    async def test_a_refusal_retrying_cannot_fix_is_not_retried(self) -> None:
        """401 (bad credentials) fails the pass at once instead of hammering the source."""
        client = _client(_answers(401))
        with pytest.raises(resilience.SourceUnavailable, match="401"):
            await client.get("http://source/x")
        assert client.requests == 1

    def test_wait_is_never_shorter_than_retry_after(self) -> None:
        """The backoff honours the server's Retry-After even when the jitter would be shorter."""
        client = _client(_answers())
        retryable: BaseException = resilience._Retryable("HTTP 503", retry_after_s=2.5)

        class Outcome:
            def exception(self) -> BaseException:
                return retryable

        class State:
            attempt_number = 2
            outcome = Outcome()

        assert client._wait(State()) == 2.5


class TestCircuitBreaker:
    def test_ten_percent_failures_never_open_it(self) -> None:
        """A source failing one call in ten, over 10,000 calls, never opens the breaker."""
        breaker, rng = resilience.CircuitBreaker(), random.Random(3)
        for _ in range(10_000):
            breaker.record(rng.random() >= 0.1)
            assert not breaker.is_open

    def test_sustained_failure_opens_it(self) -> None:
        """Ten failures in a row open the breaker, and calls stop reaching the source."""
        breaker = resilience.CircuitBreaker()
        for _ in range(10):
            breaker.record(False)
        assert breaker.is_open

    async def test_an_open_breaker_stops_the_calls(self) -> None:
        """With the breaker open, a get fails without a request."""
        breaker = resilience.CircuitBreaker()
        for _ in range(10):
            breaker.record(False)
        client = _client(_answers(), breaker)
        with pytest.raises(resilience.SourceUnavailable, match="circuit open"):
            await client.get("http://source/x")
        assert client.requests == 0

    def test_after_the_cooldown_one_trial_decides(self) -> None:
        """After the cooldown one call goes through: a failure reopens at once, a success closes it."""
        now = [0.0]
        breaker = resilience.CircuitBreaker(cooldown_s=30.0, clock=lambda: now[0])
        for _ in range(10):
            breaker.record(False)
        assert breaker.is_open
        now[0] = 31.0
        assert not breaker.is_open  # half-open: a trial
        breaker.record(False)
        assert breaker.is_open  # the trial failed: open again, for another cooldown
        now[0] = 62.0
        assert not breaker.is_open
        breaker.record(True)
        for _ in range(8):
            breaker.record(False)
        assert not breaker.is_open  # closed afresh: the old failures are forgotten, nine calls are too few
