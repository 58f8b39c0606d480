"""The ceiling, measured in the same run: what RabbitMQ and func-python do with none of our code.

- pika: ``count`` persistent messages of the given headers and body published with confirms to a
  throwaway quorum queue by as many threads as the local broker publishes with, and consumed
  (prefetch 100, one ack each) at the same time, as the broker's Consumer does; the queue is
  deleted afterwards.
- HTTP: ``count`` binary-mode POSTs to a no-op func-python function (``bench/noop``), from as many
  threads as the sender Trigger's parallelism, through one shared httpx client, as the broker
  delivers.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pika  # type: ignore[import-untyped]  # pika ships no stubs
from cloudevents.core.bindings.http import to_binary_event

from patient_notify.codec import new_event
from patient_notify.events import send_request
from sandbox.amqp_codec import amqp_headers
from sandbox.processes import ROOT, FunctionProcess
from sandbox.triggers import load_triggers

__all__ = ["PUBLISHER_THREADS", "http_ceiling", "measure_ceiling", "pika_ceiling"]

PUBLISHER_THREADS = 4  # RabbitRouter's Publisher(threads=4)
SENDER_TRIGGER = "sms-sender"  # its parallelism is the HTTP ceiling's concurrency


def measure_ceiling(amqp_url: str, count: int, logs: Path) -> dict[str, Any]:
    """Both ceilings for ``count`` messages shaped like an SMS send event."""
    event = new_event(send_request(123456, "appt-123456", "sms"), source="/patient-notify/dispatcher", subject="123456")
    amqp, body = amqp_headers(event)
    http = to_binary_event(event)
    [trigger] = [t for t in load_triggers(ROOT / "knative") if t.name == SENDER_TRIGGER]
    return {
        "messages": count, "message_bytes": len(body) + sum(len(k) + len(v) for k, v in amqp.items()),
        "pika_per_s": round(pika_ceiling(amqp_url, count, amqp, body), 1),
        "http_per_s": round(http_ceiling(count, trigger.parallelism, http.headers, http.body, logs), 1),
        "http_concurrency": trigger.parallelism,
    }  # fmt: skip


def pika_ceiling(amqp_url: str, count: int, headers: Mapping[str, str], body: bytes) -> float:
    """Messages per second, first publish to last ack."""
    params, queue = pika.URLParameters(amqp_url), f"pn-bench-{uuid.uuid4().hex[:8]}.ceiling"
    _on_channel(params, lambda ch: ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"}))
    try:
        consumed = threading.Event()
        consumer = threading.Thread(target=_consume, args=(params, queue, count, consumed), daemon=True)
        consumer.start()
        started = time.perf_counter()
        shares = [count // PUBLISHER_THREADS + (n < count % PUBLISHER_THREADS) for n in range(PUBLISHER_THREADS)]
        with ThreadPoolExecutor(PUBLISHER_THREADS) as pool:
            list(pool.map(lambda n: _publish(params, queue, n, dict(headers), body), shares))
        if not consumed.wait(120):
            raise TimeoutError("the ceiling's consumer did not get every message")
        return count / (time.perf_counter() - started)
    finally:
        _on_channel(params, lambda ch: ch.queue_delete(queue))


def _on_channel(params: pika.URLParameters, act: Callable[[Any], object]) -> None:
    connection = pika.BlockingConnection(params)
    try:
        act(connection.channel())
    finally:
        connection.close()


def _publish(params: pika.URLParameters, queue: str, count: int, headers: dict[str, str], body: bytes) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()
    for n in range(count):
        properties = pika.BasicProperties(headers=headers, delivery_mode=pika.DeliveryMode.Persistent,
                                          message_id=f"{n}")  # fmt: skip
        channel.basic_publish("", queue, body, properties=properties)  # blocks until confirmed
    connection.close()


def _consume(params: pika.URLParameters, queue: str, count: int, done: threading.Event) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=100)
    for received, (method, _, _) in enumerate(channel.consume(queue), start=1):
        channel.basic_ack(method.delivery_tag)
        if received == count:
            break
    channel.cancel()
    connection.close()
    done.set()


def http_ceiling(count: int, concurrency: int, headers: Mapping[str, str], body: bytes, logs: Path) -> float:
    """Requests per second to the no-op function, all answered 200."""
    with ExitStack() as stack:
        log = stack.enter_context((logs / "noop.log").open("wb"))
        process = FunctionProcess("../bench/noop", {"LOG_LEVEL": "WARNING"}, log)  # the path is under functions/
        process.start()
        stack.callback(process.stop)
        process.wait_ready(120)
        client = stack.enter_context(httpx.Client(limits=httpx.Limits(max_connections=200)))

        def post(_: int) -> int:
            return client.post(process.url, headers=dict(headers), content=body).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            statuses = set(pool.map(post, range(count)))
        elapsed = time.perf_counter() - started
    if statuses != {200}:
        raise RuntimeError(f"the no-op function answered {statuses}")
    return count / elapsed
