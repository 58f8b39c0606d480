"""``SesEmailGateway``: the ``EmailGateway`` port over Amazon SES v2 ``SendEmail`` (boto3).

botocore makes exactly one attempt (the broker owns retries and their backoff), and every error
is translated once, in ``_translate``:

    ProviderRetryable       ThrottlingException, TooManyRequestsException, SendingPausedException,
                            HTTP 429 or 503; or the request never left (refused, DNS, connect
                            timeout, TLS), or no credentials were found
    ProviderPermanent       MessageRejected, MailFromDomainNotVerifiedException,
                            AccountSuspendedException, BadRequestException, NotFoundException,
                            any other 4xx, a request botocore refuses to build
    ProviderOutcomeUnknown  read timeout or connection dropped after the request was sent; any other
                            5xx (a 500, 502 or 504 can come after the email was accepted)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as NeverConnected

from patient_notify.delivery import OutboundEmail, ProviderAccepted
from patient_notify.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderPermanent,
    ProviderRetryable,
)

if TYPE_CHECKING:
    from mypy_boto3_sesv2.type_defs import SendEmailRequestTypeDef

__all__ = ["SesEmailGateway"]

PROVIDER = "ses"
_RETRYABLE_CODES = frozenset({
    "ThrottlingException",
    "TooManyRequestsException",
    # A paused account is our outage, not this message's fault: retry, then dead-letter and alert.
    "SendingPausedException",
})  # fmt: skip


class SesEmailGateway:
    def __init__(
        self,
        *,
        from_address: str,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        configuration_set: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._from_address = from_address
        self._configuration_set = configuration_set
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            # total_max_attempts counts the first call; legacy "max_attempts": 1 means one *retry*
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        # A session of our own: boto3's default session is not thread-safe.
        self._client = boto3.session.Session().client(
            "sesv2",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    def send_email(self, message: OutboundEmail) -> ProviderAccepted:
        try:
            response = self._client.send_email(**self._request(message))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc
        return ProviderAccepted(PROVIDER, response["MessageId"])

    def _request(self, message: OutboundEmail) -> SendEmailRequestTypeDef:
        request: SendEmailRequestTypeDef = {
            "FromEmailAddress": self._from_address,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}},
                }
            },
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        return request


def _translate(exc: ClientError | BotoCoreError) -> ProviderError:
    name = type(exc).__name__
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code") or "Unknown"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = f"HTTP {status}"  # not SES's message: it can echo the addresses
        if code in _RETRYABLE_CODES or status in (429, 503):
            return ProviderRetryable(PROVIDER, code, detail)
        if status >= 500:
            return ProviderOutcomeUnknown(PROVIDER, code, detail)
        return ProviderPermanent(PROVIDER, code, detail)
    if isinstance(exc, NeverConnected):
        return ProviderRetryable(PROVIDER, "connect", name)
    if isinstance(exc, HTTPClientError):  # ReadTimeoutError, ConnectionClosedError
        return ProviderOutcomeUnknown(PROVIDER, "no-response", name)
    if isinstance(exc, ParamValidationError):
        return ProviderPermanent(PROVIDER, "invalid-request", name)
    return ProviderRetryable(PROVIDER, "client", name)  # e.g. NoCredentialsError: never sent
