"""Bad input fuzzed at the webhooks function (issue #8): never a 5xx, every refusal kept and alerted.

The function is built by its own ``new()`` on real PostgreSQL and driven through func-python's ASGI
app in process. A provider acts on the status it gets: Twilio and SNS retry a 5xx (so a 5xx for
input that will never verify is a retry loop), and give up on a 4xx. So for any request:

    POST to a route, signature missing or invalid   403, one unverified provider_receipts row with
                                                    its reason, the endpoint's alert counts it
    POST to a route, genuinely signed               200, kept verified (whatever the fields say)
    over 64 KiB to a Twilio route, even signed      413, kept unverified and counted like a 403
    larger than 1 MiB · other path · other method   413 · 404 · 405, nothing kept

and an unverified row stays small whatever was posted: anyone can send one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from func_python.http import ASGIApplication
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from sandbox.sns import SnsStandIn
from tests.support.functions import load_module

PUBLIC_URL = "https://notify.hospital.org"
AUTH_TOKEN = "fuzz-webhooks-auth-token"
ROUTES = ["/twilio/status", "/twilio/inbound", "/ses/events"]
FUZZ = settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)
FIELD_NAMES = st.sampled_from(["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "To", "From",
                               "Body", "OptOutType", "AccountSid"]) | st.text(min_size=1, max_size=12)  # fmt: skip
FORMS = st.dictionaries(FIELD_NAMES, st.text(max_size=40), max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=15,
)
SNS_FIELDS = ["Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature",
              "SigningCertURL", "SubscribeURL", "Token", "Subject"]  # fmt: skip
SNS_LIKE = st.fixed_dictionaries({}, optional={
    name: st.sampled_from(["Notification", "SubscriptionConfirmation", "1", "2", "", "\x00"]) | st.text(max_size=30)
    for name in SNS_FIELDS
})  # fmt: skip
BODIES = (
    st.binary(max_size=400)
    | FORMS.map(lambda form: httpx.QueryParams(form).__str__().encode())
    | JSON.map(lambda value: json.dumps(value).encode())
    | SNS_LIKE.map(lambda value: json.dumps(value).encode())
    | st.just(b"\xff\xfe\x00{")
)
# 2 KiB of the body as JSON text (a control character escapes to 6), its size and sha256.
MAX_REFUSED_PAYLOAD = 6 * 2048 + 200
LARGE = st.builds(lambda head, size, fill: (head + fill * size)[: 1 << 20],
                  BODIES, st.integers(0, 1 << 20), st.sampled_from([b"a", b"\x00", b"%00", b"\xff", b"\x01", b"&a="]))  # fmt: skip
CONTENT_TYPES = st.sampled_from(["application/x-www-form-urlencoded", "text/plain; charset=UTF-8",
                                 "application/json", "multipart/form-data; boundary=x", ""])  # fmt: skip


@dataclass
class Webhooks:
    client: httpx.AsyncClient
    conn: psycopg.Connection[tuple[Any, ...]]
    sns: SnsStandIn

    def largest_refused(self) -> tuple[int, int]:
        """(the largest unverified payload, the longest id or status kept from one), in characters."""
        row = self.conn.execute(
            "SELECT coalesce(max(length(payload::text)), 0),"
            " coalesce(max(greatest(length(provider_message_id), length(status), length(error_code))), 0)"
            " FROM provider_receipts WHERE NOT verified"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def counts(self) -> tuple[int, int, int]:
        """(verified receipts, unverified receipts with a reason, occurrences counted by unverified alerts)."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM provider_receipts WHERE verified),"
            " (SELECT count(*) FROM provider_receipts WHERE NOT verified AND reject_reason <> ''),"
            " (SELECT coalesce(sum(occurrences), 0) FROM alerts WHERE kind = 'webhook_unverified')"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def request(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> httpx.Response:
        before = self.counts()
        response = await self.client.request(method, path, headers=headers, content=body)
        verified, refused, alerted = (a - b for a, b in zip(self.counts(), before, strict=True))
        assert response.status_code < 500, (response.status_code, response.text, method, path, headers, body)
        kept_refused = response.status_code == 403 or (response.status_code == 413 and len(body) <= 1 << 20)
        if kept_refused:
            assert (verified, refused, alerted) == (0, 1, 1), (path, body)
        elif response.status_code == 200:
            assert (verified, refused, alerted) == (1, 0, 0), (path, body)
        else:
            assert (verified, refused, alerted) == (0, 0, 0), (response.status_code, path, body)
        payload, field = self.largest_refused()
        assert payload <= MAX_REFUSED_PAYLOAD and field <= 128, (payload, field)
        assert (await self.client.get("/health/readiness")).status_code == 200
        return response


@asynccontextmanager
async def running(database_url: str, sns: SnsStandIn) -> AsyncIterator[Webhooks]:
    function = load_module("webhooks", "func").new(transport=sns.transport())
    function.start({"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "WEBHOOKS_PUBLIC_URL": PUBLIC_URL,
                    "SES_EVENTS_TOPIC_ARN": sns.topic_arn, "LOG_LEVEL": "ERROR"})  # fmt: skip
    assert function.ready() == (True, "OK")
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            transport = httpx.ASGITransport(app=ASGIApplication(function))
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
                yield Webhooks(client, conn, sns)
    finally:
        await function.aclose()


@pytest.fixture
def webhooks(migrated_database_url: str, sns: SnsStandIn, loop: asyncio.AbstractEventLoop) -> Iterator[Webhooks]:
    context = running(migrated_database_url, sns)
    yield loop.run_until_complete(context.__aenter__())
    loop.run_until_complete(context.__aexit__(None, None, None))


def _twilio_signature(path: str, form: dict[str, str]) -> str:
    return str(RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form))


class TestUnsignedRequests:
    @FUZZ
    @given(
        route=st.sampled_from(ROUTES), body=BODIES, content_type=CONTENT_TYPES,
        extra=st.lists(st.tuples(st.sampled_from(["x-twilio-signature", "x-amz-sns-message-type", "x-custom"]),
                                 HEADER_TEXT), max_size=3),
    )  # fmt: skip
    def test_anything_posted_to_a_route_is_refused_403_and_kept(
        self, webhooks: Webhooks, loop: asyncio.AbstractEventLoop,
        route: str, body: bytes, content_type: str, extra: list[tuple[str, str]],
    ) -> None:  # fmt: skip
        """Random bodies, forms, SNS-like JSON, forged signature headers: 403, one unverified row, alert counted."""
        headers = [("content-type", content_type), *extra]
        response = loop.run_until_complete(webhooks.request("POST", route, headers, body))
        assert response.status_code == 403

    @FUZZ
    @given(
        method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST", "OPTIONS"]),
        path=st.sampled_from([*ROUTES, "/", "/twilio", "/ses/events/", "/TWILIO/status"])
        | st.from_regex(r"/[a-zA-Z0-9._~-][a-zA-Z0-9/._~-]{0,29}", fullmatch=True),  # "//x": httpx reads a host
        body=st.binary(max_size=100),
    )
    def test_any_method_and_path_is_answered_without_a_5xx(
        self, webhooks: Webhooks, loop: asyncio.AbstractEventLoop, method: str, path: str, body: bytes
    ) -> None:
        """Off the routes: 404; another method on a route: 405; neither keeps anything (health probes aside)."""
        if path.startswith("/health/"):
            return  # func-python's own probes, answered by ready() and alive()
        response = loop.run_until_complete(webhooks.request(method, path, [], body))
        expected = 404 if path not in ROUTES else 405 if method != "POST" else 403
        assert response.status_code == expected

    @settings(FUZZ, max_examples=15)
    @given(route=st.sampled_from(ROUTES), body=LARGE)
    def test_a_refused_body_of_any_size_is_kept_bounded(
        self, webhooks: Webhooks, loop: asyncio.AbstractEventLoop, route: str, body: bytes
    ) -> None:
        """Up to 1 MiB of anything: 403 (413 past 64 KiB on a Twilio route), kept as a row of a few KiB at most."""
        response = loop.run_until_complete(webhooks.request("POST", route, [], body))
        too_large = route.startswith("/twilio/") and len(body) > 64 * 1024
        assert response.status_code == (413 if too_large else 403)

    def test_a_body_over_one_mib_is_413_and_kept_nowhere(
        self, webhooks: Webhooks, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Larger than any provider sends: 413 before reading the rest; a provider does not retry it."""
        for route in ROUTES:
            response = loop.run_until_complete(webhooks.request("POST", route, [], b"\x00" * ((1 << 20) + 1)))
            assert response.status_code == 413


class TestSignedRequests:
    @FUZZ
    @given(route=st.sampled_from(ROUTES[:2]), form=FORMS)
    @example(route="/twilio/status", form={"MessageSid": "\x00"})  # was a 503: the id matched with its NUL
    def test_a_genuinely_signed_twilio_form_of_any_fields_is_200_and_kept(
        self, webhooks: Webhooks, loop: asyncio.AbstractEventLoop, route: str, form: dict[str, str]
    ) -> None:
        """Twilio's signature over odd fields (unknown status, any To, any Body): 200, kept verified; never a retry loop."""
        headers = [("content-type", "application/x-www-form-urlencoded"),
                   ("x-twilio-signature", _twilio_signature(route, form))]  # fmt: skip
        body = str(httpx.QueryParams(form)).encode()
        assert loop.run_until_complete(webhooks.request("POST", route, headers, body)).status_code == 200

    @FUZZ
    @given(message=st.text(max_size=200) | JSON.map(json.dumps), subject=st.none() | st.text(max_size=30))
    def test_a_genuinely_signed_sns_notification_of_any_message_is_200_and_kept(
        self, webhooks: Webhooks, loop: asyncio.AbstractEventLoop, message: str, subject: str | None
    ) -> None:
        """SNS's signature over any Message (not an SES event, odd JSON): 200, kept verified."""
        body = json.dumps(webhooks.sns.notification(message, subject=subject)).encode()
        response = loop.run_until_complete(
            webhooks.request("POST", "/ses/events", [("content-type", "text/plain")], body)
        )
        assert response.status_code == 200
