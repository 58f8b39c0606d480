"""LocalRouter's RabbitMQ twin: the eventing-rabbitmq topology and dispatch on a real RabbitMQ (DESIGN §4).

Topology, all under ``<namespace>.``: a durable headers exchange ``broker``; per Trigger a durable
quorum queue ``<trigger>`` bound with ``x-match: all`` on its filter, and (with a deadLetterSink) a
fanout exchange ``<trigger>.dlx`` feeding the quorum queue ``<trigger>.dlq``.

Threads, one pika connection each (pika is not thread-safe): the ingress HTTP server's request
threads hand events to one publisher thread (publisher confirms; 202 once confirmed, 500 on nack);
per queue one consumer thread (prefetch 100) feeds a pool of ``parallelism`` workers that POST in
binary mode, retry like LocalRouter, and hand the ack back with ``add_callback_threadsafe`` once
the outcome is final. ``wait_idle`` counts messages routed against messages acked, then checks
that every queue is empty. One module over STYLE's ~150 lines: the three parts share the counters.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pika  # type: ignore[import-untyped]  # pika ships no stubs; types-pika (1.2.0b1, 2022) predates pika 1.3
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from sandbox.amqp_codec import amqp_headers, binary_http_headers, filter_matches, is_retryable, reply_http_headers
from sandbox.router import RouterStats
from sandbox.triggers import Trigger

__all__ = ["RabbitRouter"]

_Publish = tuple[str, Mapping[str, str], bytes, "Future[bool]"]


class _Stopped(Exception):
    """The router is stopping: leave the message unacked so RabbitMQ redelivers it."""


class _Publisher:
    """``threads`` threads, each with its own confirming channel; ``publish`` blocks until confirmed or nacked.

    Several channels because a quorum queue confirms only after its log is synced (~1.5 ms here), and
    one channel waits for each confirm in turn: concurrent ingress requests would queue behind it.
    """

    def __init__(self, params: pika.URLParameters, threads: int) -> None:
        self._params = params
        self._requests: queue.Queue[_Publish | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name=f"rabbit-publisher-{n}", daemon=True) for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for _ in self._threads:
            self._requests.put(None)
        for thread in self._threads:
            thread.join(10)

    def publish(self, exchange: str, headers: Mapping[str, str], body: bytes) -> bool:
        future: Future[bool] = Future()
        self._requests.put((exchange, headers, body, future))
        return future.result(timeout=30)

    def _run(self) -> None:
        connection = pika.BlockingConnection(self._params)
        channel = connection.channel()
        channel.confirm_delivery()
        while (request := self._next(connection)) is not None:
            exchange, headers, body, future = request
            properties = pika.BasicProperties(headers=dict(headers), delivery_mode=pika.DeliveryMode.Persistent)
            try:
                channel.basic_publish(exchange, "", body, properties=properties)
                future.set_result(True)
            except pika.exceptions.NackError:
                future.set_result(False)
            except Exception as exc:  # noqa: BLE001 - hand any failure to the waiting caller
                future.set_exception(exc)
        connection.close()

    def _next(self, connection: Any) -> _Publish | None:
        while True:
            try:
                return self._requests.get(timeout=0.2)
            except queue.Empty:
                connection.process_data_events(0)  # heartbeats


class _Consumer:
    """One queue's dispatcher: a consumer thread and ``workers`` threads; acks go back to its thread."""

    def __init__(
        self,
        params: pika.URLParameters,
        queue_name: str,
        workers: int,
        handle: Callable[[dict[str, Any], bytes], None],
        on_acked: Callable[[], None],
    ) -> None:
        self._params, self._queue_name = params, queue_name
        self._handle, self._on_acked = handle, on_acked
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=queue_name)
        self._closing = threading.Event()  # take no more messages; they stay in the queue
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"consume-{queue_name}", daemon=True)

    def start(self) -> None:
        self._connection = pika.BlockingConnection(self._params)
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=100)
        self._channel.basic_consume(self._queue_name, self._on_message)
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._connection.process_data_events(time_limit=0.1)
        self._connection.close()  # unacked messages go back to the queue

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        if not self._closing.is_set():
            self._pool.submit(self._work, method.delivery_tag, dict(properties.headers or {}), body)

    def _work(self, delivery_tag: int, headers: dict[str, Any], body: bytes) -> None:
        try:
            self._handle(headers, body)
        except _Stopped:
            return
        self._connection.add_callback_threadsafe(partial(self._ack, delivery_tag))

    def _ack(self, delivery_tag: int) -> None:
        if not self._channel.is_open:
            return  # stopping: RabbitMQ redelivers it
        self._channel.basic_ack(delivery_tag)
        self._on_acked()


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
        self._pending = 0  # messages routed to a queue and not yet acked
        self._stopping = threading.Event()
        self._server = _ingress_server(self._ingest)
        self.ingress_url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def queue_name(self, trigger: Trigger, *, dead: bool = False) -> str:
        return f"{self.namespace}.{trigger.name}" + (".dlq" if dead else "")

    def start(self) -> None:
        self._declare_topology()
        self._client = httpx.Client(limits=httpx.Limits(max_connections=200))
        self._publisher = _Publisher(self._params, threads=4)
        self._publisher.start()
        self._consumers = [self._consumer(t, dead=False) for t in self._triggers] + [
            self._consumer(t, dead=True) for t in self._triggers if t.delivery.dead_letter_service
        ]
        for consumer in self._consumers:
            consumer.start()
        threading.Thread(target=self._server.serve_forever, name="rabbit-ingress", daemon=True).start()

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
                if not self._lock.wait_for(lambda: self._pending == 0, max(0.0, deadline - time.monotonic())):
                    return False
            if self._queued_messages() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)  # a message routed by someone else; not ours to count

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

    def _queued_messages(self) -> int:
        names = [self.queue_name(t) for t in self._triggers] + [
            self.queue_name(t, dead=True) for t in self._triggers if t.delivery.dead_letter_service
        ]
        with _channel(self._params) as channel:
            return sum(channel.queue_declare(n, passive=True).method.message_count for n in names)

    # ingress and publishing

    def _ingest(self, headers: Mapping[str, str], body: bytes) -> int:
        """The ingress's answer: 400 for anything not a CloudEvent, 202 once confirmed, 500 on nack."""
        try:
            event = from_http_event(HTTPMessage(headers=dict(headers), body=body))
        except Exception:  # noqa: BLE001 - the real ingress answers 400 to anything that is not a CloudEvent
            return 400
        attributes, data = amqp_headers(event)
        routed = sum(filter_matches(t.filter, attributes) for t in self._triggers)
        if not self._publish(self.exchange, attributes, data, routed):
            return 500
        with self._lock:
            self.stats.ingested += 1
        return 202

    def _publish(self, exchange: str, headers: Mapping[str, str], body: bytes, routed: int) -> bool:
        """Counted before publishing so a fast consumer's ack never finds the count at zero early."""
        self._count(routed)
        try:
            confirmed = self._publisher.publish(exchange, headers, body)
        except Exception as exc:  # noqa: BLE001 - a broken channel answers like a nack, and shows in the stats
            self.stats.errors.append(f"publish to {exchange}: {type(exc).__name__}: {exc}")
            confirmed = False
        if not confirmed:
            self._count(-routed)
        return confirmed

    def _count(self, delta: int) -> None:
        with self._lock:
            self._pending += delta
            self._lock.notify_all()

    # dispatch

    def _consumer(self, trigger: Trigger, *, dead: bool) -> _Consumer:
        handle = self._deliver_dead if dead else self._deliver
        return _Consumer(
            self._params,
            self.queue_name(trigger, dead=dead),
            trigger.parallelism,
            partial(self._guarded, handle, trigger),
            partial(self._count, -1),
        )

    def _guarded(self, handle: Callable[[Trigger, dict[str, Any], bytes], None], trigger: Trigger,
                 headers: dict[str, Any], body: bytes) -> None:  # fmt: skip
        try:
            handle(trigger, headers, body)
        except _Stopped:
            raise
        except Exception as exc:  # noqa: BLE001 - a router bug shows in the stats; the message is acked like LocalRouter
            with self._lock:
                self.stats.errors.append(f"{trigger.name}: {type(exc).__name__}: {exc}")

    def _deliver(self, trigger: Trigger, headers: dict[str, Any], body: bytes) -> None:
        url = self._endpoints[trigger.service]
        status = self._with_retries(trigger, url, headers, body)
        dead_letter = trigger.delivery.dead_letter_service
        if status is not None and is_retryable(status) and dead_letter:
            extensions = {"knativeerrordest": url, "knativeerrorcode": str(status)}
            if not self._publish(f"{self.queue_name(trigger)}.dlx", {**headers, **extensions}, body, 1):
                raise RuntimeError("dead-letter exchange nacked")
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
                factor = 2 ** (attempt - 1) if delivery.exponential else attempt
                if self._stopping.wait(delivery.backoff_delay_s * factor * self._backoff_scale):
                    raise _Stopped
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

        def log_message(self, *args: object) -> None:
            pass

    return _IngressServer(("127.0.0.1", 0), Handler)
