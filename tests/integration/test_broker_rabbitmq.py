"""RabbitRouter on the real RabbitMQ: eventing-rabbitmq's topology, filters, retries and dead letters (DESIGN §4)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pika  # type: ignore[import-untyped]  # pika ships no stubs
import pika.exceptions  # type: ignore[import-untyped]  # same
import pytest

from sandbox.broker_rabbitmq import RabbitRouter
from sandbox.triggers import Delivery, Trigger
from tests.support.receiver import Receiver

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
QUICK = Delivery(retry=2, backoff_delay_s=0.05, timeout_s=5.0)


def make_trigger(name: str, type_: str, **overrides: object) -> Trigger:
    fields: dict[str, object] = {"filter": {"type": type_}, "service": name, "parallelism": 1, "delivery": QUICK}
    return Trigger(name=name, **{**fields, **overrides})  # type: ignore[arg-type]


def post_event(ingress: str, type_: str, client: httpx.Client | None = None, **extensions: str) -> httpx.Response:
    """A binary-mode CloudEvent; pass a shared ``client`` in loops (a new one per call costs an SSL context)."""
    headers = {"ce-id": uuid.uuid4().hex, "ce-source": "/tests", "ce-type": type_, "ce-specversion": "1.0"}
    headers |= {f"ce-{k}": v for k, v in extensions.items()} | {"content-type": "application/json"}
    if client is None:
        return httpx.post(ingress, headers=headers, content=b'{"n": 1}')
    return client.post(ingress, headers=headers, content=b'{"n": 1}')


@contextmanager
def running(triggers: Sequence[Trigger], endpoints: dict[str, str]) -> Iterator[RabbitRouter]:
    router = RabbitRouter(triggers, endpoints, amqp_url=AMQP_URL, backoff_scale=0.2)
    router.start()
    try:
        yield router
    finally:
        router.stop()


class TestRouting:
    def test_exact_match_filters_route_each_event_to_its_trigger_only(self) -> None:
        """An event reaches only the Triggers whose filter attributes all match; unmatched events go nowhere."""
        triggers = [make_trigger("booked", "appt.booked"), make_trigger("cancelled", "appt.cancelled")]
        with (
            Receiver() as booked,
            Receiver() as cancelled,
            running(triggers, {"booked": booked.url, "cancelled": cancelled.url}) as router,
        ):
            for type_ in ["appt.booked", "appt.booked", "appt.cancelled", "appt.other"]:
                assert post_event(router.ingress_url, type_).status_code == 202
            assert router.wait_idle(10)
        assert [h["ce-type"] for h, _ in booked.requests] == ["appt.booked", "appt.booked"]
        assert [h["ce-type"] for h, _ in cancelled.requests] == ["appt.cancelled"]
        assert router.stats.ingested == 4 and router.stats.errors == []

    def test_attributes_and_data_arrive_in_binary_mode(self) -> None:
        """Extensions and data survive the trip through AMQP headers and body."""
        trigger = make_trigger("booked", "appt.booked", filter={"type": "appt.booked", "appointmentid": "a1"})
        with Receiver() as booked, running([trigger], {"booked": booked.url}) as router:
            post_event(router.ingress_url, "appt.booked", appointmentid="a1")
            post_event(router.ingress_url, "appt.booked", appointmentid="a2")
            assert router.wait_idle(10)
        [(headers, body)] = booked.requests
        assert headers["ce-appointmentid"] == "a1" and headers["content-type"] == "application/json"
        assert json.loads(body) == {"n": 1}

    def test_ingress_accepts_a_structured_cloudevent(self) -> None:
        """A structured-mode event is published like a binary one and delivered in binary mode."""
        event = {"specversion": "1.0", "id": "s1", "source": "/tests", "type": "appt.booked", "data": {"n": 1}}
        with Receiver() as booked, running([make_trigger("booked", "appt.booked")], {"booked": booked.url}) as router:
            headers = {"content-type": "application/cloudevents+json"}
            assert httpx.post(router.ingress_url, headers=headers, content=json.dumps(event)).status_code == 202
            assert router.wait_idle(10)
        assert booked.event_ids() == ["s1"]

    def test_ingress_answers_400_to_a_request_that_is_not_a_cloudevent(self) -> None:
        """Like the real ingress, a plain POST is refused and nothing is published."""
        with Receiver() as booked, running([make_trigger("booked", "appt.booked")], {"booked": booked.url}) as router:
            assert httpx.post(router.ingress_url, content=b"hello").status_code == 400
            assert router.wait_idle(5)
        assert router.stats.ingested == 0 and booked.requests == []


class TestDeliveryOutcomes:
    def test_retryable_status_is_retried_then_delivered_once(self) -> None:
        """503 twice then 200: three attempts, two retries, one delivery."""
        with (
            Receiver(script=[503, 503], status=200) as subscriber,
            running([make_trigger("booked", "appt.booked")], {"booked": subscriber.url}) as router,
        ):
            post_event(router.ingress_url, "appt.booked")
            assert router.wait_idle(10)
        assert len(subscriber.requests) == 3
        assert router.stats.delivered["booked"] == 1 and router.stats.retried["booked"] == 2

    def test_other_4xx_is_acked_and_dropped(self) -> None:
        """A 400 is final: no retry, recorded as dropped, nothing left in the queue."""
        with (
            Receiver(status=400) as subscriber,
            running([make_trigger("booked", "appt.booked")], {"booked": subscriber.url}) as router,
        ):
            post_event(router.ingress_url, "appt.booked")
            assert router.wait_idle(10)
        assert len(subscriber.requests) == 1
        assert router.stats.dropped == [("booked", 400)] and router.stats.retried["booked"] == 0

    def test_exhausted_retries_go_to_the_dead_letter_sink_with_error_extensions(self) -> None:
        """Always 500: after the last retry the sink gets the event with knativeerrordest and knativeerrorcode."""
        delivery = Delivery(retry=2, backoff_delay_s=0.05, dead_letter_service="sink")
        trigger = make_trigger("booked", "appt.booked", delivery=delivery)
        with (
            Receiver(status=500) as subscriber,
            Receiver(status=200) as sink,
            running([trigger], {"booked": subscriber.url, "sink": sink.url}) as router,
        ):
            post_event(router.ingress_url, "appt.booked")
            assert router.wait_idle(10)
        [(headers, _)] = sink.requests
        assert headers["ce-knativeerrordest"] == subscriber.url and headers["ce-knativeerrorcode"] == "500"
        assert len(subscriber.requests) == 3 and router.stats.dead_lettered == ["booked"]


class TestTopology:
    def test_trigger_queue_is_durable_and_quorum(self) -> None:
        """Redeclaring with durable quorum arguments is accepted; a classic declaration is refused (406)."""
        trigger = make_trigger("booked", "appt.booked")
        with Receiver() as subscriber, running([trigger], {"booked": subscriber.url}) as router:
            connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            try:
                channel = connection.channel()
                name = f"{router.namespace}.booked"
                channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
                with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "classic"})
                assert refused.value.reply_code == 406
            finally:
                connection.close()

    def test_stop_deletes_the_namespace(self) -> None:
        """After stop() the Trigger's queue is gone (passive declare answers 404)."""
        with (
            Receiver() as subscriber,
            running([make_trigger("booked", "appt.booked")], {"booked": subscriber.url}) as router,
        ):
            name = f"{router.namespace}.booked"
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as missing:
                connection.channel().queue_declare(name, passive=True)
            assert missing.value.reply_code == 404
        finally:
            connection.close()


class TestThroughput:
    def test_parallel_trigger_delivers_every_event_exactly_once(self) -> None:
        """500 events through a parallelism-10 Trigger reach a healthy subscriber once each."""
        trigger = make_trigger("booked", "appt.booked", parallelism=10)
        with Receiver(status=200) as subscriber, running([trigger], {"booked": subscriber.url}) as router:
            with ThreadPoolExecutor(16) as pool, httpx.Client() as client:

                def post(_: int) -> int:
                    return post_event(router.ingress_url, "appt.booked", client).status_code

                statuses = list(pool.map(post, range(500)))
            assert router.wait_idle(20)
        assert statuses == [202] * 500
        ids = subscriber.event_ids()
        assert len(ids) == 500 and len(set(ids)) == 500
        assert router.stats.delivered["booked"] == 500 and router.stats.errors == []
