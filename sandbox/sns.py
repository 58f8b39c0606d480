"""An Amazon SNS stand-in for SES events: its own signing key and certificate, served over local HTTP.

SNS signs every message it POSTs to an HTTP subscriber and serves the certificate at
``SigningCertURL`` (``https://sns.<region>.amazonaws.com/SimpleNotificationService-<id>.pem``).
This stand-in does the same with a fresh RSA key and a self-signed certificate: ``notification``,
``subscription_confirmation`` and ``unsubscribe_confirmation`` build messages signed exactly as
AWS documents (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA, over ``Name\\nvalue\\n`` for
the type's fields in their documented order), and ``ses_event`` builds the SES event a
Notification carries.

``transport()`` is an httpx transport that sends requests for any ``sns.*.amazonaws.com`` host to
this server (and refuses every other host), so the webhook's real HTTP adapter fetches the
certificate and confirms subscriptions here. The server answers ``GET <certificate path>`` with
the PEM and ``GET /?Action=ConfirmSubscription&TopicArn=…&Token=…`` by recording the token.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["DEFAULT_TOPIC_ARN", "SnsHandler", "SnsStandIn", "ses_event"]

DEFAULT_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SUBSCRIPTION_FIELDS,
    "UnsubscribeConfirmation": _SUBSCRIPTION_FIELDS,
}


class SnsStandIn:
    """A signing key, its certificate, and (once started) a local server for both; a context manager."""

    def __init__(self, region: str = "us-east-1", topic_arn: str = DEFAULT_TOPIC_ARN, host: str = "127.0.0.1") -> None:
        self.region, self.topic_arn = region, topic_arn
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate_pem = _self_signed(self._key, f"sns.{region}.amazonaws.com")
        self.cert_url = f"https://sns.{region}.amazonaws.com/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        self.confirmed: list[str] = []  # tokens of confirmed subscriptions
        self.requests: list[str] = []  # the path of every GET served
        self.forced_statuses: deque[int] = deque()  # answer the next GETs with these statuses instead
        self._lock = threading.Lock()
        self._host = host
        self._server: ThreadingHTTPServer | None = None  # signing needs no server: unit tests never start one
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("SnsStandIn is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._server = ThreadingHTTPServer((self._host, 0), partial(SnsHandler, self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    def transport(self) -> httpx.AsyncBaseTransport:
        return _LocalSnsTransport(self.base_url)

    def notification(self, message: str, *, version: str = "1", subject: str | None = None) -> dict[str, str]:
        fields = {"Type": "Notification", "Message": message, **({"Subject": subject} if subject else {})}
        fields["UnsubscribeURL"] = self._action_url("Unsubscribe", SubscriptionArn=f"{self.topic_arn}:{uuid.uuid4()}")
        return self.sign(fields, version)

    def subscription_confirmation(self, *, version: str = "1") -> dict[str, str]:
        return self.sign(self._subscription("SubscriptionConfirmation"), version)

    def unsubscribe_confirmation(self, *, version: str = "1") -> dict[str, str]:
        return self.sign(self._subscription("UnsubscribeConfirmation"), version)

    def sign(self, fields: dict[str, str], version: str = "1") -> dict[str, str]:
        """Complete ``fields`` (MessageId, Timestamp, TopicArn unless given) and sign them as SNS does."""
        message = {
            "MessageId": str(uuid.uuid4()), "TopicArn": self.topic_arn,
            "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **fields, "SignatureVersion": version, "SigningCertURL": self.cert_url,
        }  # fmt: skip
        canonical = "".join(f"{name}\n{message[name]}\n" for name in _SIGNED[message["Type"]] if name in message)
        signature = self._key.sign(canonical.encode(), padding.PKCS1v15(), _HASHES[version]())
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def _subscription(self, kind: str) -> dict[str, str]:
        token = uuid.uuid4().hex * 2
        return {
            "Type": kind, "Token": token,
            "Message": f"You have chosen to subscribe to the topic {self.topic_arn}.",
            "SubscribeURL": self._action_url("ConfirmSubscription", TopicArn=self.topic_arn, Token=token),
        }  # fmt: skip

    def _action_url(self, action: str, **params: str) -> str:
        return f"https://sns.{self.region}.amazonaws.com/?{urlencode({'Action': action, **params})}"

    def answer(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append(path)
            if self.forced_statuses:
                return self.forced_statuses.popleft(), b"forced"
            parts = urlsplit(path)
            if parts.path == urlsplit(self.cert_url).path:
                return 200, self.certificate_pem
            query = parse_qs(parts.query)
            if query.get("Action") == ["ConfirmSubscription"] and query.get("TopicArn") == [self.topic_arn]:
                self.confirmed.extend(query.get("Token", []))
                return 200, b"<ConfirmSubscriptionResponse/>"
            return 404, b"<Error><Code>NotFound</Code></Error>"


def ses_event(
    event_type: str, message_id: str, recipients: Sequence[str] = (), *, bounce_type: str = "Permanent"
) -> dict[str, Any]:
    """An SES event as configuration-set event publishing sends it (``bounce_type``: Permanent or Transient)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    mail = {"timestamp": now, "messageId": message_id, "source": "notify@hospital.example",
            "destination": list(recipients), "sendingAccountId": "123456789012"}  # fmt: skip
    event: dict[str, Any] = {"eventType": event_type, "mail": mail}
    listed = [{"emailAddress": r} for r in recipients]
    if event_type == "Bounce":
        sub_type = "General" if bounce_type == "Permanent" else "MailboxFull"
        event["bounce"] = {"bounceType": bounce_type, "bounceSubType": sub_type, "bouncedRecipients": listed,
                           "timestamp": now, "feedbackId": str(uuid.uuid4())}  # fmt: skip
    elif event_type == "Complaint":
        event["complaint"] = {"complainedRecipients": listed, "timestamp": now, "feedbackId": str(uuid.uuid4()),
                              "complaintFeedbackType": "abuse"}  # fmt: skip
    elif event_type == "Delivery":
        event["delivery"] = {"timestamp": now, "recipients": list(recipients), "smtpResponse": "250 2.6.0 ok",
                             "processingTimeMillis": 412, "reportingMTA": "a8-70.smtp-out.amazonses.com"}  # fmt: skip
    return event


def _self_signed(key: rsa.RSAPrivateKey, host: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return certificate.public_bytes(serialization.Encoding.PEM)


class _LocalSnsTransport(httpx.AsyncBaseTransport):
    """Requests for an SNS host go to the stand-in over plain HTTP; any other host is refused."""

    def __init__(self, base_url: str) -> None:
        self._local = httpx.URL(base_url)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not _SNS_HOST.match(request.url.host):
            raise httpx.ConnectError(f"the SNS stand-in's transport reaches SNS hosts only, not {request.url.host}")
        request.url = request.url.copy_with(scheme="http", host=self._local.host, port=self._local.port)
        request.headers["host"] = f"{self._local.host}:{self._local.port}"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class SnsHandler(BaseHTTPRequestHandler):
    """Serves one connection for the stand-in (plain HTTP here; ``sandbox.sns_https`` wraps it in TLS)."""

    def __init__(self, stand_in: SnsStandIn, *args: Any) -> None:
        self.stand_in = stand_in  # set first: the base __init__ serves the request
        super().__init__(*args)

    def do_GET(self) -> None:
        status, body = self.stand_in.answer(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/x-pem-file" if body.startswith(b"-----") else "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines carry subscription tokens."""
