"""Another way to reach the patient: Twilio failing over to SNS, and an SMS that cannot arrive
falling back to one email. The functions built by their own ``new()``, real PostgreSQL, the
Twilio stand-in, moto (SES and SNS on one server)."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from cloudevents.core.bindings.http import to_binary_event

from patient_notify.db import Database
from patient_notify.delivery import OutboundSms, ProviderAccepted
from patient_notify.errors import ProviderError, ProviderOutcomeUnknown, ProviderPermanent, ProviderRetryable
from patient_notify.fallback import fallback_to_email
from patient_notify.sending import Claimed, deliver
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.sns_provider import sns_sent_sms
from tests.fakes import FakeSmsGateway
from tests.integration.change_harness import SECRET, announced
from tests.integration.test_opt_outs import (
    EMAIL,
    PHONE,
    START,
    Functions,
    dispatch_reminder,
    queued,
    seed,
    ses,
    status_of,
    system,
)
from tests.support.broken_servers import CannedAnswer
from tests.support.functions import load_module

__all__ = ["ses", "system"]  # the fixtures, shared with the opt-out tests

failover = load_module("sms-sender", "failover")
sns_gateway = load_module("sms-sender", "sns_gateway")
INVALID = "+12025550188"  # Twilio answers 21211
APPOINTMENTS = tuple(f"appt-{i}" for i in range(1, 5))


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def sns_settings(ses: SesStandIn, **overrides: str) -> dict[str, str]:
    return {"SNS_REGION": ses.region, "SNS_ENDPOINT_URL": ses.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "SMS_FAILOVER_THRESHOLD": "2",
            "SMS_FAILOVER_COOLDOWN_S": "30", **overrides}  # fmt: skip


async def until_handled(system: Functions, nid: int, retries: int = 6, *, via: Any = None) -> list[int]:
    """Deliver the send event as the broker does: again after every 5xx, up to ``retries`` more times."""
    statuses = [await system.send("sms-sender", nid, "sms", via=via)]
    while statuses[-1] >= 500 and len(statuses) <= retries:
        statuses.append(await system.send("sms-sender", nid, "sms", via=via))
    return statuses


def providers(system: Functions, ids: list[int]) -> list[str]:
    rows = dict(system.rows("SELECT id, provider FROM notifications WHERE status = 'sent'"))
    return [rows.get(i, "-") for i in ids]


async def _accepted(claimed: Claimed) -> ProviderAccepted:
    return FakeSmsGateway().send_sms(OutboundSms(claimed.recipient, claimed.body))


@pytest.fixture
async def messages(system: Functions, db: Database) -> list[int]:
    """Four queued SMS reminders to one patient, one per appointment."""
    await seed(db, appointments=APPOINTMENTS)
    return [await queued(db, "sms", PHONE, a) for a in APPOINTMENTS]


class TestFailover:
    @pytest.mark.parametrize("outage", ["failing", "stopped"])
    async def test_twilio_down_fails_over_to_sns(self, system: Functions, messages: list[int], outage: str) -> None:
        """Twilio refusing (429/503) or unreachable: after two failures every SMS goes through SNS, once."""
        system.twilio.failure_rate = 1.0
        if outage == "stopped":
            system.twilio.stop()
        system.start("sms-sender", clock=FakeClock(), **sns_settings(system.ses))

        statuses = [await until_handled(system, nid) for nid in messages]

        assert statuses == [[503, 503, 200], [200], [200], [200]]  # the two refusals released the claim
        assert providers(system, messages) == ["sns"] * 4 and system.twilio.messages == []
        sent = {m.message_id: m for m in sns_sent_sms(system.ses.region)}
        ids = [mid for (mid,) in system.rows("SELECT provider_message_id FROM notifications ORDER BY id")]
        assert [(sent[i].phone_number, sent[i].message) for i in ids] == [(PHONE, "Hi, see you soon.")] * 4

    async def test_twilio_refusing_our_token_fails_over_to_sns(self, system: Functions, messages: list[int]) -> None:
        """A rotated auth token (401 / 20003) is Twilio down for us: no SMS fails, SNS sends each once."""
        system.start("sms-sender", clock=FakeClock(), TWILIO_AUTH_TOKEN="rotated-token", **sns_settings(system.ses))

        statuses = [await until_handled(system, nid) for nid in messages]

        assert statuses == [[503, 503, 200], [200], [200], [200]]  # refused twice, released, then SNS
        assert providers(system, messages) == ["sns"] * 4 and system.twilio.messages == []
        assert system.rows("SELECT kind FROM alerts") == []

    async def test_after_the_cooldown_one_trial_brings_traffic_back(
        self, system: Functions, messages: list[int]
    ) -> None:
        """Once Twilio recovers, the first message after the cooldown tries it; its success closes the breaker."""
        clock, system.twilio.failure_rate = FakeClock(), 1.0
        system.start("sms-sender", clock=clock, **sns_settings(system.ses))
        await until_handled(system, messages[0])  # opens the breaker, then SNS
        system.twilio.failure_rate = 0.0
        await until_handled(system, messages[1])  # still cooling down: SNS
        clock.now += 30
        for nid in messages[2:]:
            await until_handled(system, nid)
        assert providers(system, messages) == ["sns", "sns", "twilio", "twilio"]

    async def test_a_failed_trial_keeps_sns_for_another_cooldown(self, system: Functions, messages: list[int]) -> None:
        """A trial Twilio refuses reopens the breaker: its retry and the next messages go to SNS."""
        clock, system.twilio.failure_rate = FakeClock(), 1.0
        system.start("sms-sender", clock=clock, **sns_settings(system.ses))
        await until_handled(system, messages[0])
        clock.now += 30
        assert await until_handled(system, messages[1]) == [503, 200]  # the trial, then SNS
        clock.now += 29
        await until_handled(system, messages[2])
        assert providers(system, messages[:3]) == ["sns"] * 3 and system.twilio.attempts == 3

    async def test_without_sns_there_is_no_failover(self, system: Functions, messages: list[int]) -> None:
        """SNS not configured: Twilio's refusals go back to the broker every time, the SMS stays queued."""
        system.twilio.failure_rate = 1.0
        assert await until_handled(system, messages[0], retries=4) == [503] * 5
        assert status_of(system, messages[0]) == ("queued", None) and system.twilio.attempts == 5


class TestCircuitBreaker:
    def _routes(self, *errors: Exception, clock: FakeClock | None = None, **options: Any) -> Any:
        breaker = failover.CircuitBreaker(clock=clock or FakeClock(), **options)
        primary = failover.Provider("twilio", FakeSmsGateway(errors=list(errors)), "twilio:x", None)
        return failover.SmsRoutes(primary, failover.Provider("sns", FakeSmsGateway(), "sns:x", None), breaker)

    def _send(self, routes: Any) -> str:
        with routes.route() as route, contextlib.suppress(ProviderRetryable, ProviderPermanent):
            route.send(OutboundSms("+12025550123", "Hi"))
        return str(route.provider)

    def test_a_share_of_failures_opens_it(self) -> None:
        """Half of the last calls failing (over at least half a window) opens it, without a long streak."""
        error = ProviderRetryable("twilio", "20429")
        routes = self._routes(error, ProviderPermanent("twilio", "21211"), error, ProviderPermanent("twilio", "21211"),
                              error, threshold=5, window=10, failure_share=0.5)  # fmt: skip
        assert [self._send(routes) for _ in range(6)] == ["twilio"] * 5 + ["sns"]

    def test_refusing_one_message_is_not_an_outage(self) -> None:
        """Permanent refusals (an invalid number) mean Twilio answers: the breaker stays closed."""
        routes = self._routes(*[ProviderPermanent("twilio", "21211")] * 10, threshold=2)
        assert {self._send(routes) for _ in range(12)} == {"twilio"}

    def test_a_trial_that_made_no_call_passes_to_the_next_message(self) -> None:
        """Half-open: one trial at a time; a trial released without a call lets the next message try."""
        clock = FakeClock()
        routes = self._routes(*[ProviderRetryable("twilio", "20429")] * 2, clock=clock, threshold=2, cooldown_s=10)
        self._send(routes), self._send(routes)
        clock.now = 10
        with routes.route() as trial, routes.route() as meanwhile:
            assert (trial.provider, meanwhile.provider) == ("twilio", "sns")
        assert self._send(routes) == "twilio" and routes.breaker.state == "closed"


class TestSnsGateway:
    def _gateway(self, endpoint_url: str, region: str) -> Any:
        return sns_gateway.SnsSmsGateway(region=region, endpoint_url=endpoint_url, access_key_id=ACCESS_KEY_ID,
                                         secret_access_key=SECRET_ACCESS_KEY, sender_id="Clinic", timeout_s=2)  # fmt: skip

    def test_a_published_sms_is_recorded_with_its_id(self, ses: SesStandIn) -> None:
        """Publish to a phone number returns SNS's message id, under which moto holds the text."""
        accepted = self._gateway(ses.endpoint_url, ses.region).send_sms(OutboundSms("+12025550123", "Hi there"))
        sent = {m.message_id: m for m in sns_sent_sms(ses.region)}
        assert accepted.provider == "sns" and (
            sent[accepted.message_id].phone_number,
            sent[accepted.message_id].message,
        ) == ("+12025550123", "Hi there")

    def test_a_number_sns_cannot_text_is_permanent(self, ses: SesStandIn) -> None:
        """A number that is not E.164: InvalidParameter, permanent, never quoting the number."""
        with pytest.raises(ProviderPermanent) as raised:
            self._gateway(ses.endpoint_url, ses.region).send_sms(OutboundSms("0770090012", "Hi"))
        assert raised.value.code == "InvalidParameter" and "0770090012" not in str(raised.value)

    # status, SNS error code -> the class
    @pytest.mark.parametrize(("status", "code", "expected"), [
        (403, "AuthorizationError", ProviderRetryable),  # our IAM policy: not this number's fault
        (403, "InvalidClientTokenId", ProviderRetryable),  # our access key
        (400, "Throttling", ProviderRetryable),  # over the account's rate
        (400, "InvalidParameter", ProviderPermanent),  # the number
        (500, "InternalError", ProviderOutcomeUnknown),  # may follow acceptance
    ])  # fmt: skip
    def test_a_refusal_maps_to_its_class(self, ses: SesStandIn, status: int, code: str,
                                         expected: type[ProviderError]) -> None:  # fmt: skip
        """Refusals of our credentials are retryable (the broker retries, then dead-letters); of the number, permanent."""
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>no</Message></Error>"
                "<RequestId>r-1</RequestId></ErrorResponse>").encode()  # fmt: skip
        with CannedAnswer(status, body, {"Content-Type": "text/xml"}) as sns, pytest.raises(ProviderError) as raised:
            self._gateway(sns.url, ses.region).send_sms(OutboundSms("+12025550123", "Hi"))
        assert (type(raised.value), raised.value.code, sns.requests) == (expected, code, 1)

    def test_nothing_listening_is_retryable(self, ses: SesStandIn) -> None:
        """A connection refused never reached SNS: retryable."""
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        with pytest.raises(ProviderRetryable):
            self._gateway(f"http://127.0.0.1:{port}", ses.region).send_sms(OutboundSms("+12025550123", "Hi"))


class TestEmailFallback:
    async def test_an_sms_that_cannot_arrive_becomes_one_email(self, system: Functions, db: Database) -> None:
        """SMS-only patient, number refused (21211): one email through SES, pointing at the SMS, in both histories."""
        system.twilio.invalid_numbers.add(INVALID)
        await seed(db, preference="sms", phone=INVALID)
        before = len(system.ses.sent_messages())
        await dispatch_reminder(system)
        await system.drain()

        (sms_id, _, sms_status, _), (email_id, fallback_of, email_status, kind) = system.rows(
            "SELECT id, fallback_of, status, kind FROM notifications ORDER BY id")  # fmt: skip
        assert (sms_status, email_status, fallback_of, kind) == ("failed", "sent", sms_id, "reminder")
        assert len(system.ses_sent_to(EMAIL, before)) == 1
        assert system.rows("SELECT kind, severity FROM alerts") == [("delivery_failed", "warning")]
        stored = " ".join(str(v) for row in system.rows("SELECT detail FROM alerts UNION ALL SELECT last_error "
                                                        "FROM notifications WHERE last_error IS NOT NULL") for v in row)  # fmt: skip
        assert INVALID not in stored and EMAIL not in stored and "21211" in stored  # ids and codes, no contact data
        history = {
            d for (d,) in system.rows("SELECT detail FROM notification_status_history WHERE detail LIKE 'fallback%%'")
        }
        assert history == {f"fallback to email: notification {email_id}", f"fallback of notification {sms_id}"}

    async def test_a_both_patient_already_emailed_gets_no_second_email(self, system: Functions, db: Database) -> None:
        """The planned email covers the occasion: the failed SMS adds none."""
        system.twilio.invalid_numbers.add(INVALID)
        await seed(db, preference="both", phone=INVALID)
        before = len(system.ses.sent_messages())
        await dispatch_reminder(system)
        await system.drain()
        assert system.rows("SELECT channel, status, fallback_of FROM notifications ORDER BY id") == [
            ("sms", "failed", None), ("email", "sent", None)]  # fmt: skip
        assert len(system.ses_sent_to(EMAIL, before)) == 1

    async def test_an_sms_only_patient_without_consent_is_alerted_not_emailed(
        self, system: Functions, db: Database
    ) -> None:
        """EMAIL_FALLBACK=false: the SMS fails, no email, a critical alert."""
        system.twilio.invalid_numbers.add(INVALID)
        await seed(db, preference="sms", phone=INVALID)
        system.start("sms-sender", EMAIL_FALLBACK="false")
        await dispatch_reminder(system)
        await system.drain()
        assert system.rows("SELECT channel, status FROM notifications") == [("sms", "failed")]
        assert system.rows("SELECT kind, severity FROM alerts") == [("delivery_failed", "critical")]

    async def test_a_change_notice_falls_back_with_the_notice_text(self, system: Functions, db: Database) -> None:
        """A reschedule notice refused by Twilio is emailed with the old and new times."""
        system.twilio.invalid_numbers.add(INVALID)
        await seed(db, preference="sms", phone=INVALID)
        system.start("dispatcher", APPOINTMENT_EVENTS_SECRET=SECRET)
        message = to_binary_event(announced("appt-1", 2, "rescheduled", START + timedelta(days=1), "loc-1"))
        assert (await system.function("dispatcher").process(dict(message.headers), message.body))[0] == 200
        await system.drain()
        [(subject, body, status)] = system.rows(
            "SELECT subject, body, status FROM notifications WHERE channel = 'email'"
        )
        assert status == "sent" and subject.startswith("Your appointment has moved") and "Before:" in body

    async def test_an_undelivered_sms_falls_back_once_for_the_webhooks(self, system: Functions, db: Database) -> None:
        """Called on an 'undelivered' receipt, twice: one email staged, the second call finds it covered."""
        await seed(db, preference="sms")
        nid = await queued(db, "sms", PHONE)
        await deliver(db, nid, _accepted)
        system.sql("UPDATE notifications SET status = 'undelivered' WHERE id = %s", nid)
        async with db.transaction() as tx:
            first = await fallback_to_email(tx, nid)
            again = await fallback_to_email(tx, nid)
        assert (first.email_id is not None, len(first.outbox_ids), first.covered) == (True, 1, True)
        assert (again.email_id, again.outbox_ids, again.covered) == (None, (), True)
        assert system.rows("SELECT channel, recipient FROM notifications WHERE fallback_of = %s", nid) == [
            ("email", EMAIL)
        ]
