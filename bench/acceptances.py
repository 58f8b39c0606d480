"""Waiting for the stand-ins to accept every due message, the scheduler's PingSource compressed.

In production the scheduler ticks every five minutes, and each tick also re-sends outbox rows
nobody published (an ingress refusal, a crash after commit). The bench fires the first tick, and
the next one (five simulated minutes later) only when nothing was accepted for ``STALL_S``: a
rare stall that production would clear within five minutes is cleared here within half a
minute, and counted in the results (``scheduler_ticks``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from sandbox.demo.system import DemoSystem
from sandbox.twilio import SentSms

__all__ = ["Acceptances", "SchedulerTicks"]

STALL_S = 30.0
TICK_PERIOD = timedelta(minutes=5)  # knative/base/pingsources.yaml: scheduler-tick */5


class SchedulerTicks:
    """The scheduler-tick PingSource's events: the first at ``first_at``, each next one period later."""

    def __init__(self, system: DemoSystem, first_at: datetime) -> None:
        self._source, self._next_at, self.fired = system.pingsources(since=first_at), first_at, 0

    def fire(self) -> None:
        self._source.fire("scheduler-tick", self._next_at)
        self._next_at, self.fired = self._next_at + TICK_PERIOD, self.fired + 1


class Acceptances:
    """Counts what the stand-ins accepted; Twilio tells each message, SES is polled (cheaply)."""

    def __init__(self, system: DemoSystem) -> None:
        self._system, self._lock = system, threading.Lock()
        self.sms, self.last_sms_at = 0, 0.0
        system.twilio.listeners.append(self._on_sms)

    def _on_sms(self, message: SentSms) -> None:
        with self._lock:
            self.sms, self.last_sms_at = self.sms + 1, time.perf_counter()

    def _emails(self) -> int:
        assert self._system.ses is not None  # the bench's system sends email through SES
        return self._system.ses.sent_count()

    def wait_for(self, sms: int, email: int, ticks: SchedulerTicks, timeout: float) -> float:
        """The moment the last expected message was accepted (within one 20 ms poll for email)."""
        deadline, email_at, progress, progressed_at = time.monotonic() + timeout, 0.0, -1, time.monotonic()
        while time.monotonic() < deadline:
            if not email_at and self._emails() >= email:
                email_at = time.perf_counter()
            if email_at and self.sms >= sms:
                return max(email_at, self.last_sms_at)
            if (seen := self.sms + self._emails()) != progress:
                progress, progressed_at = seen, time.monotonic()
            elif time.monotonic() - progressed_at > STALL_S:
                ticks.fire()
                progressed_at = time.monotonic()
            time.sleep(0.02)  # a poll of the stand-ins' counters, not a synchronisation
        raise TimeoutError(f"after {timeout:.0f} s: {self.sms} of {sms} SMS, {self._emails()} of {email} emails")
