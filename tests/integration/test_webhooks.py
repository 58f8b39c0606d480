"""The webhooks function on real PostgreSQL, driven through func-python's own ASGI app, with requests
signed as Twilio (its SDK's RequestValidator) and SNS (sandbox.sns) sign them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from func_python.http import ASGIApplication
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from patient_notify.delivery import ProviderAccepted
from patient_notify.domain.receipts import advances
from patient_notify.http_function import HttpRequest
from patient_notify.sending import deliver
from sandbox.processes import FunctionProcess
from sandbox.sns import SnsStandIn, ses_event
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.support.functions import load_module

webhooks_func = load_module("webhooks", "func")

PUBLIC_URL = "https://notify.hospital.org"
STATUS_URL = f"{PUBLIC_URL}/twilio/status"
AUTH_TOKEN = "webhooks-test-auth-token"
ACCOUNT_SID = "AC" + "0" * 32
PHONE, OTHER_PHONE, EMAIL = "+447700900123", "+447700900456", "ada.lovelace@example.org"
CLINIC_PHONE = "+12025550100"
APPOINTMENT_AT = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)  # one time: a new one is a change
# Everything that identifies a patient in these fixtures, and the digits alone (a partial scrub).
PATIENT_DATA = [PHONE, OTHER_PHONE, EMAIL, "7700900123", "7700900456", "lovelace", "+12025550123", "2025550123"]


@dataclass
class Webhooks:
    client: httpx.AsyncClient
    db: Database
    sns: SnsStandIn

    async def twilio(self, path: str, params: dict[str, str], *, token: str = AUTH_TOKEN) -> httpx.Response:
        """POST a form as Twilio does: signed for the public URL it calls."""
        return await self.post_form(path, params, _sign(PUBLIC_URL + path, params, token))

    async def post_form(self, path: str, params: dict[str, str], signature: str | None) -> httpx.Response:
        headers = {} if signature is None else {"X-Twilio-Signature": signature}
        return await self.client.post(path, data=params, headers=headers)

    async def sns_post(self, message: dict[str, Any] | bytes) -> httpx.Response:
        body = message if isinstance(message, bytes) else _json(message)
        return await self.client.post("/ses/events", content=body, headers={"Content-Type": "text/plain"})

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db.url) as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.db.url) as conn:
            conn.execute(sql.encode())

    def status(self, notification_id: int) -> str:
        return str(self.rows("SELECT status FROM notifications WHERE id = %s", notification_id)[0][0])

    async def sent_notification(self, provider: str, message_id: str, *, channel: str = "sms", **patient: Any) -> int:
        """A notification taken through the real send path to 'sent' with this provider id."""
        notification_id = await self.queued_notification(channel, **patient)

        async def accepted(claimed: Any) -> ProviderAccepted:
            return ProviderAccepted(provider, message_id)

        await deliver(self.db, notification_id, accepted)
        return notification_id

    async def raced_notification(
        self, statuses: Sequence[str], concurrency: int = 1, *, email: bool = False, **extra: str
    ) -> tuple[int, str]:
        """Sent through the real send path while Twilio calls back with ``statuses`` before its API call
        returns (it can, within milliseconds of accepting): the callbacks beat the sid's commit."""
        sid, notification_id = new_sid(), await self.queued_notification(preference="sms", email=email)

        async def accepted_after_callbacks(claimed: Any) -> ProviderAccepted:
            await self.callbacks(sid, statuses, concurrency, **extra)
            return ProviderAccepted("twilio", sid)

        await deliver(self.db, notification_id, accepted_after_callbacks)
        return notification_id, sid

    async def callbacks(self, sid: str, statuses: Sequence[str], concurrency: int = 1, **extra: str) -> None:
        """Twilio's status callbacks for one message, ``concurrency`` at a time, each answered 200."""
        for start in range(0, len(statuses), concurrency):
            batch = statuses[start : start + concurrency]
            responses = await asyncio.gather(
                *(self.twilio("/twilio/status", status_params(sid, s, **extra)) for s in batch)
            )
            assert {r.status_code for r in responses} == {200}

    def match_states(self, sid: str) -> list[str | None]:
        """Each receipt of the message's match_state, in the order received."""
        rows = self.rows("SELECT match_state FROM provider_receipts WHERE provider_message_id = %s ORDER BY id", sid)
        return [state for (state,) in rows]

    async def queued_notification(self, channel: str = "sms", *, preference: str = "both", email: bool = False) -> int:
        """A notification claimed for the appointment, queued for its sender; ``email``: the patient has one."""
        contacts = [make_contact(), *([make_contact(channel="email", value=EMAIL)] if email else [])]
        async with self.db.transaction() as tx:
            await save_batch(tx, SourceBatch([make_location()], [make_patient(channel_preference=preference)], contacts,
                                             [make_appointment(starts_at=APPOINTMENT_AT)]))  # fmt: skip
            [row] = await tx.all("claim_notifications", {
                "natural_keys": [f"test:{uuid.uuid4()}"], "appointment_ids": ["appt-1"],
                "appointment_versions": [1], "kinds": ["reminder"], "channels": [channel],
                "recipients": [PHONE if channel == "sms" else EMAIL], "languages": ["en"], "subjects": [""],
                "bodies": ["Reminder: Tue 09:30, Riverside Clinic."], "hold_until": [None],
            })  # fmt: skip
        return int(row["id"])


def _sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    """A StatusCallback's fields as Twilio posts them (and sandbox.twilio does)."""
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "From": "+15005550006", "MessageSid": sid,
            "MessageStatus": status, "SmsSid": sid, "SmsStatus": status, "To": PHONE, **extra}  # fmt: skip


def inbound_params(body: str, number: str = PHONE) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "Body": body, "From": number,
            "MessageSid": "SM" + uuid.uuid4().hex, "NumMedia": "0", "NumSegments": "1",
            "SmsStatus": "received", "To": "+15005550006"}  # fmt: skip


def _messages(twiml: str) -> list[str]:
    """The text of each <Message> in a TwiML answer."""
    response = ET.fromstring(twiml)  # noqa: S314 - the function under test wrote it, not an outsider
    assert response.tag == "Response"
    return [str(message.text) for message in response.findall("Message")]


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def config(database_url: str, sns: SnsStandIn, **overrides: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "WEBHOOKS_PUBLIC_URL": PUBLIC_URL,
            "SES_EVENTS_TOPIC_ARN": sns.topic_arn, "HELP_PHONE_NUMBER": CLINIC_PHONE, "LOG_LEVEL": "DEBUG",
            **overrides}  # fmt: skip


@asynccontextmanager
async def running_webhooks(
    database_url: str, sns: SnsStandIn, logs: CapturedLogs, **overrides: str
) -> AsyncIterator[Webhooks]:
    """The function as func-python serves it (its ASGI app routes /health/* and the rest), in process."""
    function = webhooks_func.new(transport=sns.transport())
    logs.start(function, config(database_url, sns, **overrides))
    app = httpx.ASGITransport(app=ASGIApplication(function))
    try:
        async with httpx.AsyncClient(transport=app, base_url=PUBLIC_URL) as client:
            yield Webhooks(client, Database(database_url, max_size=2), sns)
    finally:
        await function.aclose()


@dataclass
class CapturedLogs:
    """What the function's own log handler writes: ``start`` binds it to stderr, redirected here meanwhile."""

    buffer: io.StringIO

    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()

    def start(self, function: Any, cfg: dict[str, str]) -> None:
        with contextlib.redirect_stderr(self.buffer):
            function.start(cfg)


@contextmanager
def captured_logs() -> Iterator[CapturedLogs]:
    """Every log line meanwhile; at the end, all of them are scanned for the fixtures' patient data."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    captured = CapturedLogs(io.StringIO())
    yield captured
    root.handlers[:] = saved_handlers  # start() installed its own handler
    root.setLevel(saved_level)
    assert [line for line in captured.lines() if any(secret in line for secret in PATIENT_DATA)] == []


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    with captured_logs() as captured:
        yield captured


@pytest.fixture
async def webhooks(migrated_database_url: str, sns: SnsStandIn, logs: CapturedLogs) -> AsyncIterator[Webhooks]:
    async with running_webhooks(migrated_database_url, sns, logs) as running:
        yield running
        await running.db.close()


class TestTwilioSignatures:
    async def test_a_signed_callback_is_accepted_and_kept(self, webhooks: Webhooks) -> None:
        """A callback signed for the public URL is verified, kept with its payload, and applied."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        response = await webhooks.twilio("/twilio/status", status_params(sid, "delivered"))
        assert response.status_code == 200
        assert webhooks.status(nid) == "delivered"
        [(verified, reason, payload)] = webhooks.rows(
            "SELECT verified, reject_reason, payload FROM provider_receipts WHERE provider_message_id = %s", sid
        )
        assert (verified, reason, payload["MessageStatus"], payload["To"]) == (True, None, "delivered", PHONE)

    # fields changed after signing, the URL and token signed with, whether the header is sent
    @pytest.mark.parametrize(
        ("tamper", "signed_url", "token", "header", "reason"),
        [
            ({"MessageStatus": "failed"}, STATUS_URL, AUTH_TOKEN, True, "signature invalid"),  # a field changed
            (
                {},
                "http://webhooks.patient-notify.svc.cluster.local/twilio/status",
                AUTH_TOKEN,
                True,
                "signature invalid",
            ),  # the URL behind the ingress
            ({}, f"{PUBLIC_URL}/twilio/inbound", AUTH_TOKEN, True, "signature invalid"),  # signed for another route
            ({}, STATUS_URL, "another-account-token", True, "signature invalid"),  # someone else's auth token
            ({}, STATUS_URL, AUTH_TOKEN, False, "signature missing"),  # no X-Twilio-Signature at all
        ],
        ids=["tampered-param", "wrong-url", "other-route", "wrong-token", "missing-header"],
    )
    async def test_an_unverified_callback_is_refused_and_kept(
        self, webhooks: Webhooks, tamper: dict[str, str], signed_url: str, token: str, header: bool, reason: str
    ) -> None:
        """Anything but Twilio's signature over the public URL and these fields: 403, kept unverified, alerted."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        params = status_params(sid, "delivered")
        signature = _sign(signed_url, params, token) if header else None
        response = await webhooks.post_form("/twilio/status", {**params, **tamper}, signature)
        assert response.status_code == 403
        assert webhooks.status(nid) == "sent"
        assert webhooks.rows("SELECT verified, reject_reason FROM provider_receipts") == [(False, reason)]
        assert webhooks.rows("SELECT kind, subject FROM alerts") == [("webhook_unverified", "twilio-status")]

    async def test_the_default_port_in_the_signed_url_is_accepted(self, webhooks: Webhooks) -> None:
        """Twilio may sign https://host:443/...; the same URL without the port verifies either way."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        params = status_params(sid, "sent")
        response = await webhooks.post_form("/twilio/status", params, _sign(f"{PUBLIC_URL}:443/twilio/status", params))
        assert (response.status_code, webhooks.status(nid)) == (200, "sent")
        assert webhooks.rows("SELECT verified FROM provider_receipts") == [(True,)]

    async def test_the_query_string_is_part_of_what_is_signed(self, webhooks: Webhooks) -> None:
        """A callback URL with a query verifies with it, and not without it."""
        params = status_params(new_sid(), "sent")
        signed = _sign(f"{PUBLIC_URL}/twilio/status?site=north", params)
        ok = await webhooks.client.post(
            "/twilio/status?site=north", data=params, headers={"X-Twilio-Signature": signed}
        )
        dropped = await webhooks.client.post("/twilio/status", data=params, headers={"X-Twilio-Signature": signed})
        assert (ok.status_code, dropped.status_code) == (200, 403)

    async def test_a_forged_stop_opts_nobody_out(self, webhooks: Webhooks) -> None:
        """An inbound STOP with a bad signature is refused and kept; the number stays opted in."""
        response = await webhooks.twilio("/twilio/inbound", inbound_params("STOP"), token="forger")
        assert response.status_code == 403
        assert webhooks.rows("SELECT count(*) FROM sms_opt_outs") == [(0,)]
        assert webhooks.rows("SELECT kind, verified FROM provider_receipts") == [("inbound", False)]

    async def test_a_flood_of_forgeries_is_one_alert_counting_them(self, webhooks: Webhooks) -> None:
        """Ten forged callbacks in a burst: each kept, but one alert (per hour) that counts them."""
        for _ in range(10):
            await webhooks.twilio("/twilio/status", status_params(new_sid(), "delivered"), token="forger")
        alerts = webhooks.rows("SELECT kind, occurrences FROM alerts")
        assert len(alerts) <= 2 and sum(n for _, n in alerts) == 10  # two only if an hour turned mid-burst
        assert webhooks.rows("SELECT count(*) FROM provider_receipts WHERE NOT verified") == [(10,)]


class TestStatusCallbacks:
    def test_every_move_a_receipt_makes_is_one_the_database_allows(self, migrated_database_url: str) -> None:
        """The domain's forward-only ranking and notification_transitions agree: no receipt trips the guard."""
        with psycopg.connect(migrated_database_url) as conn:
            allowed = set(conn.execute(b"SELECT from_status, to_status FROM notification_transitions").fetchall())
        statuses = {s for pair in allowed for s in pair}
        moves = {(a, b) for a in statuses for b in statuses if advances(a, b)}
        assert moves and moves <= allowed

    async def test_a_late_sent_never_overwrites_delivered(self, webhooks: Webhooks) -> None:
        """delivered, then sent: the notification stays delivered, and both receipts are kept."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        for status in ("delivered", "sent"):
            assert (await webhooks.twilio("/twilio/status", status_params(sid, status))).status_code == 200
        assert webhooks.status(nid) == "delivered"
        assert webhooks.rows("SELECT count(*) FROM provider_receipts WHERE provider_message_id = %s", sid) == [(2,)]
        [(receipt_at,)] = webhooks.rows("SELECT receipt_at FROM notifications WHERE id = %s", nid)
        assert receipt_at is not None

    async def test_undelivered_marks_the_notification_and_alerts_without_patient_data(self, webhooks: Webhooks) -> None:
        """An undelivered receipt ends the notification undelivered, with one delivery_failed alert naming ids only."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        for status in ("sent", "undelivered", "undelivered"):  # a duplicate raises no second alert
            await webhooks.twilio("/twilio/status", status_params(sid, status, ErrorCode="30003"))
        assert webhooks.rows("SELECT status, last_error FROM notifications WHERE id = %s", nid) == [
            ("undelivered", "twilio undelivered 30003")
        ]
        [(kind, subject, detail)] = webhooks.rows("SELECT kind, subject, detail FROM alerts")
        assert (kind, subject) == ("delivery_failed", str(nid))
        assert not any(secret in detail for secret in PATIENT_DATA)

    async def test_error_21610_opts_the_number_out(self, webhooks: Webhooks) -> None:
        """A failed callback with 21610 (the recipient replied STOP) opts the To number out."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        await webhooks.twilio("/twilio/status", status_params(sid, "failed", ErrorCode="21610"))
        assert webhooks.status(nid) == "failed"
        assert webhooks.rows("SELECT number, source FROM sms_opt_outs") == [(PHONE, "provider:21610")]

    async def test_an_unknown_sid_is_kept_and_answered_200(self, webhooks: Webhooks) -> None:
        """A receipt for a message we have no record of is kept and acknowledged, so Twilio stops sending it."""
        response = await webhooks.twilio("/twilio/status", status_params(new_sid(), "delivered"))
        assert response.status_code == 200
        assert webhooks.rows("SELECT kind, status, verified FROM provider_receipts") == [("status", "delivered", True)]
        assert webhooks.rows("SELECT count(*) FROM alerts") == [(0,)]

    async def test_callbacks_before_the_sid_is_recorded_are_applied_with_the_next_one(self, webhooks: Webhooks) -> None:
        """sent and delivered beat the sender's commit of the sid: kept pending, then applied in the order
        received when the next callback of the message comes (the monitor's tick would apply them too)."""
        nid, sid = await webhooks.raced_notification(["sent", "delivered"])
        assert (webhooks.status(nid), webhooks.match_states(sid)) == ("sent", ["pending", "pending"])
        await webhooks.callbacks(sid, ["sent"])  # a late segment's
        assert (webhooks.status(nid), webhooks.match_states(sid)) == ("delivered", ["matched"] * 3)

    async def test_each_segment_callback_of_one_sid_moves_it_once(self, webhooks: Webhooks) -> None:
        """A three-segment message's callbacks, all for one SID and some concurrent, move it once per status."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        statuses = ["sent"] * 3 + ["delivered"] * 3
        await asyncio.gather(
            *(webhooks.twilio("/twilio/status", status_params(sid, s, NumSegments="3")) for s in statuses)
        )
        history = webhooks.rows(
            "SELECT status FROM notification_status_history WHERE notification_id = %s ORDER BY id", nid
        )
        assert [s for (s,) in history] == ["queued", "sending", "sent", "delivered"]  # the send path, then receipts


CHAINS = [
    ["queued", "sending", "sent", "delivered"],
    ["accepted", "queued", "sending", "sent", "undelivered"],
    ["queued", "sent", "failed"],
]


@pytest.fixture
def webhooks_on_loop(
    migrated_database_url: str, sns: SnsStandIn, logs: CapturedLogs, loop: asyncio.AbstractEventLoop
) -> Iterator[Webhooks]:
    """The same function, on a loop a synchronous (hypothesis) test can drive."""
    context = running_webhooks(migrated_database_url, sns, logs)
    running = loop.run_until_complete(context.__aenter__())
    yield running
    loop.run_until_complete(running.db.close())
    loop.run_until_complete(context.__aexit__(None, None, None))


class TestOrderingProperty:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        chain=st.sampled_from(CHAINS),
        picks=st.lists(st.integers(0, 4), min_size=1, max_size=12),
        concurrency=st.integers(1, 4),
    )
    def test_any_order_and_duplication_ends_at_the_furthest_status(
        self,
        webhooks_on_loop: Webhooks,
        loop: asyncio.AbstractEventLoop,
        chain: list[str],
        picks: list[int],
        concurrency: int,
    ) -> None:
        """Callbacks of one message in any order, repeated, some at once: it ends at the furthest one that
        arrived, and its history only ever moved forward."""
        arrived = [chain[i % len(chain)] for i in picks]
        nid = loop.run_until_complete(_deliver_callbacks(webhooks_on_loop, arrived, concurrency))
        final = chain[-1] if chain[-1] in arrived else "sent"
        history = [s for (s,) in webhooks_on_loop.rows(
            "SELECT status FROM notification_status_history WHERE notification_id = %s ORDER BY id", nid)]  # fmt: skip
        assert webhooks_on_loop.status(nid) == final
        assert history == ["queued", "sending", "sent"] + ([final] if final != "sent" else [])


async def _deliver_callbacks(webhooks: Webhooks, arrived: list[str], concurrency: int) -> int:
    sid = new_sid()
    nid = await webhooks.sent_notification("twilio", sid)
    await webhooks.callbacks(sid, arrived, concurrency)
    return nid


class TestEmailFallback:
    """An SMS a receipt says did not arrive is replaced by one email, when the patient has one and allows it."""

    def fallbacks(self, webhooks: Webhooks, sms_id: int) -> list[tuple[str, str, str]]:
        return [(c, r, s) for c, r, s in webhooks.rows(
            "SELECT channel, recipient, status FROM notifications WHERE fallback_of = %s", sms_id)]  # fmt: skip

    def staged(self, webhooks: Webhooks) -> list[tuple[str, str, bool]]:
        """The outbox: (type, the notification it names, published yet)."""
        return [(t, str(n), p) for t, n, p in webhooks.rows(
            "SELECT type, data->>'notification_id', published_at IS NOT NULL FROM outbox ORDER BY id")]  # fmt: skip

    @pytest.mark.parametrize("status", ["undelivered", "failed"])
    async def test_a_failed_receipt_stages_one_email_for_an_sms_only_patient(
        self, webhooks: Webhooks, status: str
    ) -> None:
        """sent, then the failure twice: one email, queued, its send event staged for the monitor's drain
        (this function has no broker); the SMS's history names it; one alert, no patient data in it."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid, preference="sms", email=True)
        for callback in ("sent", status, status):
            answer = await webhooks.twilio("/twilio/status", status_params(sid, callback, ErrorCode="30003"))
            assert answer.status_code == 200
        [(channel, recipient, email_status)] = self.fallbacks(webhooks, nid)
        assert (channel, recipient, email_status, webhooks.status(nid)) == ("email", EMAIL, "queued", status)
        [(email_id,)] = webhooks.rows("SELECT id FROM notifications WHERE fallback_of = %s", nid)
        assert self.staged(webhooks) == [("org.patientnotify.email.send.v1", str(email_id), False)]
        history = "SELECT detail FROM notification_status_history WHERE notification_id = %s AND detail LIKE 'f%%'"
        [(detail,)] = webhooks.rows(history, nid)
        assert detail == f"fallback to email: notification {email_id}"
        assert [k for (k,) in webhooks.rows("SELECT kind FROM alerts")] == ["delivery_failed"]

    async def test_delivered_falls_back_to_nothing(self, webhooks: Webhooks) -> None:
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid, preference="sms", email=True)
        await webhooks.twilio("/twilio/status", status_params(sid, "delivered"))
        assert (self.fallbacks(webhooks, nid), self.staged(webhooks)) == ([], [])

    async def test_without_an_address_the_failure_is_only_alerted(self, webhooks: Webhooks) -> None:
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid, preference="sms")
        await webhooks.twilio("/twilio/status", status_params(sid, "undelivered", ErrorCode="30003"))
        assert (self.fallbacks(webhooks, nid), self.staged(webhooks)) == ([], [])
        assert [k for (k,) in webhooks.rows("SELECT kind FROM alerts")] == ["delivery_failed"]

    async def test_email_fallback_false_keeps_an_sms_only_patient_off_email(
        self, migrated_database_url: str, sns: SnsStandIn, logs: CapturedLogs
    ) -> None:
        async with running_webhooks(migrated_database_url, sns, logs, EMAIL_FALLBACK="false") as webhooks:
            sid = new_sid()
            nid = await webhooks.sent_notification("twilio", sid, preference="sms", email=True)
            await webhooks.twilio("/twilio/status", status_params(sid, "undelivered", ErrorCode="30003"))
            outcome = (webhooks.status(nid), self.fallbacks(webhooks, nid), self.staged(webhooks))
            assert outcome == ("undelivered", [], [])
            await webhooks.db.close()


class TestInbound:
    # the reply as sent -> the source recorded
    @pytest.mark.parametrize(
        ("body", "source"),
        [
            ("STOP", "keyword:STOP"),
            ("  stop\n", "keyword:STOP"),  # trimmed, any case
            ("StopAll", "keyword:STOPALL"),
            ("Unsubscribe", "keyword:UNSUBSCRIBE"),
            ("cancel", "keyword:CANCEL"),
            ("END", "keyword:END"),
            ("quit", "keyword:QUIT"),
        ],
    )
    async def test_stop_words_opt_the_number_out(self, webhooks: Webhooks, body: str, source: str) -> None:
        """A STOP word opts the sender's number out, answered with empty TwiML (Twilio confirms it itself)."""
        response = await webhooks.twilio("/twilio/inbound", inbound_params(body))
        assert (response.status_code, response.headers["content-type"]) == (200, "application/xml")
        assert _messages(response.text) == []
        assert webhooks.rows("SELECT number, source FROM sms_opt_outs") == [(PHONE, source)]

    @pytest.mark.parametrize("word", ["START", "unstop"])
    async def test_start_after_stop_opts_back_in(self, webhooks: Webhooks, word: str) -> None:
        """START (or UNSTOP) removes the opt-out of that number only; the receipts keep the history."""
        for number, body in [(PHONE, "STOP"), (OTHER_PHONE, "STOP"), (PHONE, word)]:
            assert (await webhooks.twilio("/twilio/inbound", inbound_params(body, number))).status_code == 200
        assert webhooks.rows("SELECT number FROM sms_opt_outs") == [(OTHER_PHONE,)]
        assert webhooks.rows("SELECT count(*) FROM provider_receipts WHERE kind = 'inbound' AND verified") == [(3,)]

    async def test_help_replies_with_the_clinic_contact(self, webhooks: Webhooks) -> None:
        """HELP gets one TwiML message naming the clinic's number and how to opt out, and changes nothing."""
        response = await webhooks.twilio("/twilio/inbound", inbound_params(" Help "))
        [message] = _messages(response.text)
        assert CLINIC_PHONE in message and "STOP" in message
        assert PHONE not in response.text
        assert webhooks.rows("SELECT count(*) FROM sms_opt_outs") == [(0,)]

    async def test_twilio_advanced_opt_out_keywords_are_honoured(self, webhooks: Webhooks) -> None:
        """A site's own keyword classified by Twilio (OptOutType) opts out; Twilio's HELP reply is not doubled."""
        alto = await webhooks.twilio("/twilio/inbound", {**inbound_params("Alto"), "OptOutType": "STOP"})
        ayuda = await webhooks.twilio("/twilio/inbound", {**inbound_params("Ayuda"), "OptOutType": "HELP"})
        assert webhooks.rows("SELECT number, source FROM sms_opt_outs") == [(PHONE, "keyword:ALTO")]
        assert (_messages(alto.text), _messages(ayuda.text)) == ([], [])

    async def test_any_other_message_gets_an_empty_reply(self, webhooks: Webhooks) -> None:
        """A message that only contains a keyword is no keyword: kept, answered with empty TwiML."""
        response = await webhooks.twilio("/twilio/inbound", inbound_params("Please stop texting me, I will call"))
        assert (response.status_code, _messages(response.text)) == (200, [])
        assert webhooks.rows("SELECT count(*) FROM sms_opt_outs") == [(0,)]


class TestSesEvents:
    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_a_hard_bounce_suppresses_and_marks_undelivered(self, webhooks: Webhooks, version: str) -> None:
        """A Permanent bounce: the address suppressed, the email undelivered, one delivery_failed alert."""
        message_id = str(uuid.uuid4())
        nid = await webhooks.sent_notification("ses", message_id, channel="email")
        event = ses_event("Bounce", message_id, [EMAIL], bounce_type="Permanent")
        response = await webhooks.sns_post(webhooks.sns.notification(_json(event).decode(), version=version))
        assert response.status_code == 200
        assert webhooks.rows("SELECT address, reason FROM email_suppressions") == [(EMAIL, "bounce")]
        assert webhooks.status(nid) == "undelivered"
        assert webhooks.rows("SELECT kind, subject FROM alerts") == [("delivery_failed", str(nid))]

    async def test_a_soft_bounce_is_undelivered_but_not_suppressed(self, webhooks: Webhooks) -> None:
        """A Transient bounce ends the email undelivered (SES gave up) but leaves the address usable."""
        message_id = str(uuid.uuid4())
        nid = await webhooks.sent_notification("ses", message_id, channel="email")
        event = ses_event("Bounce", message_id, [EMAIL], bounce_type="Transient")
        await webhooks.sns_post(webhooks.sns.notification(_json(event).decode()))
        assert webhooks.rows("SELECT count(*) FROM email_suppressions") == [(0,)]
        assert webhooks.status(nid) == "undelivered"

    async def test_a_complaint_suppresses_the_address(self, webhooks: Webhooks) -> None:
        """A complaint suppresses the address (mixed case is one address) and alerts."""
        message_id = str(uuid.uuid4())
        nid = await webhooks.sent_notification("ses", message_id, channel="email")
        event = ses_event("Complaint", message_id, [EMAIL.upper()])
        assert (
            await webhooks.sns_post(webhooks.sns.notification(_json(event).decode(), version="2"))
        ).status_code == 200
        assert webhooks.rows("SELECT address, reason FROM email_suppressions") == [(EMAIL, "complaint")]
        assert (webhooks.status(nid), webhooks.rows("SELECT kind FROM alerts")) == (
            "undelivered",
            [("delivery_failed",)],
        )

    async def test_delivery_marks_delivered_and_a_later_complaint_keeps_it(self, webhooks: Webhooks) -> None:
        """Delivery ends the email delivered; a complaint after it suppresses the address, the status stays."""
        message_id = str(uuid.uuid4())
        nid = await webhooks.sent_notification("ses", message_id, channel="email")
        for event in (ses_event("Delivery", message_id, [EMAIL]), ses_event("Complaint", message_id, [EMAIL])):
            assert (await webhooks.sns_post(webhooks.sns.notification(_json(event).decode()))).status_code == 200
        assert webhooks.status(nid) == "delivered"
        assert webhooks.rows("SELECT reason FROM email_suppressions") == [("complaint",)]
        assert webhooks.rows("SELECT count(*) FROM alerts") == [(0,)]

    async def test_a_subscription_is_confirmed_at_its_subscribe_url(self, webhooks: Webhooks) -> None:
        """A verified SubscriptionConfirmation is confirmed by a GET of its SubscribeURL, then kept."""
        message = webhooks.sns.subscription_confirmation(version="2")
        assert (await webhooks.sns_post(message)).status_code == 200
        assert message["Token"] in webhooks.sns.confirmed
        assert webhooks.rows("SELECT provider, kind, status, verified FROM provider_receipts") == [
            ("sns", "sns-subscription", "SubscriptionConfirmation", True)
        ]

    async def test_a_subscribe_url_off_sns_is_never_visited(self, webhooks: Webhooks) -> None:
        """Even signed, a SubscribeURL that is not an SNS host is not fetched: kept and alerted instead."""
        fields = {"Type": "SubscriptionConfirmation", "Token": "t" * 64, "Message": "subscribe",
                  "SubscribeURL": "https://evil.example.com/confirm?Token=x"}  # fmt: skip
        response = await webhooks.sns_post(webhooks.sns.sign(fields))
        assert response.status_code == 200  # the transport refuses other hosts: a fetch would have been a 503
        assert webhooks.rows("SELECT kind FROM alerts") == [("sns_subscription_failed",)]

    async def test_an_unsubscribe_confirmation_alerts(self, webhooks: Webhooks) -> None:
        """Losing the subscription means losing bounces: kept, and a critical alert."""
        assert (await webhooks.sns_post(webhooks.sns.unsubscribe_confirmation())).status_code == 200
        assert webhooks.rows("SELECT kind, severity FROM alerts") == [("sns_unsubscribed", "critical")]

    async def test_the_certificate_is_fetched_once(self, webhooks: Webhooks) -> None:
        """Three messages from one signer fetch its certificate once (the cache)."""
        before = webhooks.sns.requests.count(_path(webhooks.sns.cert_url))
        for _ in range(3):
            event = ses_event("Delivery", str(uuid.uuid4()), [EMAIL])
            assert (await webhooks.sns_post(webhooks.sns.notification(_json(event).decode()))).status_code == 200
        assert webhooks.sns.requests.count(_path(webhooks.sns.cert_url)) - before == 1

    async def test_an_unreachable_certificate_answers_503_so_sns_retries(self, webhooks: Webhooks) -> None:
        """SNS's certificate server failing is not a forgery: 503 and nothing kept; the retry is applied."""
        message_id = str(uuid.uuid4())
        nid = await webhooks.sent_notification("ses", message_id, channel="email")
        message = webhooks.sns.notification(_json(ses_event("Delivery", message_id, [EMAIL])).decode())
        webhooks.sns.forced_statuses.append(503)
        assert (await webhooks.sns_post(message)).status_code == 503
        assert webhooks.rows("SELECT count(*) FROM provider_receipts") == [(0,)]
        assert (await webhooks.sns_post(message)).status_code == 200
        assert webhooks.status(nid) == "delivered"


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


FORGER = SnsStandIn()  # another key, as an attacker would have (never served)


def _tampered(genuine: dict[str, str], sns: SnsStandIn) -> dict[str, str]:
    return {**genuine, "Message": genuine["Message"].replace("Permanent", "Transient")}


def _signed_by_another_key(genuine: dict[str, str], sns: SnsStandIn) -> dict[str, str]:
    forged = FORGER.sign({"Type": "Notification", "Message": genuine["Message"]}, genuine["SignatureVersion"])
    return {**forged, "SigningCertURL": sns.cert_url}  # pointing at the genuine certificate


def _certificate_off_sns(genuine: dict[str, str], sns: SnsStandIn) -> dict[str, str]:
    return {**genuine, "SigningCertURL": "https://certs.evil.example.com/SimpleNotificationService-1.pem"}


def _certificate_over_http(genuine: dict[str, str], sns: SnsStandIn) -> dict[str, str]:
    return {**genuine, "SigningCertURL": genuine["SigningCertURL"].replace("https:", "http:")}


def _another_topic(genuine: dict[str, str], sns: SnsStandIn) -> dict[str, str]:
    other_topic = "arn:aws:sns:us-east-1:123456789012:someone-elses"  # genuinely signed, for another topic
    return sns.sign({"Type": "Notification", "Message": genuine["Message"], "TopicArn": other_topic},
                    genuine["SignatureVersion"])  # fmt: skip


class TestSnsRejections:
    @pytest.mark.parametrize("version", ["1", "2"])
    @pytest.mark.parametrize(
        ("forge", "reason"),
        [
            (_tampered, "signature invalid"),
            (_signed_by_another_key, "signature invalid"),
            (_certificate_off_sns, "certificate URL not on an SNS host"),
            (_certificate_over_http, "certificate URL not on an SNS host"),
            (_another_topic, "unexpected topic"),
        ],
    )
    async def test_every_forgery_is_refused_and_kept(
        self,
        webhooks: Webhooks,
        version: str,
        forge: Callable[[dict[str, str], SnsStandIn], dict[str, str]],
        reason: str,
    ) -> None:
        """Bad signature, certificate off SNS, another topic: 403, kept unverified with why, nothing applied."""
        message_id = str(uuid.uuid4())
        nid = await webhooks.sent_notification("ses", message_id, channel="email")
        bounce = _json(ses_event("Bounce", message_id, [EMAIL], bounce_type="Permanent")).decode()
        response = await webhooks.sns_post(forge(webhooks.sns.notification(bounce, version=version), webhooks.sns))
        assert response.status_code == 403
        assert webhooks.rows("SELECT provider, verified, reject_reason FROM provider_receipts") == [
            ("sns", False, reason)
        ]
        assert (webhooks.status(nid), webhooks.rows("SELECT count(*) FROM email_suppressions")) == ("sent", [(0,)])
        assert webhooks.rows("SELECT kind FROM alerts") == [("webhook_unverified",)]

    @pytest.mark.parametrize(
        "body", [b"", b"{not json", b'{"Type": "Notification"}'], ids=["empty", "not-json", "unsigned"]
    )
    async def test_a_body_that_is_no_sns_message_is_refused_and_kept(self, webhooks: Webhooks, body: bytes) -> None:
        """Not an SNS message at all: 403, and the raw body kept for audit."""
        assert (await webhooks.sns_post(body)).status_code == 403
        assert webhooks.rows("SELECT verified, reject_reason FROM provider_receipts") == [(False, "not an SNS message")]


KIB = 1024


def bounded(body: bytes) -> dict[str, Any]:
    """What an unverified request is kept as: its first 2 KiB as text, its size and digest."""
    return {"body_head": body[: 2 * KIB].decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            "body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}  # fmt: skip


class TestUnverifiedRequestsAreKeptBounded:
    """An unauthenticated sender cannot fill the database: what is refused is kept, but bounded."""

    def refused(self, webhooks: Webhooks) -> list[tuple[Any, ...]]:
        return webhooks.rows("SELECT kind, provider_message_id, status, reject_reason, payload FROM provider_receipts")

    async def test_a_large_forged_sns_message_keeps_its_head_size_and_digest(self, webhooks: Webhooks) -> None:
        """A forged notification of 300 KiB: 403, kept as its first 2 KiB, its size and sha256, with its ids."""
        forged = {**webhooks.sns.notification("x" * 300 * KIB), "Signature": "bm90IGEgc2lnbmF0dXJl"}
        body = _json(forged)
        assert (await webhooks.sns_post(body)).status_code == 403
        assert self.refused(webhooks) == [
            ("ses-event", forged["MessageId"], "Notification", "signature invalid", bounded(body))
        ]
        assert webhooks.rows("SELECT kind FROM alerts") == [("webhook_unverified",)]

    @pytest.mark.parametrize("path", ["/twilio/status", "/twilio/inbound"])
    async def test_a_forged_twilio_form_keeps_its_head_size_and_digest(self, webhooks: Webhooks, path: str) -> None:
        """A forged form under the size cap: 403, kept as its first 2 KiB, its size and sha256."""
        params = {**status_params(new_sid(), "delivered"), "Body": "y" * 60 * KIB}
        response = await webhooks.post_form(path, params, _sign(PUBLIC_URL + path, params, "forger"))
        assert response.status_code == 403
        [(_, sid, _, reason, payload)] = self.refused(webhooks)
        assert (sid, reason, payload) == (
            params["MessageSid"],
            "signature invalid",
            bounded(urlencode(params).encode()),
        )

    async def test_a_forged_id_of_any_length_is_kept_clipped(self, webhooks: Webhooks) -> None:
        """A forged MessageSid of 20,000 random characters is kept (not a 503 for an oversized index entry), clipped."""
        sid, status = secrets.token_hex(10_000), secrets.token_hex(2_500)
        response = await webhooks.post_form("/twilio/status", status_params(sid, status), "forged")
        assert response.status_code == 403
        [(_, kept_sid, kept_status, _, _)] = self.refused(webhooks)
        assert (kept_sid, kept_status) == (sid[:128], status[:128])

    @pytest.mark.parametrize("size", [64 * KIB + 1, 1 << 20])  # past Twilio's few hundred bytes; to the function's cap
    @pytest.mark.parametrize("path", ["/twilio/status", "/twilio/inbound"])
    async def test_a_twilio_body_over_64_kib_is_413_unparsed_kept_and_alerted(
        self, webhooks: Webhooks, path: str, size: int
    ) -> None:
        """Over 64 KiB, even signed: 413 before parsing, kept bounded with why, counted by the hourly alert."""
        params = twilio_form_of(size)
        response = await webhooks.post_form(path, params, _sign(PUBLIC_URL + path, params))
        assert response.status_code == 413
        kind = path.rsplit("/", 1)[1]
        assert self.refused(webhooks) == [(kind, None, None, "body over 64 KiB", bounded(urlencode(params).encode()))]
        assert webhooks.rows("SELECT kind, subject FROM alerts") == [("webhook_unverified", f"twilio-{kind}")]

    async def test_a_signed_twilio_form_of_64_kib_is_accepted_whole(self, webhooks: Webhooks) -> None:
        """At the cap, a signed form is Twilio's: verified and kept whole."""
        params = twilio_form_of(64 * KIB)
        assert (await webhooks.twilio("/twilio/status", params)).status_code == 200
        assert webhooks.rows("SELECT verified, payload->>'Body' FROM provider_receipts") == [(True, params["Body"])]


def twilio_form_of(size: int) -> dict[str, str]:
    """A status callback whose Body pads it to ``size`` bytes, urlencoded."""
    params = {**status_params(new_sid(), "delivered"), "Body": ""}
    params["Body"] = "z" * (size - len(urlencode(params)))
    assert len(urlencode(params)) == size
    return params


class TestErrors:
    async def test_a_database_failure_answers_503_and_the_retry_applies_whole(self, webhooks: Webhooks) -> None:
        """With the receipts table unusable the callback gets 503 (Twilio retries); once back, it applies once."""
        sid = new_sid()
        nid = await webhooks.sent_notification("twilio", sid)
        webhooks.execute("ALTER TABLE provider_receipts RENAME TO provider_receipts_away")
        assert (await webhooks.twilio("/twilio/status", status_params(sid, "delivered"))).status_code == 503
        assert webhooks.status(nid) == "sent"  # nothing half applied
        webhooks.execute("ALTER TABLE provider_receipts_away RENAME TO provider_receipts")
        assert (await webhooks.twilio("/twilio/status", status_params(sid, "delivered"))).status_code == 200
        assert webhooks.status(nid) == "delivered"

    async def test_without_a_database_every_route_answers_503(self, sns: SnsStandIn, logs: CapturedLogs) -> None:
        """Started against a database it cannot reach, the function is not ready and asks providers to retry."""
        function = webhooks_func.new()
        logs.start(function, config("postgresql://postgres@127.0.0.1:1/none", sns))
        app = httpx.ASGITransport(app=ASGIApplication(function))
        async with httpx.AsyncClient(transport=app, base_url=PUBLIC_URL) as client:
            params = status_params(new_sid(), "delivered")
            callback = await client.post(
                "/twilio/status", data=params, headers={"X-Twilio-Signature": _sign(STATUS_URL, params)}
            )
            readiness = await client.get("/health/readiness")
        await function.aclose()
        assert (callback.status_code, readiness.status_code) == (503, 500)
        assert function.alive() == (True, "OK")  # alive: Kubernetes waits instead of restarting it

    # method, path, body -> status
    @pytest.mark.parametrize(
        ("method", "path", "body", "status"),
        [
            ("POST", "/nope", b"", 404),  # no such route
            ("GET", "/twilio/status", b"", 405),  # routes take POST only
            ("POST", "/twilio/status", b"x" * ((1 << 20) + 1), 413),  # larger than any provider sends
            ("GET", "/health/readiness", b"", 200),  # func-python's probe, answered by ready()
        ],
    )
    async def test_requests_outside_the_routes(
        self, webhooks: Webhooks, method: str, path: str, body: bytes, status: int
    ) -> None:
        """Unknown paths, other methods and oversized bodies are answered without touching the database."""
        response = await webhooks.client.request(method, path, content=body)
        assert response.status_code == status
        assert webhooks.rows("SELECT count(*) FROM provider_receipts") == [(0,)]


class TestConfiguration:
    # setting -> the variable the failure names
    @pytest.mark.parametrize(
        ("overrides", "variable"),
        [
            (
                {"WEBHOOKS_PUBLIC_URL": "http://notify.hospital.org"},
                "WEBHOOKS_PUBLIC_URL",
            ),  # signatures over plain http
            ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"),
            ({"SES_EVENTS_TOPIC_ARN": "ses-events"}, "SES_EVENTS_TOPIC_ARN"),  # not an ARN
        ],
    )
    def test_a_bad_setting_leaves_the_function_dead_naming_it(
        self, sns: SnsStandIn, logs: CapturedLogs, overrides: dict[str, str], variable: str
    ) -> None:
        """A missing or insecure setting fails liveness with a message naming the variable."""
        function = webhooks_func.new()
        logs.start(function, config("postgresql://postgres@127.0.0.1:5432/unused", sns, **overrides))
        alive, message = function.alive()
        assert not alive and variable in message

    async def test_help_reply_text_replaces_the_default(
        self, migrated_database_url: str, sns: SnsStandIn, logs: CapturedLogs
    ) -> None:
        """HELP_REPLY_TEXT, when set, is the HELP reply word for word."""
        function = webhooks_func.new()
        logs.start(function, config(migrated_database_url, sns, HELP_REPLY_TEXT="Riverside Clinic: call 0800 123 456."))
        response = await function.process(_request("/twilio/inbound", inbound_params("HELP")))
        await function.aclose()
        assert _messages(response.body.decode()) == ["Riverside Clinic: call 0800 123 456."]


def _request(path: str, params: dict[str, str]) -> HttpRequest:
    return HttpRequest(path, "", {"x-twilio-signature": _sign(PUBLIC_URL + path, params)}, urlencode(params).encode())


class TestLogs:
    async def test_no_log_line_carries_a_number_or_an_address(self, webhooks: Webhooks, logs: CapturedLogs) -> None:
        """Receipts, keywords, bounces and forgeries are logged by id and status only, never with the payload."""
        sid, message_id = new_sid(), str(uuid.uuid4())
        await webhooks.sent_notification("twilio", sid)
        await webhooks.sent_notification("ses", message_id, channel="email")
        for status, code in [("failed", "21610"), ("sent", "")]:  # the late "sent" is recorded only
            await webhooks.twilio("/twilio/status", status_params(sid, status, ErrorCode=code))
        for body in ("STOP", "HELP", "START", "my number is +447700900456"):
            await webhooks.twilio("/twilio/inbound", inbound_params(body, OTHER_PHONE))
        await webhooks.twilio("/twilio/inbound", inbound_params("STOP"), token="forger")
        bounce = ses_event("Bounce", message_id, [EMAIL], bounce_type="Permanent")
        await webhooks.sns_post(webhooks.sns.notification(_json(bounce).decode()))
        lines = [json.loads(line) for line in logs.lines()]
        events = {line["msg"] for line in lines}
        assert {
            "receipt.applied",
            "receipt.blocked_recipient",
            "inbound.received",
            "webhook.rejected",
            "receipt.recorded",
        } <= events
        assert [line for line in lines if any(secret in json.dumps(line) for secret in PATIENT_DATA)] == []


class TestServedByFuncPython:
    def test_a_callback_and_a_stop_through_a_real_process(
        self, migrated_database_url: str, sns: SnsStandIn, tmp_path: Path
    ) -> None:
        """The function as its container runs it, behind a TLS-terminating ingress (it is called on plain
        http, Twilio signed the public https URL): a receipt and a STOP land, and its log holds no patient data."""
        with (tmp_path / "webhooks.log").open("wb") as log:
            process = FunctionProcess("webhooks", config(migrated_database_url, sns, LOG_LEVEL="INFO"), log)
            process.start()
            try:
                process.wait_ready()
                params, stop = status_params(new_sid(), "delivered"), inbound_params("STOP")
                receipt = httpx.post(f"{process.url}twilio/status", data=params,
                                     headers={"X-Twilio-Signature": _sign(STATUS_URL, params)})  # fmt: skip
                reply = httpx.post(f"{process.url}twilio/inbound", data=stop,
                                   headers={"X-Twilio-Signature": _sign(f"{PUBLIC_URL}/twilio/inbound", stop)})  # fmt: skip
            finally:
                process.stop()
        assert (receipt.status_code, reply.status_code) == (200, 200)
        with psycopg.connect(migrated_database_url) as conn:
            assert conn.execute(b"SELECT number FROM sms_opt_outs").fetchall() == [(PHONE,)]
        text = (tmp_path / "webhooks.log").read_text()
        assert "inbound.received" in text and "receipt.recorded" in text
        assert [secret for secret in PATIENT_DATA if secret in text] == []
