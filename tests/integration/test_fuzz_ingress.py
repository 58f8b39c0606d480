"""The local broker's ingress fuzzed (issue #8), on both backends ``open_broker`` builds.

Like eventing-rabbitmq's ingress, it answers the SENDER synchronously, so a 4xx is fine there: the
sender sees it and keeps the event. What must hold for any request:

    POST / with a CloudEvent (binary or structured)   202, and the event reaches the subscriber
    POST / with anything else                         400, and nothing is routed
    another path · another (standard) method           404 · 405
    never a 5xx while RabbitMQ is up

A method no HTTP server knows (``FOO``) may get 501, which RFC 9110 asks for; it is not fuzzed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.brokers import Broker, open_broker
from sandbox.triggers import Delivery, Trigger
from tests.support.receiver import Receiver

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
FUZZ = settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
EVERYTHING = Trigger("everything", {}, "subscriber", parallelism=4, delivery=Delivery(retry=0, timeout_s=5.0))

TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)  # no spaces: exact
EXTENSION = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(
    lambda name: name not in {"id", "source", "type", "specversion", "time", "subject", "dataschema", "data"}
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def subscriber() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["in-process", "rabbitmq"])
def broker(request: pytest.FixtureRequest, subscriber: Receiver) -> Iterator[Broker]:
    """One broker per backend for the module: a Trigger with no filter delivers everything to ``subscriber``."""
    url = AMQP_URL if request.param == "rabbitmq" else None
    running = open_broker([EVERYTHING], {"subscriber": subscriber.url}, rabbitmq_url=url)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as shared:
        yield shared


@st.composite
def cloudevents(draw: st.DrawFn) -> tuple[dict[str, str], bytes, str]:
    """A valid CloudEvent with odd but legal attributes and data, in binary or structured mode; its id."""
    event_id = f"fuzz-{uuid.uuid4().hex}"
    attributes = {"id": event_id, "source": draw(TOKEN), "type": draw(TOKEN), "specversion": "1.0"}
    attributes |= draw(st.dictionaries(EXTENSION, TOKEN, max_size=3))
    if draw(st.booleans()):
        attributes["subject"] = draw(TOKEN)
    data = draw(JSON)
    if draw(st.booleans()):
        headers = {f"ce-{k}": v for k, v in attributes.items()} | {"content-type": "application/json"}
        return headers, json.dumps(data).encode(), event_id
    body = json.dumps({**attributes, "datacontenttype": "application/json", "data": data}).encode()
    return {"content-type": "application/cloudevents+json"}, body, event_id


class TestCloudEvents:
    @FUZZ
    @given(event=cloudevents())
    def test_a_valid_cloudevent_is_accepted_202_and_delivered(
        self, broker: Broker, subscriber: Receiver, client: httpx.Client, event: tuple[dict[str, str], bytes, str]
    ) -> None:
        """Any valid event, binary or structured: 202, then the subscriber gets it once with its data intact."""
        headers, body, event_id = event
        assert client.post(broker.ingress_url, headers=headers, content=body).status_code == 202
        assert broker.wait_idle(10)
        [(_received, data)] = [(h, b) for h, b in list(subscriber.requests) if h.get("ce-id") == event_id]
        sent = json.loads(body) if "ce-id" in headers else json.loads(body)["data"]
        # JSON null data is no data: the SDK's decode and re-encode carry it as an empty body (the same to a function)
        assert (json.loads(data) if data else None) == sent
        assert broker.stats.dropped == [] and broker.stats.errors == []


class TestAnythingElse:
    @FUZZ
    @given(
        headers=st.lists(st.tuples(st.sampled_from(["ce-id", "ce-type", "ce-source", "content-type", "x-y"]),
                                   TOKEN), max_size=4),
        body=st.binary(max_size=300) | JSON.map(lambda value: json.dumps(value).encode()),
    )  # fmt: skip
    def test_a_request_without_ce_specversion_is_400_and_routes_nothing(
        self, broker: Broker, client: httpx.Client, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """No ce-specversion and not structured mode: not a CloudEvent, so 400 (the sender sees it) and nothing routed."""
        ingested = broker.stats.ingested
        sent = [(name, value) for name, value in headers if not (name == "content-type" and "cloudevents" in value)]
        assert client.post(broker.ingress_url, headers=sent, content=body).status_code == 400
        assert broker.stats.ingested == ingested

    @FUZZ
    @given(
        method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"]),
        path=st.from_regex(r"/[a-zA-Z0-9._~-]{0,20}", fullmatch=True),
        structured_event=st.booleans(),
    )
    def test_any_method_and_path_is_answered_without_a_5xx(
        self, broker: Broker, client: httpx.Client, method: str, path: str, structured_event: bool
    ) -> None:
        """POST / only, as eventing-rabbitmq's ingress: elsewhere 404, another method 405, even carrying an event."""
        ingested = broker.stats.ingested
        event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/fuzz", "type": "fuzz.odd", "data": {}}
        body = json.dumps(event).encode() if structured_event else b"hello"
        headers = {"content-type": "application/cloudevents+json"}
        response = client.request(method, broker.ingress_url.rstrip("/") + path, headers=headers, content=body)
        expected = 405 if method != "POST" else 404 if path != "/" else 202 if structured_event else 400
        assert response.status_code == expected
        assert broker.stats.ingested == ingested + (expected == 202)
