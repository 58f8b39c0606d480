"""``SnsSmsGateway``: the ``SmsGateway`` port over Amazon SNS ``Publish`` to a phone number (boto3).

The failover SMS provider (DESIGN §7): no delivery receipts, no validity period, no status
callback, so a message it accepts stays ``sent``. One attempt per call (the broker owns retries);
errors are translated once, in ``patient_notify.aws_errors``:

    ProviderRetryable       Throttling, KMSThrottling, HTTP 429 or 503; our credentials or
                            permissions (AuthorizationError, InvalidClientTokenId, HTTP 401 or 403);
                            or the request never left (refused, DNS, connect timeout, a failed TLS
                            handshake, no credentials found)
    ProviderPermanent       InvalidParameter (the number SNS cannot text), any other 4xx, a request
                            botocore refuses to build
    ProviderOutcomeUnknown  any other 5xx (InternalError can come after the message was accepted);
                            anything that broke once the request may have been sent: read timeout,
                            dropped connection, a TLS error past the handshake; any other error

A retryable refusal never loops silently: the broker retries (the Trigger's ``delivery.retry``,
with backoff), then dead-letters the event, which is recorded and alerted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from patient_notify import aws_errors
from patient_notify.delivery import OutboundSms, ProviderAccepted

__all__ = ["SnsSmsGateway"]

PROVIDER = "sns"
_RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottledException", "KMSThrottling", "KMSThrottlingException",
    # Our credentials or IAM policy, not this number: retry, then dead-letter and alert.
    "AuthorizationError", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "AccessDenied",
})  # fmt: skip


class _SnsClient(Protocol):
    """The one call we make (boto3-stubs ships no SNS types here)."""

    def publish(self, **request: Any) -> Mapping[str, Any]: ...


class SnsSmsGateway:
    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        sender_id: str | None = None,
        origination_number: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._attributes = _attributes(sender_id, origination_number)
        config = Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                        retries={"total_max_attempts": 1, "mode": "standard"})  # fmt: skip
        # A session of our own: boto3's default session is not thread-safe.
        client = boto3.session.Session().client(
            "sns", region_name=region, endpoint_url=endpoint_url, aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key, config=config,
        )  # fmt: skip
        self._client = cast(_SnsClient, client)

    def send_sms(self, message: OutboundSms) -> ProviderAccepted:
        try:
            response = self._client.publish(PhoneNumber=message.to, Message=message.body,
                                            MessageAttributes=self._attributes)  # fmt: skip
        except (ClientError, BotoCoreError) as exc:
            raise aws_errors.translate(exc, PROVIDER, _RETRYABLE_CODES) from exc
        return ProviderAccepted(PROVIDER, str(response["MessageId"]))


def _attributes(sender_id: str | None, origination_number: str | None) -> dict[str, dict[str, str]]:
    # Transactional: SNS's higher-reliability route, for messages a person is waiting for.
    attributes = {"AWS.SNS.SMS.SMSType": "Transactional"}
    if sender_id:
        attributes["AWS.SNS.SMS.SenderID"] = sender_id
    if origination_number:
        attributes["AWS.MM.SMS.OriginationNumber"] = origination_number
    return {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
