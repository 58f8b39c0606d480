"""``TwilioSmsGateway``: the ``SmsGateway`` port over Twilio's Messages API, with the real SDK.

Every SDK and transport error is translated once, in ``_translate`` (DESIGN.md §7):

    ProviderRetryable       HTTP 401, 403, 429 or 503; a code about our account or its capacity
                            (20003 credentials, 10001/20005/30002 account inactive, 21606 sender,
                            21611 sender queue full, 63017/63038 rate or daily limit, 20429,
                            30001; DESIGN's limited 30003, 30008, 30500); or the request never
                            left: refused, DNS, connect timeout, a failed TLS handshake
    ProviderPermanent       any other 4xx, about this message: 21211 invalid number, 21610
                            replied STOP, 21614 not mobile, 30006, 30007, a body Twilio refuses
    ProviderOutcomeUnknown  any other 5xx, whatever its code (a 500, 502 or 504 can come after the
                            message was created); anything that broke once the request may have
                            been sent: read timeout, dropped connection, a TLS error past the handshake

A retryable refusal never loops silently: the broker retries (the Trigger's ``delivery.retry``,
with backoff), then dead-letters the event, which is recorded and alerted; meanwhile each one
counts against Twilio's health in the failover breaker, so SMS move to SNS where it is set up.
"""

from __future__ import annotations

from typing import Any

from requests import exceptions as http
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError

from patient_notify.delivery import OutboundSms, ProviderAccepted
from patient_notify.errors import (
    ConfigError,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderPermanent,
    ProviderRetryable,
)
from patient_notify.transport_errors import causes, failed_in_tls_handshake

__all__ = ["TWILIO_API", "TwilioSmsGateway"]

PROVIDER = "twilio"
TWILIO_API = "https://api.twilio.com"
_RETRYABLE_STATUSES = frozenset({401, 403, 429, 503})  # our credentials or account; throttled; down
_RETRYABLE_CODES = frozenset({
    20003, 10001, 20005, 30002,  # credentials rejected (a rotated token), account not active or suspended
    21606, 21611,  # our From number: not able to send here, or its queue is full
    20429, 30001, 63017, 63038,  # rate limits, queue overflow, the account's daily limit
    30003, 30008, 30500,  # DESIGN §7's "limited" retries: the broker's retry count is the limit
})  # fmt: skip
# An empty mapping would make the SDK fall back to os.environ (`environment or os.environ`);
# pinning edge and region keeps ambient TWILIO_* variables from redirecting traffic.
_NO_AMBIENT_ENVIRONMENT = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}


# twilio ships no type hints, so its class is Any to mypy
class _RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Twilio's own HTTP client, sent to ``base_url`` instead of api.twilio.com, with a timeout."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        super().__init__(timeout=timeout_s)
        self._base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API):
            url = self._base_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


class TwilioSmsGateway:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str = TWILIO_API,
        timeout_s: float = 10.0,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ConfigError("from_number", "set a from number or a messaging service sid")
        self._sender = (
            {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {"from_": from_number}
        )
        client = Client(
            account_sid,
            auth_token,
            http_client=_RebasedHttpClient(base_url, timeout_s),
            environment=_NO_AMBIENT_ENVIRONMENT,
        )
        # Resolved now, at start: the SDK imports its REST modules on first use (~0.6 s), which
        # would delay the first message, and bunch paced messages queued behind it.
        self._messages = client.messages

    def send_sms(self, message: OutboundSms) -> ProviderAccepted:
        options: dict[str, object] = dict(self._sender)
        if message.validity_period_s is not None:
            options["validity_period"] = message.validity_period_s
        if message.status_callback is not None:
            options["status_callback"] = message.status_callback
        try:
            created = self._messages.create(to=message.to, body=message.body, **options)
        except (TwilioException, http.RequestException) as exc:
            raise _translate(exc) from exc
        return ProviderAccepted(PROVIDER, str(created.sid))


def _translate(exc: Exception) -> ProviderError:
    if isinstance(exc, (TwilioRestException, TwilioServiceException)):
        return _refusal(int(exc.status), exc.code or exc.status)
    if _never_sent(exc):
        return ProviderRetryable(PROVIDER, "connect", type(exc).__name__)
    if isinstance(exc, http.RequestException):
        return ProviderOutcomeUnknown(PROVIDER, "no-response", type(exc).__name__)
    return ProviderPermanent(PROVIDER, "client", type(exc).__name__)  # SDK-side misuse


def _refusal(status: int, code: object) -> ProviderError:  # code: Twilio's, an int in its JSON
    detail = f"HTTP {status}"  # not Twilio's message: it can echo the phone number
    if status >= 500 and status != 503:  # may follow the message's creation, whatever the code says
        return ProviderOutcomeUnknown(PROVIDER, str(code), detail)
    if status in _RETRYABLE_STATUSES or code in _RETRYABLE_CODES:
        return ProviderRetryable(PROVIDER, str(code), detail)
    return ProviderPermanent(PROVIDER, str(code), detail)


def _never_sent(exc: Exception) -> bool:
    """True when the request provably never left: no connection, or a TLS handshake that failed.

    The client makes one attempt (no urllib3 retries), so the chain describes that attempt alone.
    No request byte is written before the handshake completes; any TLS error after it (a bad
    record MAC, an unexpected EOF while reading the answer) may follow Twilio's acceptance.
    """
    chain = causes(exc)
    return any(isinstance(link, ConnectTimeoutError) for link in chain) or failed_in_tls_handshake(chain[-1])
