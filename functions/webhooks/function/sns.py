"""Amazon SNS messages, verified as AWS documents it ("Verifying the signatures of Amazon SNS messages").

A message is accepted only when all of these hold, checked in this order:

1. it is an SNS JSON message of type Notification, SubscriptionConfirmation or UnsubscribeConfirmation;
2. its TopicArn is the one expected (SES_EVENTS_TOPIC_ARN);
3. SigningCertURL is exactly ``https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem``
   (``.amazonaws.com.cn`` in China; ``:443`` may be spelt out): no other host (``sns.s3.amazonaws.com``
   is an S3 bucket anyone could name ``sns``), path, query, fragment, port or credentials;
4. SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA, PKCS #1 v1.5) verifies the canonical
   string with that certificate's key. The canonical string is ``"<Name>\\n<value>\\n"`` for each
   of these fields, in this order, skipping an absent Subject:

       Notification                                  Message MessageId Subject Timestamp TopicArn Type
       SubscriptionConfirmation, Unsubscribe…        Message MessageId SubscribeURL Timestamp Token TopicArn Type

Anything else raises ``SnsRejected`` with the reason. The certificate comes through the
``SnsEndpoint`` port; trust rests on TLS to the amazonaws.com host, as in AWS's own SDKs.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "SIGNED_FIELDS",
    "SnsEndpoint",
    "SnsMessage",
    "SnsRejected",
    "canonical_string",
    "certificate_url",
    "is_sns_url",
    "verify",
]

MessageType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SUBSCRIPTION_FIELDS,
    "UnsubscribeConfirmation": _SUBSCRIPTION_FIELDS,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# Region-shaped (us-east-1, us-gov-west-1, cn-north-1), so never an S3 bucket host such as sns.s3-external-1.
_SNS_HOST = r"sns\.[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+\.amazonaws\.com(?:\.cn)?"
_CERTIFICATE_URL = re.compile(
    rf"https://(?P<host>{_SNS_HOST})(?::443)?(?P<path>/SimpleNotificationService-[0-9a-f]+\.pem)"
)
# The whole URL matched, so no parser can read another host into it; then printable ASCII bar "#".
_ACTION_URL = re.compile(rf"https://{_SNS_HOST}(?::443)?/[!-\"$-~]*")


class SnsRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SnsEndpoint(Protocol):
    """What verification and subscription need from SNS over HTTP."""

    async def certificate(self, url: str) -> bytes: ...

    async def confirm_subscription(self, url: str) -> None: ...


class SnsMessage(BaseModel):
    """The JSON SNS POSTs; field names as AWS writes them, values kept exactly as received."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    Type: MessageType
    MessageId: str
    TopicArn: str
    Message: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    Subject: str | None = None
    SubscribeURL: str | None = None
    Token: str | None = None

    @classmethod
    def parse(cls, body: bytes) -> SnsMessage:
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            raise SnsRejected("not an SNS message") from exc


def canonical_string(message: SnsMessage) -> bytes:
    values = message.model_dump()
    fields = [(name, values[name]) for name in SIGNED_FIELDS[message.Type]]
    if any(value is None for name, value in fields if name != "Subject"):
        raise SnsRejected("a signed field is missing")
    return "".join(f"{name}\n{value}\n" for name, value in fields if value is not None).encode()


def certificate_url(url: str) -> str | None:
    """The URL to fetch a SigningCertURL's certificate from (without ``:443``), or None: not SNS's."""
    match = _CERTIFICATE_URL.fullmatch(url)
    return f"https://{match['host']}{match['path']}" if match else None


def is_sns_url(url: str | None) -> bool:
    """A SubscribeURL or UnsubscribeURL fit to visit: https on an SNS host, default port, no credentials."""
    return url is not None and _ACTION_URL.fullmatch(url) is not None


async def verify(message: SnsMessage, expected_topic: str | None, sns: SnsEndpoint) -> None:
    """Raise ``SnsRejected`` unless the message is SNS's, for the expected topic."""
    if expected_topic is None:
        raise SnsRejected("SES_EVENTS_TOPIC_ARN is not set")
    if message.TopicArn != expected_topic:
        raise SnsRejected("unexpected topic")
    if message.SignatureVersion not in _HASHES:
        raise SnsRejected("unsupported signature version")
    url = certificate_url(message.SigningCertURL)
    if url is None:
        raise SnsRejected("certificate URL not on an SNS host")
    verify_signature(message, await sns.certificate(url))


def verify_signature(message: SnsMessage, certificate_pem: bytes) -> None:
    try:
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        signature = base64.b64decode(message.Signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SnsRejected("unreadable certificate or signature") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsRejected("certificate key is not RSA")
    try:
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), _HASHES[message.SignatureVersion]())
    except InvalidSignature as exc:
        raise SnsRejected("signature invalid") from exc
