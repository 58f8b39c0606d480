"""TwilioSmsGateway, through the real twilio SDK, against the Twilio stand-in and broken servers."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from twilio.request_validator import RequestValidator

from patient_notify.delivery import OutboundSms
from patient_notify.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderPermanent,
    ProviderRetryable,
)
from sandbox.threaded import ServedInThread
from sandbox.twilio import TwilioStandIn
from tests.support.broken_servers import CannedAnswer
from tests.support.functions import load_module

twilio_gateway = load_module("sms-sender", "twilio_gateway")

ACCOUNT_SID = "AC" + "1f" * 16
AUTH_TOKEN = "stand-in-auth-token"
FROM_NUMBER = "+15005550006"
INVALID, OPTED_OUT, UNDELIVERABLE = "+15005550001", "+15005550004", "+15005550009"


def make_gateway(base_url: str, **overrides: Any) -> Any:
    options: dict[str, Any] = {"from_number": FROM_NUMBER, "base_url": base_url, "timeout_s": 2.0}
    options.update(overrides)
    auth_token = options.pop("auth_token", AUTH_TOKEN)
    return twilio_gateway.TwilioSmsGateway(ACCOUNT_SID, auth_token, **options)


def make_sms(**overrides: Any) -> OutboundSms:
    fields: dict[str, Any] = {
        "to": "+447700900123",
        "body": "Reminder: Tue 14 Oct 09:30, Clinic B.",
    }
    return OutboundSms(**(fields | overrides))


@pytest.fixture
def twilio(request: pytest.FixtureRequest) -> Iterator[TwilioStandIn]:
    options = getattr(request, "param", {})
    numbers = {"invalid_numbers": {INVALID}, "opted_out_numbers": {OPTED_OUT}}
    with TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN, **(numbers | options)) as stand_in:
        yield stand_in


@dataclass(frozen=True)
class Callback:
    params: dict[str, str]
    signature: str


class CallbackReceiver(ServedInThread):
    """A local webhook endpoint recording each POST; ``wait_for(n)`` blocks until n arrived."""

    def __init__(self) -> None:
        self.received: list[Callback] = []
        self._arrived = threading.Condition()
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), partial(_CallbackHandler, self)))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/twilio/status"

    def record(self, callback: Callback) -> None:
        with self._arrived:
            self.received.append(callback)
            self._arrived.notify_all()

    def wait_for(self, count: int) -> list[Callback]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.received) >= count, timeout=10)
            return list(self.received)


class _CallbackHandler(BaseHTTPRequestHandler):
    def __init__(self, receiver: CallbackReceiver, *args: Any) -> None:
        self.receiver = receiver
        super().__init__(*args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        signature = self.headers.get("X-Twilio-Signature", "")
        self.receiver.record(Callback(dict(parse_qsl(body)), signature))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as receiver:
        yield receiver


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A port that completes TCP handshakes (the kernel backlog) but whose owner never reads."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


class TestCreate:
    def test_accepted_message_is_recorded(self, twilio: TwilioStandIn) -> None:
        """A created message returns its SM sid, and the stand-in holds exactly what was sent."""
        sms = make_sms(validity_period_s=3600, status_callback="https://notify.example/twilio")

        accepted = make_gateway(twilio.base_url).send_sms(sms)

        assert accepted.provider == "twilio"
        assert re.fullmatch(r"SM[0-9a-f]{32}", accepted.message_id)
        [sent] = twilio.messages
        assert (sent.sid, sent.to, sent.from_, sent.body) == (
            accepted.message_id,
            sms.to,
            FROM_NUMBER,
            sms.body,
        )
        assert (sent.validity_period, sent.status_callback) == (3600, sms.status_callback)
        assert sent.account_sid == ACCOUNT_SID

    def test_messaging_service_replaces_from(self, twilio: TwilioStandIn) -> None:
        """With a messaging service configured, the SDK sends MessagingServiceSid and no From."""
        service = "MG" + "2a" * 16
        gateway = make_gateway(twilio.base_url, from_number=None, messaging_service_sid=service)

        gateway.send_sms(make_sms())

        [sent] = twilio.messages
        assert (sent.from_, sent.messaging_service_sid, sent.validity_period) == (
            None,
            service,
            None,
        )


class TestRefusals:
    # number -> Twilio error code
    @pytest.mark.parametrize(
        ("to", "code"),
        [
            (INVALID, "21211"),  # not a valid mobile number
            (OPTED_OUT, "21610"),  # the recipient replied STOP
            ("07700 900123", "21211"),  # not E.164 at all
        ],
    )
    def test_refused_number_is_permanent(self, twilio: TwilioStandIn, to: str, code: str) -> None:
        """A number Twilio refuses is permanent, carries Twilio's code, and queues nothing."""
        with pytest.raises(ProviderPermanent) as raised:
            make_gateway(twilio.base_url).send_sms(make_sms(to=to))

        assert (raised.value.provider, raised.value.code) == ("twilio", code)
        assert to not in str(raised.value)
        assert twilio.messages == []

    def test_wrong_credentials_are_retryable(self, twilio: TwilioStandIn) -> None:
        """A wrong or rotated auth token (401 / 20003) is our problem, not the message's: retryable."""
        with pytest.raises(ProviderRetryable) as raised:
            make_gateway(twilio.base_url, auth_token="not-the-token").send_sms(make_sms())

        assert raised.value.code == "20003"
        assert twilio.messages == []


def twilio_error(status: int, code: int) -> CannedAnswer:
    """Twilio's error body for ``code``, answered with ``status``."""
    body = json.dumps({"code": code, "message": "refused", "more_info": "", "status": status}).encode()
    return CannedAnswer(status, body, {"Content-Type": "application/json"})


class TestRefusalClasses:
    # HTTP status, Twilio code -> the class: whose problem it is decides
    @pytest.mark.parametrize(("status", "code", "expected"), [
        (401, 20003, ProviderRetryable),  # our auth token, rejected (rotated): fail over, never "failed"
        (401, 20005, ProviderRetryable),  # our account is not active (unpaid, suspended)
        (400, 21606, ProviderRetryable),  # our From number cannot send here
        (400, 21611, ProviderRetryable),  # our From number's queue is full
        (400, 63038, ProviderRetryable),  # our account's daily message limit
        (429, 20429, ProviderRetryable),  # throttled
        (400, 30003, ProviderRetryable),  # DESIGN §7's limited retry: the broker's retry count bounds it
        (403, 20008, ProviderRetryable),  # forbidden: our credentials or permissions, whatever the code
        (400, 21211, ProviderPermanent),  # the number is invalid
        (400, 21610, ProviderPermanent),  # the recipient replied STOP
        (400, 21614, ProviderPermanent),  # the number is not a mobile
        (400, 30006, ProviderPermanent),  # a landline or unreachable carrier
        (400, 30007, ProviderPermanent),  # filtered by the carrier
        (400, 21617, ProviderPermanent),  # this body is too long: retrying never fixes it
        (500, 30001, ProviderOutcomeUnknown),  # a 500 may follow the message's creation, whatever its code
    ])  # fmt: skip
    def test_refusal_maps_to_its_class(self, status: int, code: int, expected: type[ProviderError]) -> None:
        """Refusals about our account or capacity are retryable; those about this message are permanent."""
        with twilio_error(status, code) as twilio, pytest.raises(ProviderError) as raised:
            make_gateway(twilio.url).send_sms(make_sms())

        assert (type(raised.value), raised.value.code, twilio.requests) == (expected, str(code), 1)


class TestInjectedFailures:
    @pytest.mark.parametrize("twilio", [{"failure_rate": 1.0}], indirect=True)
    def test_rate_limit_and_outage_are_retryable(self, twilio: TwilioStandIn) -> None:
        """Injected 429 (20429) and 503 are retryable, and the stand-in records nothing."""
        gateway = make_gateway(twilio.base_url)
        codes = []
        for _ in range(2):
            with pytest.raises(ProviderRetryable) as raised:
                gateway.send_sms(make_sms())
            codes.append(raised.value.code)

        assert codes == ["20429", "20503"]
        assert (twilio.attempts, twilio.injected_failures, twilio.messages) == (2, 2, [])

    @pytest.mark.parametrize("twilio", [{"failure_rate": 0.2, "seed": 7}], indirect=True)
    def test_every_accepted_send_is_recorded_once(self, twilio: TwilioStandIn) -> None:
        """Of 200 sends at a 20% fault rate ~40 are retryable; each accepted one is kept once."""
        gateway = make_gateway(twilio.base_url)
        accepted, retryable = [], 0
        for _ in range(200):
            try:
                accepted.append(gateway.send_sms(make_sms()).message_id)
            except ProviderRetryable:
                retryable += 1

        assert 20 <= retryable <= 60
        assert retryable == twilio.injected_failures and twilio.attempts == 200
        assert sorted(accepted) == sorted(sent.sid for sent in twilio.messages)
        assert len(set(accepted)) == len(accepted)


class TestTransportFailures:
    def test_no_answer_is_outcome_unknown(self) -> None:
        """A server that takes the request and never answers leaves the outcome unknown."""
        with listening_socket() as silent:
            base_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            with pytest.raises(ProviderOutcomeUnknown):
                make_gateway(base_url, timeout_s=0.2).send_sms(make_sms())

    def test_connection_dropped_after_sending_is_outcome_unknown(self) -> None:
        """A connection closed after the request went out leaves the outcome unknown."""
        with listening_socket() as server:

            def read_then_hang_up() -> None:
                connection, _ = server.accept()
                with connection:
                    connection.recv(65536)

            hang_up = threading.Thread(target=read_then_hang_up)
            hang_up.start()
            with pytest.raises(ProviderOutcomeUnknown):
                make_gateway(f"http://127.0.0.1:{server.getsockname()[1]}").send_sms(make_sms())
            hang_up.join()

    @pytest.mark.parametrize("status", [500, 502, 504])
    def test_a_server_error_other_than_503_is_outcome_unknown(self, status: int) -> None:
        """A 500, 502 or 504 can come after the message was created: unknown, never retried blindly."""
        with listening_socket() as server:

            def answer_error() -> None:
                connection, _ = server.accept()
                with connection:
                    connection.recv(65536)
                    body = b'{"code": 20500, "message": "Internal Server Error", "status": %d}' % status
                    head = b"HTTP/1.1 %d Error\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    connection.sendall(head % (status, len(body)) + body)

            responder = threading.Thread(target=answer_error)
            responder.start()
            with pytest.raises(ProviderOutcomeUnknown):
                make_gateway(f"http://127.0.0.1:{server.getsockname()[1]}").send_sms(make_sms())
            responder.join()

    def test_connection_refused_is_retryable(self) -> None:
        """Nothing listening means the request never left: retryable."""
        with pytest.raises(ProviderRetryable) as raised:
            make_gateway(f"http://127.0.0.1:{closed_port()}").send_sms(make_sms())

        assert raised.value.code == "connect"


class TestStatusCallbacks:
    # stand-in options -> the statuses the webhook sees, in arrival order
    @pytest.mark.parametrize(
        ("twilio", "to", "statuses"),
        [
            ({}, "+447700900123", ["sent", "delivered"]),  # the usual order
            ({"out_of_order": True}, "+447700900123", ["delivered", "sent"]),  # a late "sent"
            ({"undeliverable_numbers": {UNDELIVERABLE}}, UNDELIVERABLE, ["sent", "undelivered"]),
        ],
        indirect=["twilio"],
    )
    def test_callbacks_arrive_signed(
        self, twilio: TwilioStandIn, receiver: CallbackReceiver, to: str, statuses: list[str]
    ) -> None:
        """Status callbacks arrive in the configured order, each with a valid X-Twilio-Signature."""
        accepted = make_gateway(twilio.base_url).send_sms(make_sms(to=to, status_callback=receiver.url))

        callbacks = receiver.wait_for(2)

        validator = RequestValidator(AUTH_TOKEN)
        assert all(validator.validate(receiver.url, c.params, c.signature) for c in callbacks)
        assert [c.params["MessageStatus"] for c in callbacks] == statuses
        assert {c.params["MessageSid"] for c in callbacks} == {accepted.message_id}
        assert {(c.params["To"], c.params["AccountSid"]) for c in callbacks} == {(to, ACCOUNT_SID)}
        error_codes = [c.params.get("ErrorCode") for c in callbacks]
        assert error_codes == [("30003" if s == "undelivered" else None) for s in statuses]

    def test_forged_signature_is_rejected(self, twilio: TwilioStandIn, receiver: CallbackReceiver) -> None:
        """A callback's signature does not validate under another auth token or another URL."""
        make_gateway(twilio.base_url).send_sms(make_sms(status_callback=receiver.url))

        first = receiver.wait_for(1)[0]

        assert not RequestValidator("another-token").validate(receiver.url, first.params, first.signature)
        assert not RequestValidator(AUTH_TOKEN).validate(receiver.url + "x", first.params, first.signature)

    def test_fetch_reports_final_status(self, twilio: TwilioStandIn, receiver: CallbackReceiver) -> None:
        """After its callbacks, GET Messages/{Sid}.json shows the message as delivered."""
        sid = make_gateway(twilio.base_url).send_sms(make_sms(status_callback=receiver.url)).message_id
        receiver.wait_for(2)

        url = f"{twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
        response = httpx.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN))

        assert response.status_code == 200
        assert (response.json()["sid"], response.json()["status"]) == (sid, "delivered")
