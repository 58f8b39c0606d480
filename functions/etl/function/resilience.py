"""Calling a source that fails one call in ten: timeouts, retries with full jitter, a breaker.

    SourceUnavailable     the pass cannot go on: retries used up, breaker open, or a refusal
                          that retrying cannot fix (401, 403, 404)

Retries use tenacity: capped exponential backoff with full jitter, never shorter than the
server's ``Retry-After``. The breaker counts every attempt over a sliding window and opens only
on sustained failure (at least half of the last 20 calls), so the normal 10% is not an outage.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from patient_notify.errors import PatientNotifyError

__all__ = ["CircuitBreaker", "SourceClient", "SourceUnavailable"]

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class SourceUnavailable(PatientNotifyError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass
class CircuitBreaker:
    window: int = 20
    min_calls: int = 10
    failure_share: float = 0.5
    cooldown_s: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self._outcomes: deque[bool] = deque(maxlen=self.window)
        self._opened_at: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        if self._opened_at is None:
            return False
        if self.clock() - self._opened_at >= self.cooldown_s:
            self._opened_at, self._trial = None, True  # half-open: the next call is a trial
            return False
        return True

    def record(self, ok: bool) -> None:
        if self._trial:  # the trial decides: a failure reopens at once, a success closes afresh
            self._trial = False
            self._outcomes.clear()
            if not ok:
                self._opened_at = self.clock()
                return
        self._outcomes.append(ok)
        failures = self._outcomes.count(False)
        if len(self._outcomes) >= self.min_calls and failures / len(self._outcomes) >= self.failure_share:
            self._opened_at = self.clock()


class SourceClient:
    def __init__(
        self, http: httpx.AsyncClient, breaker: CircuitBreaker, *, attempts: int = 6, max_backoff_s: float = 5.0
    ) -> None:
        self._http = http
        self._breaker = breaker
        self._attempts = attempts
        self._jitter = wait_random_exponential(multiplier=0.1, max=max_backoff_s)
        self.requests = 0
        self.retries = 0

    async def get(self, url: str) -> bytes:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts), wait=self._wait,
            retry=retry_if_exception_type(_Retryable), reraise=True,
        )  # fmt: skip
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(url, retry=attempt.retry_state.attempt_number > 1)
        except _Retryable as exc:
            raise SourceUnavailable(f"gave up after {self._attempts} attempts: {exc.reason}") from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(self, url: str, *, retry: bool) -> bytes:
        if self._breaker.is_open:
            raise SourceUnavailable("circuit open: the source has been failing")
        self.requests += 1
        self.retries += retry
        try:
            response = await self._http.get(url)
        except httpx.TransportError as exc:  # timeouts, refused, dropped connections
            self._breaker.record(False)
            raise _Retryable(type(exc).__name__) from exc
        if response.status_code in _RETRY_STATUSES:
            self._breaker.record(False)
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        self._breaker.record(True)
        if not response.is_success:
            raise SourceUnavailable(f"HTTP {response.status_code} from the source: check the URL and credentials")
        return response.content

    def _wait(self, state: RetryCallState) -> float:
        """Full jitter, but never sooner than the server asked (Retry-After)."""
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after_s if isinstance(exc, _Retryable) else 0.0
        return max(asked, self._jitter(state))


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return min(float(value), 60.0)
    except ValueError:
        return 0.0  # an HTTP-date: rare from APIs; the jittered backoff applies
