"""A Twilio Messages API stand-in: the real wire format, injected faults, signed status callbacks.

Point the real ``twilio`` SDK at ``TwilioStandIn.base_url``. It answers
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` and ``GET .../Messages/{Sid}.json`` as
Twilio does (basic auth, form fields, JSON errors with Twilio codes), and then POSTs
``StatusCallback`` updates signed with ``X-Twilio-Signature`` (the twilio SDK's
``RequestValidator`` scheme: HMAC-SHA1 over the URL and the sorted form fields) from background
threads: each status ``callback_delay_s`` after the previous one of the same message, the first
that long after acceptance, as a carrier's report lags the API's answer. ``wait_callbacks`` waits
until every callback due has been answered. It never logs numbers or bodies.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import math
import queue
import random
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import Request, urlopen

from twilio.request_validator import RequestValidator

__all__ = ["API_VERSION", "SentSms", "TwilioStandIn", "sms_segments"]

API_VERSION = "2010-04-01"
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # each costs two septets
_STATUS_RANK = {"accepted": 0, "queued": 1, "sent": 2, "delivered": 3, "undelivered": 3}


@dataclass(frozen=True)
class SentSms:
    """One message the stand-in accepted (answered 201)."""

    sid: str
    to: str
    from_: str | None
    body: str
    validity_period: int | None
    status_callback: str | None
    account_sid: str
    messaging_service_sid: str | None = None


def sms_segments(body: str) -> int:
    """How many SMS segments Twilio bills for ``body`` (GSM-7 unless one character is not)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units, single, multi = sum(2 if c in _GSM7_EXTENDED else 1 for c in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


class _TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def payload(self) -> dict[str, Any]:
        more_info = f"https://www.twilio.com/docs/errors/{self.code}"
        return {
            "code": self.code,
            "message": self.message,
            "more_info": more_info,
            "status": self.status,
        }


@dataclass(frozen=True)
class _CallbackJob:
    url: str
    message: SentSms
    statuses: tuple[str, ...]
    accepted_at: float  # time.monotonic() when the message was accepted


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many senders connect at once; the default backlog of 5 resets them


class TwilioStandIn:
    """A local Twilio; a context manager. Faults: ``failure_rate`` and the three number sets."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        failure_rate: float = 0.0,
        max_failures_per_message: int | None = None,
        seed: int = 0,
        callback_delay_s: float = 0.0,
        callback_workers: int = 1,  # messages whose callbacks are posted at once (each message's in order)
        out_of_order: bool = False,
        invalid_numbers: Iterable[str] = (),
        opted_out_numbers: Iterable[str] = (),
        undeliverable_numbers: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.failure_rate = failure_rate
        # Bounds how often one (To, Body) is refused, so a test's broker retries always suffice.
        self.max_failures_per_message = max_failures_per_message
        self._failures_by_message: dict[tuple[str, str], int] = {}
        self.listeners: list[Callable[[SentSms], None]] = []  # told of each accepted message (benchmarks)
        self.callback_delay_s, self.out_of_order = callback_delay_s, out_of_order
        self._callback_workers = callback_workers
        self.invalid_numbers = set(invalid_numbers)
        self.opted_out_numbers = set(opted_out_numbers)
        self.undeliverable_numbers = set(undeliverable_numbers)
        self.attempts = self.injected_failures = self.callbacks_sent = self.callbacks_failed = 0
        self._address = (host, port)
        self._messages: list[SentSms] = []
        self._resources: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._validator = RequestValidator(auth_token)
        self._callbacks: queue.Queue[_CallbackJob | None] = queue.Queue()
        self._callbacks_due = 0  # statuses queued for posting, answered or not
        self._callbacks_done = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("TwilioStandIn is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def messages(self) -> list[SentSms]:
        with self._lock:
            return list(self._messages)

    def start(self) -> None:
        self._server = _Server(self._address, partial(_Handler, self))
        self._threads = [threading.Thread(target=self._serve, name="twilio-stand-in", daemon=True)] + [
            threading.Thread(target=self._deliver_callbacks, name=f"twilio-callbacks-{n}", daemon=True)
            for n in range(self._callback_workers)
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.05)  # a quick stop() matters more than idle CPU

    def stop(self) -> None:
        self._stopping.set()
        for _ in range(self._callback_workers):
            self._callbacks.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_callbacks(self, timeout: float) -> bool:
        """True once every status callback due so far has been posted and answered (or failed)."""
        with self._callbacks_done:
            return self._callbacks_done.wait_for(
                lambda: self.callbacks_sent + self.callbacks_failed >= self._callbacks_due, timeout
            )

    def authenticate(self, authorization: str | None, account: str) -> None:
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        expected = f"{self.account_sid}:{self.auth_token}"
        matches = secrets.compare_digest(f"{user}:{password}".encode(), expected.encode())
        if scheme.lower() != "basic" or not matches or account != self.account_sid:
            raise _TwilioError(401, 20003, "Authenticate")

    def create_message(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.attempts += 1
            key = (form.get("To", ""), form.get("Body", ""))
            refused = self._failures_by_message.get(key, 0)
            cap = self.max_failures_per_message
            if self._rng.random() < self.failure_rate and (cap is None or refused < cap):
                self._failures_by_message[key] = refused + 1
                self.injected_failures += 1
                if self.injected_failures % 2:
                    raise _TwilioError(429, 20429, "Too Many Requests")
                raise _TwilioError(503, 20503, "Service Unavailable")
        message = self._validated(form)
        resource = self._resource(message)
        with self._lock:
            self._messages.append(message)
            self._resources[message.sid] = resource
        for listener in self.listeners:
            listener(message)
        if message.status_callback:
            final = "undelivered" if message.to in self.undeliverable_numbers else "delivered"
            statuses = (final, "sent") if self.out_of_order else ("sent", final)
            with self._lock:
                self._callbacks_due += len(statuses)
            self._callbacks.put(_CallbackJob(message.status_callback, message, statuses, time.monotonic()))
        return dict(resource)

    def fetch_message(self, sid: str) -> dict[str, Any]:
        with self._lock:
            if sid not in self._resources:
                uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
                raise _TwilioError(404, 20404, f"The requested resource {uri} was not found")
            return dict(self._resources[sid])

    def _validated(self, form: dict[str, str]) -> SentSms:
        to, from_, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body, validity = form.get("Body"), form.get("ValidityPeriod")
        if not to:
            raise _TwilioError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            raise _TwilioError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not body:
            raise _TwilioError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise _TwilioError(400, 21617, "The message body exceeds the 1600 character limit.")
        if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36000):
            raise _TwilioError(400, 21626, "Invalid validity period value.")
        if not _E164.match(to) or to in self.invalid_numbers:
            raise _TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if to in self.opted_out_numbers:
            raise _TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
        return SentSms(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=from_,
            body=body,
            validity_period=int(validity) if validity else None,
            status_callback=form.get("StatusCallback"),
            account_sid=self.account_sid,
            messaging_service_sid=service,
        )

    def _resource(self, message: SentSms) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": message.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(sms_segments(message.body)),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": "queued" if message.from_ else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }

    def _deliver_callbacks(self) -> None:
        while (job := self._callbacks.get()) is not None:
            for n, status in enumerate(job.statuses, start=1):
                due = job.accepted_at + n * self.callback_delay_s
                if self._stopping.wait(max(0.0, due - time.monotonic())):  # the carrier's lag, not a sync
                    return
                self._advance(job.message.sid, status)
                self._post_callback(job, status)

    def _advance(self, sid: str, status: str) -> None:
        with self._lock:
            resource = self._resources[sid]
            if _STATUS_RANK[status] > _STATUS_RANK[resource["status"]]:
                resource.update(status=status, date_updated=formatdate(usegmt=True))
                if status == "undelivered":
                    resource.update(error_code=30003, error_message="Unreachable destination handset")

    def _post_callback(self, job: _CallbackJob, status: str) -> None:
        message = job.message
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "+15005550006",
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if status == "undelivered":
            params["ErrorCode"] = "30003"
        signature = self._validator.compute_signature(job.url, params)
        request = Request(
            job.url,
            data=urlencode(params).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "User-Agent": "TwilioProxy/1.1",
            },
        )
        try:
            with urlopen(request, timeout=5.0) as response:
                response.read()
        except OSError:  # Twilio does not retry a failed callback either
            with self._lock:
                self.callbacks_failed += 1
                self._callbacks_done.notify_all()
            return
        with self._lock:
            self.callbacks_sent += 1
            self._callbacks_done.notify_all()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def __init__(self, stand_in: TwilioStandIn, *args: Any) -> None:
        self.stand_in = stand_in  # set first: the base __init__ serves the request
        super().__init__(*args)

    def do_POST(self) -> None:
        self._dispatch(create=True)

    def do_GET(self) -> None:
        self._dispatch(create=False)

    def _dispatch(self, *, create: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        match = _MESSAGES_PATH.match(urlsplit(self.path).path)
        try:
            if match is None or create == bool(match["sid"]):
                raise _TwilioError(404, 20404, f"The requested resource {self.path} was not found")
            self.stand_in.authenticate(self.headers.get("Authorization"), match["account"])
            if create:
                status, payload = 201, self.stand_in.create_message(form)
            else:
                status, payload = 200, self.stand_in.fetch_message(match["sid"])
        except _TwilioError as err:
            status, payload = err.status, err.payload()
        self._reply(status, payload)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines carry message sids, and a log is no place for them."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.twilio", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--callback-delay", type=float, default=0.5, help="seconds between a message's callbacks")
    parser.add_argument("--out-of-order", action="store_true", help="send delivered before sent")
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="sandbox-auth-token", help="a sandbox value, not a secret")
    args = parser.parse_args(argv)
    stand_in = TwilioStandIn(
        args.account_sid,
        args.auth_token,
        failure_rate=args.failure_rate,
        seed=args.seed,
        callback_delay_s=args.callback_delay,
        out_of_order=args.out_of_order,
        port=args.port,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())  # `kill` stops it as cleanly as Ctrl-C
    with stand_in, contextlib.suppress(KeyboardInterrupt):
        print(
            f"Twilio stand-in at {stand_in.base_url} (account {args.account_sid}); Ctrl-C to stop",
            flush=True,
        )
        stopped.wait()


if __name__ == "__main__":
    main()
