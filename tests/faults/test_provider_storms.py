"""Provider 429/5xx storms at 20% and 50%, through the whole pipeline with pacing and failover.

``tests/integration/test_sender_pacing.py`` proves the pacing schedule and the storm's cost for
40 messages sent straight to two in-process senders, timing the calls Twilio *accepted*. Here the
reminders come from the scheduler through the broker to the sms-sender process, and a fault
proxy (no faults of its own) in front of Twilio and of SNS timestamps every provider *request*,
refused ones included: no second may hold more than the configured rate allows (with the arrival
jitter ``most_in_a_second`` allows for), every message must end in a terminal state, and all
provider calls together stay within 1.3× the messages.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sandbox.faultproxy import FaultProxy
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.sns_provider import sns_sent_sms
from sandbox.twilio import TwilioStandIn
from tests.e2e.population import build_population
from tests.faults.conftest import Figures
from tests.faults.harness import ACCOUNT_SID, AUTH_TOKEN, SCHEDULER_TICK_SOURCE, load_batch, ping, start_system
from tests.integration.test_sender_pacing import busiest_second, most_in_a_second

APPOINTMENTS = 150
# TWILIO_MAX_MPS and SNS_MAX_MPS; TWILIO_BURST. Below what the pipeline offers here, so pacing binds.
RATE, BURST = 5, 2
TICK_EVERY = timedelta(hours=2)  # fewer scheduler ticks than the PingSource's, so reminders come in bursts
TERMINAL = {"sent", "delivered", "undelivered", "failed", "skipped"}


class RequestClock:
    """Times every request whose first line starts with ``marker`` as its bytes pass the proxy."""

    def __init__(self, marker: bytes) -> None:
        self.marker, self.times = marker, list[float]()

    def __call__(self, direction: str, chunk: bytes, now: float) -> None:
        if direction == "up":
            self.times += [now] * chunk.count(self.marker)


def proxied(stack: ExitStack, url: str, clock: RequestClock) -> str:
    address = urlsplit(url)
    proxy = stack.enter_context(FaultProxy(address.hostname or "127.0.0.1", address.port or 80))
    proxy.observers.append(clock)
    return f"http://{proxy.address}"


class TestProviderStorm:
    # Twilio's refusal rate (429 and 503 alternately), for every call, with no cap per message
    @pytest.mark.parametrize("failure_rate", [0.2, 0.5])
    def test_every_message_ends_terminal_paced_and_cheap(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path, figures: Figures, failure_rate: float
    ) -> None:
        """A storm: all SMS terminal, no second over the rate at either provider, calls ≤ 1.3 × SMS."""
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        population = build_population(APPOINTMENTS, start)
        sms = sum(1 for _, channel in population.expected if channel == "sms")
        twilio_requests, sns_requests = RequestClock(b"POST /2010-04-01/Accounts/"), RequestClock(b"Action=Publish")
        sns_before = len(sns_sent_sms(ses.region))
        with ExitStack() as stack:
            twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN, failure_rate=failure_rate, seed=3))
            settings = {
                "TWILIO_BASE_URL": proxied(stack, twilio.base_url, twilio_requests),
                "TWILIO_MAX_MPS": str(RATE), "TWILIO_BURST": str(BURST),
                "SNS_REGION": ses.region, "SNS_ENDPOINT_URL": proxied(stack, ses.endpoint_url, sns_requests),
                "SNS_MAX_MPS": str(RATE), "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "SMS_FAILOVER_THRESHOLD": "3", "SMS_FAILOVER_FAILURE_RATE": "0.2", "SMS_FAILOVER_WINDOW": "10",
                "SMS_FAILOVER_COOLDOWN_S": "2",
            }  # fmt: skip
            system = start_system(stack, migrated_database_url, ses, tmp_path, twilio=twilio,
                                  settings={"sms-sender": settings})  # fmt: skip
            load_batch(migrated_database_url, population.batch)
            for step in range(25):  # the 48 hours in which the reminders fall due
                tick = ping(SCHEDULER_TICK_SOURCE, start + step * TICK_EVERY, "plan-reminders")
                assert system.post(system.broker.ingress_url, tick) == 202
            assert system.broker.wait_idle(300), "the pipeline did not settle"

            statuses = system.table("SELECT status, count(*) FROM notifications WHERE channel = 'sms' GROUP BY 1")
            via_sns = len(sns_sent_sms(ses.region)) - sns_before
            sent = Counter(m.to for m in twilio.messages) + Counter(
                m.phone_number for m in sns_sent_sms(ses.region)[sns_before:]
            )
            calls = len(twilio_requests.times) + len(sns_requests.times)
            figures(failure_rate=failure_rate, sms=sms, statuses=statuses, twilio_requests=len(twilio_requests.times),
                    twilio_refused=twilio.injected_failures, via_twilio=len(twilio.messages), via_sns=via_sns,
                    calls_per_sms=round(calls / sms, 3),
                    busiest_second={"twilio": busiest_second(twilio_requests.times),
                                    "sns": busiest_second(sns_requests.times)},
                    broker_retries=dict(system.broker.stats.retried))  # fmt: skip
            assert set(statuses) <= TERMINAL and sum(statuses.values()) == sms, statuses
            assert len(sent) == sms and max(sent.values()) == 1, "an SMS went out twice"
            assert twilio.attempts == len(twilio_requests.times), "the proxy missed a Twilio request"
            assert busiest_second(twilio_requests.times) <= most_in_a_second(RATE, BURST)
            assert busiest_second(sns_requests.times) <= most_in_a_second(RATE, 1)  # SNS has no burst setting
            assert calls <= 1.3 * sms, f"{calls} provider calls for {sms} SMS"
            assert (system.broker.stats.dropped, system.broker.stats.dead_lettered) == ([], [])
