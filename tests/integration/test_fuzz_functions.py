"""Bad input fuzzed at every event function (issue #8): kept, alerted, answered 2xx, and the function stays ready.

Each function is built by its own ``new()``, started against real PostgreSQL and stand-ins for its
providers, and driven through func-python's own ASGI app in process (``/health/*`` there, the rest
to ``handle``), so hypothesis can try many requests fast. The broker acks and drops a 4xx and
retries a 5xx into the dead-letter queue (DESIGN §4), so for any request that can arrive:

    handled               200 and no rejected_events row
    not an event we take  202 and exactly one rejected_events row, with its reason and an alert
    a dead letter         202 and kept in dead_letters (the dispatcher is every Trigger's sink)

never any other status while the database and providers are up, and readiness answers 200 after.
The one 4xx is 405 for a method other than POST: the broker only POSTs, so no event meets it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from func_python.http import ASGIApplication
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.events import (
    AppointmentChanged,
    AppointmentFacts,
    ChangeNoticeDue,
    EventData,
    PingTick,
    ReminderDue,
    send_request,
)
from patient_notify.signing import sign_event
from sandbox.patient_api import PatientApiStandIn, Population
from sandbox.smtp import SmtpStandIn
from sandbox.triggers import load_triggers
from sandbox.twilio import TwilioStandIn
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.conftest import _admin, database_url
from tests.support.functions import load_module
from tests.support.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ["etl", "scheduler", "dispatcher", "sms-sender", "email-sender", "monitor"]
ACCOUNT_SID, SECRET = "AC" + "5" * 32, "fuzz-tests-secret-0123456789abcdef-0123"
STARTS_AT = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
PING_SOURCE = "/apis/v1/namespaces/patient-notify/pingsources/tick"
FUZZ = settings(
    max_examples=15, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip


def subscriptions() -> dict[str, set[str]]:
    """The event types each function's Triggers deliver to it, read from knative/ as deployed."""
    subscribed: dict[str, set[str]] = {name: set() for name in FUNCTIONS}
    for trigger in load_triggers(ROOT / "knative" / "base"):
        subscribed[trigger.service].add(trigger.filter["type"])
    return subscribed


def valid_events(name: str, notification_ids: Mapping[str, int]) -> list[dict[str, Any]]:
    """One valid event of each type ``name`` subscribes to, as structured-mode JSON (what mutations start from)."""
    now = datetime.now(UTC)
    facts = AppointmentFacts(starts_at=STARTS_AT, location_id="loc-1", status="booked")
    data: dict[str, tuple[EventData, str]] = {
        PingTick.TYPE: (PingTick(job="tick"), PING_SOURCE),
        ReminderDue.TYPE: (ReminderDue(appointment_id="appt-1", appointment_version=1, local_date=STARTS_AT.date(),
                                       due_at=now), "/patient-notify/scheduler"),
        ChangeNoticeDue.TYPE: (ChangeNoticeDue(appointment_id="appt-1", version=1, reason="rescheduled",
                                               previous=facts, current=facts, detected_by="etl"), "/patient-notify/etl"),
        AppointmentChanged.TYPE: (AppointmentChanged(appointment_id="appt-1", source_version=2, reason="rescheduled",
                                                     starts_at=STARTS_AT + timedelta(hours=1), location_id="loc-1",
                                                     status="booked"), "/appointments"),
    }  # fmt: skip
    if name == "sms-sender":
        data = {"": (send_request(notification_ids["sms"], "appt-1", "sms"), "/patient-notify/dispatcher")}
    if name == "email-sender":
        data = {"": (send_request(notification_ids["email"], "appt-1", "email"), "/patient-notify/dispatcher")}
    events = []
    for event_type, (model, source) in data.items():
        if event_type and event_type not in subscriptions()[name]:
            continue
        event = new_event(model, source=source, subject="appt-1", event_id=str(uuid.uuid4()), time=now)
        if model.TYPE == AppointmentChanged.TYPE:
            event = sign_event(event, SECRET.encode(), now=now)
        attributes = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in event.get_attributes().items()}
        events.append({**attributes, "data": event.get_data()})
    return events


# --- requests -------------------------------------------------------------------------------------

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
ATTRIBUTES = ["id", "source", "type", "specversion", "time", "subject", "dataschema", "datacontenttype",
              "pnsignature", "pnsignedat", "knativeerrordest", "knativeerrorcode", "appointmentid"]  # fmt: skip
CONTENT_TYPES = ["application/json", "application/cloudevents+json", "application/cloudevents-batch+json",
                 "text/plain", "application/json; charset=latin-1", "application/octet-stream", ""]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
SPECIAL = st.sampled_from([  # values that reach parsers, the database and datetime arithmetic
    "", "\x00", "a\x00b", "1.0", "0.3", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-02-30T00:00:00Z",
    "not a time", -1, 0, 2**31, 2**63, 2**70, -(2**63) - 1, 1e308, float("nan"), "appt-1", "é" * 300, [], {},
])  # fmt: skip


@dataclass(frozen=True)
class Request:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    malformed: bool  # surely not an event any function takes: must be rejected and kept


def header_value(value: object) -> bytes:
    """How a JSON value can travel in a header: HTTP forbids control characters, so they are dropped here."""
    text = value if isinstance(value, str) else json.dumps(value)
    return "".join(c for c in text if c == "\t" or (0x20 <= ord(c) <= 0xFF and c != "\x7f")).strip().encode("latin-1")


def binary(event: Mapping[str, Any], content_type: str | None) -> Request:
    headers = [(f"ce-{k}".encode(), header_value(v)) for k, v in event.items() if k not in ("data", "datacontenttype")]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    data = event.get("data")
    body = data if isinstance(data, bytes) else json.dumps(data).encode() if "data" in event else b""
    return Request(headers, body, malformed=False)


def structured(event: Mapping[str, Any], content_type: str = "application/cloudevents+json") -> Request:
    return Request([(b"content-type", content_type.encode())], json.dumps(event).encode(), malformed=False)


@st.composite
def mutated(draw: st.DrawFn, events: list[dict[str, Any]]) -> Request:
    """A valid event with a few attributes or data fields removed, replaced or added, in either mode."""
    event = dict(draw(st.sampled_from(events)))
    data = dict(event["data"]) if isinstance(event.get("data"), dict) else event.get("data")
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["attribute", "data"]))
        if where == "data" and isinstance(data, dict):
            field = draw(st.sampled_from([*data, "extra"]) if data else st.just("extra"))
            if draw(st.booleans()):
                data[field] = draw(SPECIAL | JSON)
            else:
                data.pop(field, None)
        elif where == "data":
            data = draw(SPECIAL | JSON)
        else:
            attribute = draw(st.sampled_from(ATTRIBUTES) | st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True))
            if draw(st.booleans()):
                event[attribute] = draw(SPECIAL | st.text(max_size=30))
            else:
                event.pop(attribute, None)
    event["data"] = data
    if draw(st.booleans()):
        return binary(event, draw(st.sampled_from([*CONTENT_TYPES, None])))
    return structured(event, draw(st.sampled_from(CONTENT_TYPES[:2])))


@st.composite
def arbitrary(draw: st.DrawFn) -> Request:
    """Random headers (some ce-*) and a random body: bytes, invalid UTF-8, or JSON of any shape."""
    names = st.sampled_from(ATTRIBUTES).map(lambda a: f"ce-{a}") | st.from_regex(
        r"[a-z][a-z0-9-]{0,15}", fullmatch=True
    )
    headers = draw(st.lists(st.tuples(names, HEADER_TEXT.map(str.strip)), max_size=6))
    content_type = draw(st.sampled_from([*CONTENT_TYPES, None]))
    body = draw(st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()) | st.just(b"\xff\xfe{"))
    pairs = [(n.encode(), v.encode("latin-1")) for n, v in headers if n != "content-type"]
    pairs += [(b"content-type", content_type.encode())] if content_type is not None else []
    names_sent = {n for n, _ in pairs}
    # Without ce-specversion, and not in structured mode, it cannot be a CloudEvent at all.
    surely_not = b"ce-specversion" not in names_sent and "cloudevents" not in (content_type or "")
    return Request(pairs, body, malformed=surely_not)


# --- the function under test ----------------------------------------------------------------------


@dataclass
class Served:
    name: str
    client: httpx.AsyncClient
    database_url: str
    notification_ids: dict[str, int]
    conn: psycopg.Connection[tuple[Any, ...]]

    def counts(self) -> tuple[int, int, int]:
        """(rejected_events rows, of them with a reason and an alert, dead_letters rows)."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM rejected_events),"
            " (SELECT count(*) FROM rejected_events r JOIN alerts a ON a.dedup_key = 'rejected:' || r.id"
            "   WHERE r.reason <> '' AND r.receiver = %s AND a.kind = 'event_rejected'),"
            " (SELECT count(*) FROM dead_letters)",
            (self.name,),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def post(self, request: Request, path: str = "/") -> httpx.Response:
        return await self.client.post(path, headers=request.headers, content=request.body)

    async def ready(self) -> int:
        return (await self.client.get("/health/readiness")).status_code

    async def check(self, request: Request) -> httpx.Response:
        """Post ``request`` and assert the one outcome each answer allows (see the module docstring)."""
        before = self.counts()
        response = await self.post(request)
        rejected, alerted, dead = (a - b for a, b in zip(self.counts(), before, strict=True))
        outcome = response.json().get("outcome") if response.status_code < 500 else response.text
        assert response.status_code in (200, 202), (response.status_code, outcome, request)
        if response.status_code == 200:
            assert (outcome, rejected, dead) == ("handled", 0, 0), request
        elif outcome == "dead letter recorded":  # once per (source, id): a redelivered one adds no row
            assert rejected == 0 and dead in (0, 1), request
        else:
            assert (outcome, rejected, alerted) == ("rejected and recorded", 1, 1), request
        if request.malformed:
            assert (response.status_code, rejected) == (202, 1), request
        assert await self.ready() == 200
        return response


async def _seed(database_url: str) -> dict[str, int]:
    """An appointment with an SMS and an email reminder queued: what valid events refer to."""
    db = Database(database_url, max_size=1)
    try:
        async with db.transaction() as tx:
            contacts = [make_contact(), make_contact(channel="email", value="ada@example.org")]
            await save_batch(tx, SourceBatch([make_location()], [make_patient()], contacts,
                                             [make_appointment(starts_at=STARTS_AT)]))  # fmt: skip
            facts = json.dumps({"starts_at": STARTS_AT.isoformat(), "location_id": "loc-1", "status": "booked"})
            await tx.run("record_appointment_versions", {  # the change a notice.due event names
                "appointment_ids": ["appt-1"], "versions": [1], "reasons": ["rescheduled"],
                "previous": [facts], "current": [facts], "detected_by": ["etl"],
            })  # fmt: skip
            rows = await tx.all("claim_notifications", {
                "natural_keys": ["fuzz:sms", "fuzz:email"], "appointment_ids": ["appt-1"] * 2,
                "appointment_versions": [1, 1], "kinds": ["reminder"] * 2, "channels": ["sms", "email"],
                "recipients": ["+12025550123", "ada@example.org"], "languages": ["en"] * 2,
                "subjects": ["Reminder"] * 2, "bodies": ["See you soon."] * 2, "hold_until": [None, None],
            })  # fmt: skip
    finally:
        await db.close()
    return {row["channel"]: int(row["id"]) for row in rows}


@asynccontextmanager
async def served(name: str, database_url: str) -> AsyncIterator[Served]:
    with ExitStack() as stack:
        ingress = stack.enter_context(Receiver())
        common = {"DATABASE_URL": database_url, "BROKER_URL": ingress.url, "LOG_LEVEL": "ERROR"}
        if name == "etl":
            api = stack.enter_context(
                PatientApiStandIn(Population.generate(5, seed=1, start=STARTS_AT), failure_rate=0)
            )
            common |= {"ETL_SOURCE_URL": api.fhir_url, "ETL_DEFAULT_ZONE": "Europe/London"}
        if name == "sms-sender":
            twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, "token"))
            common |= {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "token",
                       "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url}  # fmt: skip
        if name == "email-sender":
            smtp = stack.enter_context(SmtpStandIn())
            common |= {"EMAIL_PROVIDER": "smtp", "EMAIL_FROM": "clinic@example.org", "SMTP_HOST": smtp.host,
                       "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}  # fmt: skip
        if name == "dispatcher":
            common |= {"APPOINTMENT_EVENTS_SECRET": SECRET}
        notification_ids = await _seed(database_url)
        conn = stack.enter_context(psycopg.connect(database_url, autocommit=True))
        function = load_module(name, "func").new()
        function.start(common)
        try:
            assert function.ready() == (True, "OK"), function.ready()
            async with AsyncExitStack() as client_stack:
                transport = httpx.ASGITransport(app=ASGIApplication(function))
                client = await client_stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://function", timeout=30)
                )
                yield Served(name, client, database_url, notification_ids, conn)
        finally:
            await function.aclose()


@pytest.fixture(scope="module", params=FUNCTIONS)
def function(
    request: pytest.FixtureRequest, template_database: str, loop: asyncio.AbstractEventLoop
) -> Iterator[Served]:
    """The function named by the parameter, on its own database, served on a loop the synchronous
    (hypothesis) tests drive; shared by this module's tests, which assert on what each request adds."""
    name = f"pn_fuzz_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    context = served(request.param, database_url(name))
    try:
        yield loop.run_until_complete(context.__aenter__())
        loop.run_until_complete(context.__aexit__(None, None, None))
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# what is odd about it: headers, body
ODD_REQUESTS = [
    ([(b"content-type", b"application/json")], b"\x00" * (3 << 20)),  # 3 MiB of NULs, no ce-* headers
    ([(b"content-type", b"application/cloudevents+json")],
     b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "data": "' + b"a" * (3 << 20) + b'"}'),  # huge
    ([(b"content-type", b"application/cloudevents+json")], b'{"specversion": "1.0", "id": "\xff\xfe"}'),  # not UTF-8
    ([(b"content-type", b"application/cloudevents+json")],
     b'{"specversion": "1.0", "id": "a\\u0000b", "source": "/\\u0000", "type": "t\\u0000"}'),  # NUL in attributes
    ([(b"ce-specversion", b"1.0"), (b"ce-id", b"\xe9\xff"), (b"ce-source", b"/s"), (b"ce-type", b"\xff")], b"{}"),
]  # fmt: skip


class TestValidEvents:
    def test_each_subscribed_type_is_handled_and_not_rejected(
        self, function: Served, loop: asyncio.AbstractEventLoop
    ) -> None:
        """A valid event of every type the function's Triggers deliver, in binary and structured mode: 200, nothing kept."""
        events = valid_events(function.name, function.notification_ids)
        assert events, f"{function.name} subscribes to nothing"
        for event in events:
            for request in (binary(event, "application/json"), structured(event)):
                response = loop.run_until_complete(function.check(request))
                assert response.status_code == 200, (event, response.json())


class TestFuzzedRequests:
    @FUZZ
    @given(data=st.data())
    def test_a_mutated_event_is_handled_or_rejected_and_kept(
        self, function: Served, loop: asyncio.AbstractEventLoop, data: st.DataObject
    ) -> None:
        """A valid event with attributes or data fields changed: 200 handled, or 202 with one row and an alert."""
        request = data.draw(mutated(valid_events(function.name, function.notification_ids)))
        loop.run_until_complete(function.check(request))

    @FUZZ
    @given(request=arbitrary())
    def test_any_request_is_handled_or_rejected_and_kept(
        self, function: Served, loop: asyncio.AbstractEventLoop, request: Request
    ) -> None:
        """Random headers and bodies: never 4xx or 5xx; what is not a CloudEvent at all is kept and alerted."""
        loop.run_until_complete(function.check(request))


class TestOddRequests:
    def test_huge_nul_laden_or_non_utf8_requests_are_kept_whole_and_answered_202(
        self, function: Served, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Each gets one row keeping its body byte for byte, an alert, 202, and the function stays ready."""
        for headers, body in ODD_REQUESTS:
            response = loop.run_until_complete(function.check(Request(headers, body, malformed=True)))
            stored = function.conn.execute("SELECT body FROM rejected_events ORDER BY id DESC LIMIT 1").fetchone()
            assert (response.status_code, stored) == (202, (body,))

    def test_another_method_is_405_and_keeps_nothing(self, function: Served, loop: asyncio.AbstractEventLoop) -> None:
        """The broker only POSTs: any other method is 405 (no event is lost to it), and nothing is recorded."""
        before = function.counts()
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            response = loop.run_until_complete(function.client.request(method, "/", content=b"{}"))
            assert (response.status_code, function.counts()) == (405, before)

    def test_the_path_does_not_matter(self, function: Served, loop: asyncio.AbstractEventLoop) -> None:
        """A Trigger's subscriber URI may carry a path: a bad event POSTed to any path is still kept."""
        before = function.counts()
        response = loop.run_until_complete(function.post(Request([], b"hello", malformed=True), "/some/path?q=1"))
        assert (response.status_code, function.counts()[:2]) == (202, (before[0] + 1, before[1] + 1))
