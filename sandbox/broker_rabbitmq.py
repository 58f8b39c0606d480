"""LocalRouter's RabbitMQ twin: the eventing-rabbitmq topology and dispatch on a real RabbitMQ (DESIGN §4).

Topology, all under ``<namespace>.``: a durable headers exchange ``broker``; per Trigger a durable
quorum queue ``<trigger>`` bound with ``x-match: all`` on its filter, and (with a deadLetterSink) a
fanout exchange ``<trigger>.dlx`` feeding the quorum queue ``<trigger>.dlq``.

The ingress HTTP server's request threads hand events to ``Publisher`` threads (publisher confirms:
202 once confirmed, 500 on a nack or while RabbitMQ is unreachable); per queue a ``Consumer`` feeds
``parallelism`` workers that POST in binary mode, retry like LocalRouter, and ack once the outcome
is final (both in ``rabbit_connections``, which also reconnects them after a RabbitMQ restart).

``wait_idle`` tracks messages by (queue, message id), not by a bare count: an id joins when it is
routed or delivered and leaves when acked, so a redelivery after a restart counts once and an ack
lost with its connection is counted again when the message comes back. Then every queue must be
empty too (messages nobody here counted, such as a publish whose confirm was lost but that landed).
Over STYLE's ~150 lines: topology, ingress and dispatch share that pending set and the stats.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pika  # type: ignore[import-untyped]  # pika ships no stubs; types-pika (1.2.0b1, 2022) predates pika 1.3

from sandbox.amqp_codec import amqp_headers, binary_http_headers, filter_matches, is_retryable, reply_http_headers
from sandbox.rabbit_connections import AMQP_ERRORS, Consumer, Publisher, Requeue, Stopped
from sandbox.router import RouterStats, ingress_event
from sandbox.triggers import Trigger

__all__ = ["RabbitRouter"]


class RabbitRouter:
    def __init__(
        self,
        triggers: Sequence[Trigger],
        endpoints: Mapping[str, str],
        *,
        amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F",
        namespace: str | None = None,
        backoff_scale: float = 1.0,
    ) -> None:
        self._triggers, self._endpoints, self._backoff_scale = triggers, endpoints, backoff_scale
        self._params = pika.URLParameters(amqp_url)
        self.namespace = namespace or f"pn-{uuid.uuid4().hex[:8]}"
        self.exchange = f"{self.namespace}.broker"
        self.stats = RouterStats()
        self._lock = threading.Condition()
        self._pending: set[tuple[str, str]] = set()  # (queue, message id): routed or delivered, not yet acked
        self._stopping = threading.Event()
        self._server = _ingress_server(self._ingest)
        self.ingress_url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def queue_name(self, trigger: Trigger, *, dead: bool = False) -> str:
        return f"{self.namespace}.{trigger.name}" + (".dlq" if dead else "")

    def start(self) -> None:
        self._declare_topology()
        self._client = httpx.Client(limits=httpx.Limits(max_connections=200))
        self._publisher = Publisher(self._params, threads=4)
        self._publisher.start()
        self._consumers = [self._consumer(t, dead=False) for t in self._triggers] + [
            self._consumer(t, dead=True) for t in self._triggers if t.delivery.dead_letter_service
        ]
        for consumer in self._consumers:
            consumer.start()
        serve = partial(self._server.serve_forever, poll_interval=0.05)  # stop() waits up to one poll
        threading.Thread(target=serve, name="rabbit-ingress", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for consumer in self._consumers:
            consumer.stop()
        self._publisher.stop()
        self._client.close()
        self._delete_topology()

    def wait_idle(self, timeout: float) -> bool:
        """True once every routed message is acked (its outcome final) and every queue is empty."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._lock.wait_for(lambda: not self._pending, max(0.0, deadline - time.monotonic())):
                    return False
            if self._queued_messages() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            self._stopping.wait(0.05)  # a message nobody here counted, or RabbitMQ unreachable: poll

    # topology

    def _declare_topology(self) -> None:
        quorum = {"x-queue-type": "quorum"}
        with _channel(self._params) as channel:
            channel.exchange_declare(self.exchange, "headers", durable=True)
            for trigger in self._triggers:
                name = self.queue_name(trigger)
                channel.queue_declare(name, durable=True, arguments=quorum)
                channel.queue_bind(name, self.exchange, arguments={"x-match": "all", **trigger.filter})
                if trigger.delivery.dead_letter_service:
                    dead = self.queue_name(trigger, dead=True)
                    channel.exchange_declare(f"{name}.dlx", "fanout", durable=True)
                    channel.queue_declare(dead, durable=True, arguments=quorum)
                    channel.queue_bind(dead, f"{name}.dlx")

    def _delete_topology(self) -> None:
        with _channel(self._params) as channel:
            for trigger in self._triggers:
                channel.queue_delete(self.queue_name(trigger))
                if trigger.delivery.dead_letter_service:
                    channel.queue_delete(self.queue_name(trigger, dead=True))
                    channel.exchange_delete(f"{self.queue_name(trigger)}.dlx")
            channel.exchange_delete(self.exchange)

    def _queued_messages(self) -> int | None:
        """Ready messages in every queue; None while RabbitMQ is unreachable."""
        names = [self.queue_name(t) for t in self._triggers] + [
            self.queue_name(t, dead=True) for t in self._triggers if t.delivery.dead_letter_service
        ]
        try:
            with _channel(self._params) as channel:
                return sum(int(channel.queue_declare(n, passive=True).method.message_count) for n in names)
        except AMQP_ERRORS:
            return None

    # ingress and publishing

    def _ingest(self, headers: Mapping[str, str], body: bytes) -> int:
        """The ingress's answer: 400 for anything not a CloudEvent, 202 once confirmed, else 500."""
        event = ingress_event(headers, body)
        if event is None:
            return 400
        attributes, data = amqp_headers(event)
        queues = [self.queue_name(t) for t in self._triggers if filter_matches(t.filter, attributes)]
        if not self._publish(self.exchange, attributes, data, queues):
            return 500
        with self._lock:
            self.stats.ingested += 1
        return 202

    def _publish(self, exchange: str, headers: Mapping[str, str], body: bytes, queues: Sequence[str]) -> bool:
        """Tracked before publishing so a fast consumer's ack never finds the queues idle early."""
        message_id = uuid.uuid4().hex
        keys = {(queue, message_id) for queue in queues}
        with self._lock:
            self._pending |= keys
        try:
            confirmed = self._publisher.publish(exchange, headers, body, message_id)
        except Exception as exc:  # noqa: BLE001 - a lost or refused connection answers like a nack, and shows in the stats
            with self._lock:
                self.stats.errors.append(f"publish to {exchange}: {type(exc).__name__}: {exc}")
            confirmed = False
        if not confirmed:  # if it landed after all, its consumer tracks it on delivery
            self._untrack(keys)
        return confirmed

    def _track(self, queue: str, message_id: str) -> None:
        with self._lock:
            self._pending.add((queue, message_id))

    def _untrack(self, keys: set[tuple[str, str]]) -> None:
        with self._lock:
            self._pending -= keys
            self._lock.notify_all()

    # dispatch

    def _consumer(self, trigger: Trigger, *, dead: bool) -> Consumer:
        name = self.queue_name(trigger, dead=dead)
        return Consumer(
            self._params, name, trigger.parallelism,
            handle=partial(self._guarded, self._deliver_dead if dead else self._deliver, trigger),
            on_received=partial(self._track, name),
            on_acked=lambda message_id: self._untrack({(name, message_id)}),
            on_lost=self._record_error,
        )  # fmt: skip

    def _record_error(self, error: str) -> None:
        with self._lock:
            self.stats.errors.append(error)

    def _guarded(self, handle: Callable[[Trigger, dict[str, Any], bytes], None], trigger: Trigger,
                 headers: dict[str, Any], body: bytes) -> None:  # fmt: skip
        try:
            handle(trigger, headers, body)
        except (Stopped, Requeue):
            raise
        except Exception as exc:  # noqa: BLE001 - a router bug shows in the stats; the message is acked like LocalRouter
            self._record_error(f"{trigger.name}: {type(exc).__name__}: {exc}")

    def _deliver(self, trigger: Trigger, headers: dict[str, Any], body: bytes) -> None:
        url = self._endpoints[trigger.service]
        status = self._with_retries(trigger, url, headers, body)
        dead_letter = trigger.delivery.dead_letter_service
        if status is not None and is_retryable(status) and dead_letter:
            extensions = {"knativeerrordest": url, "knativeerrorcode": str(status)}
            if not self._publish(f"{self.queue_name(trigger)}.dlx", {**headers, **extensions}, body,
                                 [self.queue_name(trigger, dead=True)]):  # fmt: skip
                raise Requeue  # not dead-lettered: deliver it again rather than lose it
        with self._lock:
            if status is None:
                self.stats.delivered[trigger.name] += 1
            elif is_retryable(status) and dead_letter:
                self.stats.dead_lettered.append(trigger.name)
            else:
                self.stats.dropped.append((trigger.name, status))

    def _deliver_dead(self, trigger: Trigger, headers: dict[str, Any], body: bytes) -> None:
        assert trigger.delivery.dead_letter_service  # only triggers with a sink get a DLQ
        status = self._with_retries(trigger, self._endpoints[trigger.delivery.dead_letter_service], headers, body)
        if status is not None:  # the sink refused it too: lost
            with self._lock:
                self.stats.dropped.append((trigger.name, int(headers.get("knativeerrorcode", status))))

    def _with_retries(self, trigger: Trigger, url: str, headers: Mapping[str, Any], body: bytes) -> int | None:
        """The final status: None for a 2xx, else the last error status (599: network error)."""
        delivery = trigger.delivery
        status = 599
        for attempt in range(delivery.retry + 1):
            if attempt:
                with self._lock:
                    self.stats.retried[trigger.name] += 1
                factor = 2**attempt if delivery.exponential else attempt  # eventing-rabbitmq: d·2^n or d·n
                if self._stopping.wait(delivery.backoff_delay_s * factor * self._backoff_scale):
                    raise Stopped
            status = self._post(url, headers, body, delivery.timeout_s)
            if status < 300 or not is_retryable(status):
                return None if status < 300 else status
        return status

    def _post(self, url: str, headers: Mapping[str, Any], body: bytes, limit_s: float) -> int:
        try:
            response = self._client.post(url, headers=binary_http_headers(headers), content=body, timeout=limit_s)
            if response.is_success and "ce-type" in response.headers:
                reply = reply_http_headers(response.headers)
                if self._client.post(self.ingress_url, headers=reply, content=response.content).status_code != 202:
                    return 502  # the reply was not accepted: deliver again
        except httpx.HTTPError:
            return 599
        return response.status_code


@contextmanager
def _channel(params: pika.URLParameters) -> Iterator[Any]:
    """A short-lived connection and channel for topology work."""
    connection = pika.BlockingConnection(params)
    try:
        yield connection.channel()
    finally:
        connection.close()


class _IngressServer(ThreadingHTTPServer):
    request_queue_size = 256  # a burst of publishers opens many connections at once
    daemon_threads = True


def _ingress_server(ingest: Callable[[Mapping[str, str], bytes], int]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = ingest(headers, body) if self.path == "/" else 404
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def refuse(self) -> None:  # the real ingress: POST only
            self.send_response(405)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse  # noqa: N815 - http.server's handler names

        def log_message(self, *args: object) -> None:
            pass

    return _IngressServer(("127.0.0.1", 0), Handler)
