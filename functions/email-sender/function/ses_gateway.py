"""``SesEmailGateway``: the ``EmailGateway`` port over Amazon SES v2 ``SendEmail`` (boto3).

botocore makes exactly one attempt (the broker owns retries and their backoff), and every error
is translated once, in ``patient_notify.aws_errors``:

    ProviderRetryable       throttled (ThrottlingException, TooManyRequestsException, HTTP 429,
                            503); our account or configuration, not this email (SendingPaused,
                            AccountSuspended, MailFromDomainNotVerified, LimitExceeded, NotFound:
                            a configuration set, HTTP 401 or 403: credentials); or the request never
                            left (refused, DNS, connect timeout, a failed TLS handshake, no credentials)
    ProviderPermanent       about this email: MessageRejected, BadRequestException, any other 4xx,
                            a request botocore refuses to build
    ProviderOutcomeUnknown  any other 5xx (a 500, 502 or 504 can come after the email was
                            accepted); anything that broke once the request may have been sent: read
                            timeout, dropped connection, a TLS error past the handshake; any other error

A retryable refusal never loops silently: the broker retries (the Trigger's ``delivery.retry``,
with backoff), then dead-letters the event, which is recorded and alerted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from patient_notify import aws_errors
from patient_notify.delivery import OutboundEmail, ProviderAccepted

if TYPE_CHECKING:
    from mypy_boto3_sesv2.type_defs import SendEmailRequestTypeDef

__all__ = ["SesEmailGateway"]

PROVIDER = "ses"
_RETRYABLE_CODES = frozenset({
    "ThrottlingException", "TooManyRequestsException",
    # Our account or configuration, not this email: retry, then dead-letter and alert.
    "SendingPausedException", "AccountSuspendedException", "MailFromDomainNotVerifiedException",
    "LimitExceededException", "NotFoundException",  # a sending quota; a missing configuration set
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
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
            raise aws_errors.translate(exc, PROVIDER, _RETRYABLE_CODES) from exc
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
