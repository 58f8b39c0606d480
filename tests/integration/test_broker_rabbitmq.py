"""RabbitRouter on the real RabbitMQ: eventing-rabbitmq's topology and throughput (DESIGN §4).

The delivery semantics both backends share (filters, retries, 4xx, dead letters, replies, PingSource
timing) and the RabbitMQ restart test live in ``test_local_broker.py``.
"""

from __future__ import annotations

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


def post_event(ingress: str, type_: str, client: httpx.Client) -> httpx.Response:
    """A binary-mode CloudEvent; a shared ``client`` because a new one per call costs an SSL context."""
    headers = {"ce-id": uuid.uuid4().hex, "ce-source": "/tests", "ce-type": type_, "ce-specversion": "1.0"}
    return client.post(ingress, headers=headers | {"content-type": "application/json"}, content=b'{"n": 1}')


@contextmanager
def running(triggers: Sequence[Trigger], endpoints: dict[str, str]) -> Iterator[RabbitRouter]:
    router = RabbitRouter(triggers, endpoints, amqp_url=AMQP_URL, backoff_scale=0.2)
    router.start()
    try:
        yield router
    finally:
        router.stop()


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
            assert router.wait_idle(120)
        assert statuses == [202] * 500
        ids = subscriber.event_ids()
        assert len(ids) == 500 and len(set(ids)) == 500
        assert router.stats.delivered["booked"] == 500 and router.stats.errors == []
