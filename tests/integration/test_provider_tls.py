"""TLS failures, through each provider's real client: only a broken handshake proves nothing was sent.

Twilio (requests), SNS and SES (botocore) against a local HTTPS server, SMTP against a STARTTLS
relay; each breaks TLS in the handshake, or after the whole request (or message) arrived, where
urllib3 still calls it an SSLError. Retrying that one would send the patient a second message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from patient_notify.delivery import OutboundEmail, OutboundSms, ProviderAccepted
from patient_notify.errors import ProviderError, ProviderOutcomeUnknown, ProviderRetryable
from tests.support.broken_servers import (
    BrokenHttpsServer,
    BrokenSmtpRelay,
    Certificate,
    HttpsFault,
    SmtpFault,
    self_signed,
)
from tests.support.functions import load_module

twilio_gateway = load_module("sms-sender", "twilio_gateway")
sns_gateway = load_module("sms-sender", "sns_gateway")
ses_gateway = load_module("email-sender", "ses_gateway")
smtp_gateway = load_module("email-sender", "smtp_gateway")

SMS = OutboundSms("+447700900123", "Reminder: Tue 14 Oct 09:30, Clinic B.")
EMAIL = OutboundEmail("ana@patient.example", "Reminder", "Tue 14 Oct 09:30, Clinic B.")
# The silent handshake's wait. Every other fault is immediate, unless a loaded machine stalls the
# server's thread: a timeout there would make a handshake look silent.
TIMEOUT_S = 3.0
AWS = {"region": "eu-west-2", "access_key_id": "testing", "secret_access_key": "testing", "timeout_s": TIMEOUT_S}


def send_via_twilio(url: str) -> ProviderAccepted:
    gateway = twilio_gateway.TwilioSmsGateway(
        "AC" + "1f" * 16, "token", from_number="+15005550006", base_url=url, timeout_s=TIMEOUT_S
    )
    return gateway.send_sms(SMS)  # type: ignore[no-any-return]


def send_via_sns(url: str) -> ProviderAccepted:
    return sns_gateway.SnsSmsGateway(endpoint_url=url, **AWS).send_sms(SMS)  # type: ignore[no-any-return]


def send_via_ses(url: str) -> ProviderAccepted:
    gateway = ses_gateway.SesEmailGateway(from_address="reminders@clinic.example", endpoint_url=url, **AWS)
    return gateway.send_email(EMAIL)  # type: ignore[no-any-return]


def send_via_smtp(port: int) -> ProviderAccepted:
    gateway = smtp_gateway.SmtpEmailGateway(
        host="127.0.0.1", port=port, from_address="reminders@clinic.example", starttls=True, timeout_s=2
    )
    return gateway.send_email(EMAIL)  # type: ignore[no-any-return]


HTTPS_PROVIDERS: dict[str, Callable[[str], ProviderAccepted]] = {
    "twilio": send_via_twilio,
    "sns": send_via_sns,
    "ses": send_via_ses,
}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Certificate, Certificate]:
    """The server certificate clients trust, and another one they do not."""
    folder = tmp_path_factory.mktemp("tls")
    return self_signed(folder / "trusted"), self_signed(folder / "untrusted")


@pytest.fixture
def trusted(certificates: tuple[Certificate, Certificate], monkeypatch: pytest.MonkeyPatch) -> Certificate:
    """Every client trusts the first certificate alone, through its environment, as in production."""
    for variable in ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(variable, str(certificates[0].cert))
    return certificates[0]


@pytest.fixture
def untrusted(certificates: tuple[Certificate, Certificate]) -> Certificate:
    return certificates[1]


class TestHttpsProviders:
    # server fault -> the error class, and how many requests the server read whole
    @pytest.mark.parametrize(("fault", "expected", "received"), [
        ("untrusted", ProviderRetryable, 0),  # certificate verification fails in the handshake
        ("hang-up", ProviderRetryable, 0),  # the server hangs up mid-handshake (UNEXPECTED_EOF)
        ("plaintext", ProviderRetryable, 0),  # not TLS at all (WRONG_VERSION_NUMBER)
        ("silent", ProviderRetryable, 0),  # the handshake times out: nothing was written yet
        ("corrupt-after-request", ProviderOutcomeUnknown, 1),  # BAD_RECORD_MAC reading the answer
        ("corrupt-mid-answer", ProviderOutcomeUnknown, 1),  # ... after "201 Created" began
    ])  # fmt: skip
    @pytest.mark.parametrize("provider", sorted(HTTPS_PROVIDERS))
    def test_a_tls_failure_is_retryable_only_in_the_handshake(
        self, trusted: Certificate, untrusted: Certificate, provider: str, fault: HttpsFault,
        expected: type[ProviderError], received: int,
    ) -> None:  # fmt: skip
        """A handshake that failed sent nothing (retryable); a TLS error after the request may follow acceptance."""
        with BrokenHttpsServer(fault, trusted, untrusted) as server, pytest.raises(ProviderError) as raised:
            HTTPS_PROVIDERS[provider](server.url)

        assert (type(raised.value), raised.value.provider) == (expected, provider)
        assert raised.value.code == ("connect" if expected is ProviderRetryable else "no-response")
        assert server.received == received


class TestSmtpStarttls:
    # relay fault -> the error class, and how many messages the relay read whole
    @pytest.mark.parametrize(("fault", "expected", "received"), [
        ("untrusted", ProviderRetryable, 0),  # STARTTLS handshake refused: the relay holds nothing
        ("corrupt-at-rcpt", ProviderRetryable, 0),  # TLS broken before DATA: still nothing to deliver
        ("corrupt-after-data", ProviderOutcomeUnknown, 1),  # broken once the message went: may be delivered
    ])  # fmt: skip
    def test_a_tls_failure_is_retryable_only_before_data(
        self, trusted: Certificate, untrusted: Certificate, fault: SmtpFault, expected: type[ProviderError],
        received: int,
    ) -> None:  # fmt: skip
        """Before DATA the relay holds nothing; a TLS error after the message was written leaves it unknown."""
        with BrokenSmtpRelay(fault, trusted, untrusted) as relay, pytest.raises(ProviderError) as raised:
            send_via_smtp(relay.port)

        assert type(raised.value) is expected
        assert relay.received == received
