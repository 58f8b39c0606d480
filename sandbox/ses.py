"""Amazon SES v2 stand-ins: moto's server for the happy path, a tiny fault server for the rest.

``SesStandIn`` runs moto's ``ThreadedMotoServer`` in this process, so what it "sent" is read
straight from moto's backend (``ses_backends[account][region].sent_messages``; moto's SES v2
``SendEmail`` records into the SES v1 backend). moto keeps one state per process: tell your
messages apart by the ``MessageId`` the send returned.

``SesFaultServer`` speaks the SES v2 REST-JSON protocol for ``POST /v2/email/outbound-emails``
only, answering from a queue of outcomes (``push``): errors as ``x-amzn-ErrorType`` plus a JSON
``{"message": ...}`` body, which botocore turns into ``ClientError`` with that ``Error.Code``;
``"hang"`` accepts the request and never answers, to exercise read timeouts.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import boto3
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import Message, ses_backends

__all__ = ["FAULTS", "SesFaultServer", "SesSentEmail", "SesStandIn"]

ACCESS_KEY_ID, SECRET_ACCESS_KEY = "testing", "testing"  # moto accepts any credentials

# outcome -> (HTTP status, x-amzn-ErrorType); status codes as in the SES v2 service model
FAULTS: dict[str, tuple[int, str]] = {
    "TooManyRequestsException": (429, "TooManyRequestsException"),
    "ThrottlingException": (400, "ThrottlingException"),
    "LimitExceededException": (400, "LimitExceededException"),
    "MessageRejected": (400, "MessageRejected"),
    "MailFromDomainNotVerifiedException": (400, "MailFromDomainNotVerifiedException"),
    "AccountSuspendedException": (400, "AccountSuspendedException"),
    "SendingPausedException": (400, "SendingPausedException"),
    "BadRequestException": (400, "BadRequestException"),
    "NotFoundException": (404, "NotFoundException"),
    "InternalFailure": (500, "InternalFailure"),
    "ServiceUnavailable": (503, "ServiceUnavailable"),
}


@dataclass(frozen=True)
class SesSentEmail:
    message_id: str
    source: str
    to: tuple[str, ...]
    subject: str
    body: str


class SesStandIn:
    """moto's server on 127.0.0.1 and a free port; a context manager."""

    def __init__(self, region: str = "eu-west-2") -> None:
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._started = False

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._server.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def verify_sender(self, address: str) -> None:
        """Create ``address`` as a verified email identity, through the real SES v2 API."""
        session = boto3.session.Session()
        client = session.client(
            "sesv2",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        client.create_email_identity(EmailIdentity=address)

    def sent_messages(self, start: int = 0, stop: int | None = None) -> list[SesSentEmail]:
        """What SES accepted, in order; records ``start`` to ``stop`` (a raw message counts, unlisted)."""
        recorded = list(ses_backends[DEFAULT_ACCOUNT_ID][self.region].sent_messages)[start:stop]
        return [_sent_email(message) for message in recorded if isinstance(message, Message)]

    def sent_count(self) -> int:
        """How many records ``sent_messages`` reads from (cheap: nothing converted)."""
        return len(ses_backends[DEFAULT_ACCOUNT_ID][self.region].sent_messages)


def _sent_email(message: Message) -> SesSentEmail:
    to = tuple(message.destinations.get("ToAddresses", ()))
    return SesSentEmail(message.id, message.source, to, message.subject, message.body)


class SesFaultServer:
    """SES v2 ``SendEmail`` answering ``push``ed outcomes in order, then success."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # the JSON body of every SendEmail received
        self._outcomes: deque[str] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_FaultHandler, self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def push(self, *outcomes: str) -> None:
        """Queue outcomes: ``"success"``, ``"hang"`` or a key of ``FAULTS``."""
        unknown = set(outcomes) - {"success", "hang", *FAULTS}
        if unknown:
            raise ValueError(f"unknown outcomes: {sorted(unknown)}")
        with self._lock:
            self._outcomes.extend(outcomes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._release.set()  # lets hung requests finish so their threads end
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_outcome(self, request: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append(request)
            return self._outcomes.popleft() if self._outcomes else "success"

    def hang(self) -> None:
        self._release.wait()


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def __init__(self, faults: SesFaultServer, *args: Any) -> None:
        self.faults = faults  # set first: the base __init__ serves the request
        super().__init__(*args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v2/email/outbound-emails":
            self._reply(404, {"message": "not found"}, "NotFoundException")
            return
        outcome = self.faults.next_outcome(json.loads(body or b"{}"))
        if outcome == "hang":
            self.faults.hang()
            self.close_connection = True
        elif outcome == "success":
            self._reply(200, {"MessageId": f"{uuid.uuid4()}-000000"})
        else:
            status, error_type = FAULTS[outcome]
            self._reply(status, {"message": f"{outcome} (injected)"}, error_type)

    def _reply(self, status: int, payload: dict[str, str], error_type: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type is not None:
            self.send_header("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: nothing here is worth a log line."""
