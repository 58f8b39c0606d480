"""Twilio → SNS failover: a circuit breaker over the primary provider's health, per pod.

    closed     every message goes to the primary (Twilio), and each call's outcome is recorded.
               It opens after ``threshold`` consecutive failures, or when ``failure_share`` of
               the last ``window`` calls failed (once half a window has been seen). A failure is
               a retryable refusal or an unknown outcome (timeout, 500/502/504). Retryable covers
               Twilio down or throttling (429, 503, 20429, 30001, never connected) and Twilio
               refusing our account (401/20003 a rotated token, 21611 the sender's queue full,
               63038 the daily limit): SNS can still send. A permanent refusal of one message
               (21211) is Twilio answering, so it counts as healthy.
    open       every message goes to the secondary (SNS) for ``cooldown_s``.
    half-open  after the cooldown, the next message is the primary's trial while the others
               still go to the secondary; its success closes the breaker, its failure reopens it
               for another cooldown. A trial that made no call (nothing left to send, no pacing
               turn) passes to the next message.

Both providers never accept one notification: a provider is chosen per claim, and a claim calls
one provider (``patient_notify.sending``). A refusal from Twilio releases the claim; the broker's
retry may then go to SNS. Each pod learns Twilio's health from its own calls: at most
``threshold`` calls per pod go to a Twilio that is down before its pods fail over.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from patient_notify.delivery import OutboundSms, ProviderAccepted, SmsGateway
from patient_notify.domain.pacing import Rate
from patient_notify.errors import ProviderError, ProviderOutcomeUnknown, ProviderRetryable

__all__ = ["CircuitBreaker", "Route", "SmsRoutes"]

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class Choice:
    primary: bool
    trial: int | None = None  # this call is the primary's trial (its number)


class CircuitBreaker:
    """Thread-safe: outcomes are recorded from the worker threads that call the provider."""

    def __init__(
        self, *, threshold: int = 5, failure_share: float = 0.5, window: int = 20, cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._threshold, self._share, self._cooldown_s, self._clock = threshold, failure_share, cooldown_s, clock
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trials = 0
        self._trial_out: int | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> State:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._cooled() else "open"

    def choose(self) -> Choice:
        with self._lock:
            if self._opened_at is None:
                return Choice(primary=True)
            if self._trial_out is not None or not self._cooled():
                return Choice(primary=False)
            self._trials += 1
            self._trial_out = self._trials
            return Choice(primary=True, trial=self._trials)

    def record(self, choice: Choice, *, healthy: bool) -> None:
        """The outcome of a call made on ``choice`` (calls to the secondary teach nothing)."""
        with self._lock:
            if choice.trial is not None:
                if choice.trial == self._trial_out:  # the trial decides: close afresh, or reopen
                    self._trial_out = None
                    if healthy:
                        self._close()
                    else:
                        self._open()
            elif choice.primary and self._opened_at is None:  # a call chosen before it opened: ignored
                self._outcomes.append(healthy)
                self._consecutive = 0 if healthy else self._consecutive + 1
                if self._tripped():
                    self._open()

    def release(self, choice: Choice) -> None:
        """``choice`` is done; if it was a trial that made no call, the next message gets the trial."""
        with self._lock:
            if choice.trial is not None and choice.trial == self._trial_out:
                self._trial_out = None

    def _tripped(self) -> bool:
        failures, seen = self._outcomes.count(False), len(self._outcomes)
        enough = 2 * seen >= (self._outcomes.maxlen or 1)
        return self._consecutive >= self._threshold or (enough and failures >= self._share * seen)

    def _cooled(self) -> bool:
        return self._opened_at is not None and self._clock() - self._opened_at >= self._cooldown_s

    def _open(self) -> None:
        self._opened_at = self._clock()

    def _close(self) -> None:
        self._opened_at, self._consecutive = None, 0
        self._outcomes.clear()


@dataclass(frozen=True)
class Route:
    """One provider for one claim: its gateway, its pacing, and the breaker it reports to."""

    provider: str
    gateway: SmsGateway
    pacing_key: str
    rate: Rate | None
    choice: Choice
    breaker: CircuitBreaker

    def send(self, message: OutboundSms) -> ProviderAccepted:
        try:
            accepted = self.gateway.send_sms(message)
        except (ProviderRetryable, ProviderOutcomeUnknown):
            self.breaker.record(self.choice, healthy=False)
            raise
        except ProviderError:
            self.breaker.record(self.choice, healthy=True)  # it answered: this message is the problem
            raise
        self.breaker.record(self.choice, healthy=True)
        return accepted


@dataclass(frozen=True)
class Provider:
    name: str
    gateway: SmsGateway
    pacing_key: str
    rate: Rate | None


class SmsRoutes:
    """The primary provider, and the secondary it fails over to (none: no failover)."""

    def __init__(self, primary: Provider, secondary: Provider | None, breaker: CircuitBreaker) -> None:
        self._primary, self._secondary, self.breaker = primary, secondary, breaker

    def still_chosen(self, route: Route) -> bool:
        """False when ``route`` went to the primary and the breaker opened since (while it waited)."""
        if self._secondary is None or not route.choice.primary or route.choice.trial is not None:
            return True
        return self.breaker.state == "closed"

    @contextmanager
    def route(self) -> Iterator[Route]:
        choice = self.breaker.choose() if self._secondary is not None else Choice(primary=True)
        provider = self._primary if choice.primary or self._secondary is None else self._secondary
        try:
            yield Route(provider.name, provider.gateway, provider.pacing_key, provider.rate, choice, self.breaker)
        finally:
            self.breaker.release(choice)  # after record() this changes nothing
