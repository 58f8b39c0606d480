"""The email adapters: SES v2 via real boto3 against moto and a fault server; SMTP via aiosmtpd."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from patient_notify.delivery import OutboundEmail
from patient_notify.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderPermanent,
    ProviderRetryable,
)
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesFaultServer, SesStandIn
from sandbox.smtp import SmtpStandIn
from tests.support.broken_servers import CannedAnswer, RefusingSmtpRelay
from tests.support.functions import load_module

ses_gateway = load_module("email-sender", "ses_gateway")
smtp_gateway = load_module("email-sender", "smtp_gateway")

SENDER = "reminders@clinic.example"
TEMPORARY, PERMANENT, HANGING = (
    "busy@patient.example",
    "gone@patient.example",
    "slow@patient.example",
)


def make_email(**overrides: Any) -> OutboundEmail:
    fields: dict[str, Any] = {
        "to": "ana@patient.example",
        "subject": "Rappel : rendez-vous mardi",
        "text": "Bonjour Ana, à mardi 14 octobre, 09:30, Clinique B. ✓",
    }
    return OutboundEmail(**(fields | overrides))


def make_ses_gateway(endpoint_url: str, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "from_address": SENDER,
        "region": "eu-west-2",
        "endpoint_url": endpoint_url,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "timeout_s": 2.0,
    }
    return ses_gateway.SesEmailGateway(**(options | overrides))


def make_smtp_gateway(port: int, **overrides: Any) -> Any:
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "from_address": SENDER}
    return smtp_gateway.SmtpEmailGateway(**(options | {"timeout_s": 2.0} | overrides))


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ses() -> Iterator[SesStandIn]:
    with SesStandIn(region="eu-west-2") as stand_in:
        stand_in.verify_sender(SENDER)
        yield stand_in


@pytest.fixture
def faults() -> Iterator[SesFaultServer]:
    with SesFaultServer() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    failures = {"temporary_failures": {TEMPORARY}, "permanent_failures": {PERMANENT}}
    with SmtpStandIn(**failures, hanging_recipients={HANGING}) as stand_in:
        yield stand_in


class TestSesViaMoto:
    def test_sent_email_is_recorded(self, ses: SesStandIn) -> None:
        """A sent email returns SES's MessageId; moto holds its sender, recipient and text."""
        email = make_email()

        accepted = make_ses_gateway(ses.endpoint_url).send_email(email)

        assert accepted.provider == "ses"
        [sent] = [m for m in ses.sent_messages() if m.message_id == accepted.message_id]
        assert (sent.source, sent.to) == (SENDER, (email.to,))
        assert (sent.subject, sent.body) == (email.subject, email.text)

    def test_unverified_sender_is_permanent(self, ses: SesStandIn) -> None:
        """SES rejects a sender identity it has not verified: MessageRejected, permanent."""
        gateway = make_ses_gateway(ses.endpoint_url, from_address="someone@unverified.example")

        with pytest.raises(ProviderPermanent) as raised:
            gateway.send_email(make_email())

        assert (raised.value.provider, raised.value.code) == ("ses", "MessageRejected")


class TestSesFaults:
    # injected SES answer -> the provider error the gateway raises
    @pytest.mark.parametrize(
        ("outcome", "expected"),
        [
            ("TooManyRequestsException", ProviderRetryable),  # 429: over the sending rate
            ("ThrottlingException", ProviderRetryable),  # 400 with a throttling code
            ("SendingPausedException", ProviderRetryable),  # our account paused: an outage
            ("AccountSuspendedException", ProviderRetryable),  # our account, not this email: dead-lettered, alerted
            ("MailFromDomainNotVerifiedException", ProviderRetryable),  # our sending domain's configuration
            ("NotFoundException", ProviderRetryable),  # 404: e.g. our configuration set is missing
            ("LimitExceededException", ProviderRetryable),  # a quota of ours
            ("InternalFailure", ProviderOutcomeUnknown),  # 500: may have been accepted
            ("ServiceUnavailable", ProviderRetryable),  # 503
            ("MessageRejected", ProviderPermanent),  # content or recipient refused
            ("BadRequestException", ProviderPermanent),  # this request is invalid: any other 4xx
        ],
    )
    def test_error_maps_to_its_class(self, faults: SesFaultServer, outcome: str, expected: type[ProviderError]) -> None:
        """Each SES error code becomes one provider error class, after a single attempt."""
        faults.push(outcome)

        with pytest.raises(ProviderError) as raised:
            make_ses_gateway(faults.endpoint_url).send_email(make_email())

        assert type(raised.value) is expected
        assert (raised.value.provider, raised.value.code) == ("ses", outcome)
        assert len(faults.requests) == 1, "botocore must not retry: the broker does"

    def test_no_answer_is_outcome_unknown(self, faults: SesFaultServer) -> None:
        """A request SES took but never answered leaves the outcome unknown."""
        faults.push("hang")

        with pytest.raises(ProviderOutcomeUnknown):
            make_ses_gateway(faults.endpoint_url, timeout_s=0.3).send_email(make_email())

        assert len(faults.requests) == 1

    def test_request_carries_the_email(self, faults: SesFaultServer) -> None:
        """SendEmail carries a UTF-8 text email to one recipient, in the configuration set."""
        gateway = make_ses_gateway(faults.endpoint_url, configuration_set="reminders")

        accepted = gateway.send_email(make_email())

        [request] = faults.requests
        simple = request["Content"]["Simple"]
        assert accepted.message_id
        assert request["Destination"] == {"ToAddresses": ["ana@patient.example"]}
        assert (request["FromEmailAddress"], request["ConfigurationSetName"]) == (
            SENDER,
            "reminders",
        )
        assert simple["Subject"] == {"Data": make_email().subject, "Charset": "UTF-8"}
        assert simple["Body"] == {"Text": {"Data": make_email().text, "Charset": "UTF-8"}}

    def test_connection_refused_is_retryable(self) -> None:
        """Nothing listening means the request never left: retryable."""
        with pytest.raises(ProviderRetryable) as raised:
            make_ses_gateway(f"http://127.0.0.1:{closed_port()}").send_email(make_email())

        assert raised.value.code == "connect"

    # status, x-amzn-ErrorType -> the class: refusals of our credentials are ours, whatever the code
    @pytest.mark.parametrize(("status", "code", "expected"), [
        (403, "UnrecognizedClientException", ProviderRetryable),  # an access key SES does not know
        (403, "AccessDeniedException", ProviderRetryable),  # our IAM policy forbids ses:SendEmail
        (403, "SomeNewAuthorizationException", ProviderRetryable),  # any 403
        (502, "ThrottlingException", ProviderOutcomeUnknown),  # a 502 may follow acceptance, whatever its code
    ])  # fmt: skip
    def test_our_credentials_refused_are_retryable(self, status: int, code: str, expected: type[ProviderError]) -> None:
        """A 403 is about our credentials, never the recipient: retried, then dead-lettered and alerted."""
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"}
        with CannedAnswer(status, b'{"message": "refused"}', headers) as ses, pytest.raises(ProviderError) as raised:
            make_ses_gateway(ses.url).send_email(make_email())

        assert (type(raised.value), raised.value.code, ses.requests) == (expected, code, 1)


class TestSmtp:
    def test_delivered_email_is_recorded(self, smtp: SmtpStandIn) -> None:
        """The relay receives one UTF-8 text email whose Message-ID is the one returned."""
        email = make_email()

        accepted = make_smtp_gateway(smtp.port).send_email(email)

        [received] = smtp.messages
        assert accepted.provider == "smtp"
        assert (received.mail_from, received.rcpt_tos) == (SENDER, (email.to,))
        assert received.message["Message-ID"] == accepted.message_id
        assert received.message["Subject"] == email.subject
        assert received.message.get_content().rstrip("\r\n") == email.text

    # recipient -> the provider error and the SMTP reply code it carries
    @pytest.mark.parametrize(
        ("to", "expected", "code"),
        [
            (TEMPORARY, ProviderRetryable, "451"),  # 451 4.3.0 try later
            (PERMANENT, ProviderPermanent, "550"),  # 550 5.1.1 user unknown
        ],
    )
    def test_refused_recipient(self, smtp: SmtpStandIn, to: str, expected: type[ProviderError], code: str) -> None:
        """A 4xx reply is retryable, a 5xx reply permanent, and neither delivers anything."""
        with pytest.raises(ProviderError) as raised:
            make_smtp_gateway(smtp.port).send_email(make_email(to=to))

        assert (type(raised.value), raised.value.code) == (expected, code)
        assert to not in str(raised.value)
        assert smtp.messages == []

    def test_no_answer_after_data_is_outcome_unknown(self, smtp: SmtpStandIn) -> None:
        """A relay that goes silent once it has the message leaves the outcome unknown."""
        with pytest.raises(ProviderOutcomeUnknown):
            # 2 s: the greeting and every reply before DATA must beat it, from the stand-in's thread
            make_smtp_gateway(smtp.port, timeout_s=2).send_email(make_email(to=HANGING))

    # refused command, the relay's reply -> the class and its code
    @pytest.mark.parametrize(("verb", "reply", "expected"), [
        ("AUTH", "535 5.7.8 authentication credentials invalid", ProviderRetryable),  # our password
        ("MAIL", "530 5.7.0 authentication required", ProviderRetryable),  # our configuration
        ("MAIL", "550 5.7.1 sender not allowed", ProviderRetryable),  # our From address
        ("RCPT", "550 5.1.1 user unknown", ProviderPermanent),  # this recipient
        ("DATA", "554 5.6.0 message refused", ProviderPermanent),  # this message
    ])  # fmt: skip
    def test_a_refusal_before_rcpt_is_ours(self, verb: str, reply: str, expected: type[ProviderError]) -> None:
        """A 5xx before RCPT refuses our credentials or sender, not this email: retryable, not failed."""
        with RefusingSmtpRelay(verb, reply) as relay, pytest.raises(ProviderError) as raised:
            make_smtp_gateway(relay.port, username="notify", password="wrong").send_email(make_email())

        assert (type(raised.value), raised.value.code) == (expected, reply[:3])

    def test_connection_refused_is_retryable(self) -> None:
        """Nothing listening on the relay port is retryable."""
        with pytest.raises(ProviderRetryable) as raised:
            make_smtp_gateway(closed_port()).send_email(make_email())

        assert raised.value.code == "connect"
