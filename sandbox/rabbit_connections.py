"""RabbitRouter's pika connections, each reopened after RabbitMQ restarts; one thread per connection.

pika's BlockingConnection is not thread-safe, so each connection lives on one thread. A lost
connection is reopened after a bounded exponential ``Backoff`` (50 ms doubling to 1 s), never in a
busy loop.

- ``Publisher``: threads with a confirming channel each. ``publish`` answers True once RabbitMQ
  confirms, False on a nack, and raises when the connection is lost or still down: a publish
  never counts as done without its confirm.
- ``Consumer``: one queue's dispatcher. Its thread consumes (prefetch 100) and feeds ``workers``
  threads; each ack goes back to the consumer thread for the channel the message came on. When
  that channel is lost, RabbitMQ requeues its unacked messages and redelivers them on the next
  one (at least once); work and acks still held for the old channel are dropped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import pika  # type: ignore[import-untyped]  # pika ships no stubs; types-pika (1.2.0b1, 2022) predates pika 1.3

__all__ = ["AMQP_ERRORS", "Consumer", "Publisher", "Requeue", "Stopped", "Unavailable"]

AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)


class Stopped(Exception):
    """The router is stopping: leave the message unacked so RabbitMQ redelivers it."""


class Requeue(Exception):
    """Hand the message back to RabbitMQ now (a nack with requeue): it is delivered again."""


class Unavailable(Exception):
    """RabbitMQ could not be reached lately; the next attempt waits for the backoff."""


class Backoff:
    """Bounded exponential delays between reconnect attempts."""

    def __init__(self, first_s: float = 0.05, cap_s: float = 1.0) -> None:
        self._first, self._cap, self._next = first_s, cap_s, first_s

    def next(self) -> float:
        delay, self._next = self._next, min(self._cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self._first


@dataclass(frozen=True)
class _Received:
    channel: Any  # the channel it came on: its delivery tag means nothing on another
    tag: int
    message_id: str | None
    headers: dict[str, Any]
    body: bytes


_Publish = tuple[str, Mapping[str, str], bytes, str, "Future[bool]"]


class Publisher:
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

    def publish(self, exchange: str, headers: Mapping[str, str], body: bytes, message_id: str) -> bool:
        future: Future[bool] = Future()
        self._requests.put((exchange, headers, body, message_id, future))
        return future.result(timeout=30)

    def _run(self) -> None:
        link = _ConfirmingLink(self._params)
        while (request := self._next(link)) is not None:
            exchange, headers, body, message_id, future = request
            try:
                future.set_result(link.publish(exchange, headers, body, message_id))
            except Exception as exc:  # noqa: BLE001 - hand any failure to the waiting caller
                future.set_exception(exc)
        link.close()

    def _next(self, link: _ConfirmingLink) -> _Publish | None:
        while True:
            try:
                return self._requests.get(timeout=0.2)
            except queue.Empty:
                link.keep_alive()


class _ConfirmingLink:
    """One publisher thread's connection and confirming channel, opened on demand."""

    def __init__(self, params: pika.URLParameters) -> None:
        self._params, self._backoff = params, Backoff()
        self._channel: Any = None
        self._retry_at = 0.0

    def publish(self, exchange: str, headers: Mapping[str, str], body: bytes, message_id: str) -> bool:
        channel = self._open()
        properties = pika.BasicProperties(
            headers=dict(headers), delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id
        )
        try:
            channel.basic_publish(exchange, "", body, properties=properties)
        except pika.exceptions.NackError:
            return False
        except AMQP_ERRORS:
            self._lost()
            raise
        self._backoff.reset()
        return True

    def keep_alive(self) -> None:
        """Heartbeats while idle; notices a connection the broker closed."""
        if self._channel is not None:
            try:
                self._channel.connection.process_data_events(0)
            except AMQP_ERRORS:
                self._lost()

    def close(self) -> None:
        close_quietly(self._channel)

    def _open(self) -> Any:
        if self._channel is None:
            if time.monotonic() < self._retry_at:
                raise Unavailable("RabbitMQ unreachable; waiting to reconnect")
            try:
                self._channel = open_channel(self._params, lambda channel: channel.confirm_delivery())
            except AMQP_ERRORS:
                self._lost()
                raise
        return self._channel

    def _lost(self) -> None:
        close_quietly(self._channel)
        self._channel = None
        self._retry_at = time.monotonic() + self._backoff.next()


class Consumer:
    """One queue's dispatcher: ``handle`` runs on ``workers`` threads; returning acks, ``Requeue`` nacks.

    ``on_received`` and ``on_acked`` get each delivery's message id (on the consumer thread), and
    ``on_lost`` a description of each lost connection.
    """

    def __init__(
        self, params: pika.URLParameters, queue_name: str, workers: int,
        handle: Callable[[dict[str, Any], bytes], None],
        on_received: Callable[[str], None], on_acked: Callable[[str], None], on_lost: Callable[[str], None],
    ) -> None:  # fmt: skip
        self._params, self._queue_name = params, queue_name
        self._handle, self._on_received, self._on_acked, self._on_lost = handle, on_received, on_acked, on_lost
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=queue_name)
        self._closing = threading.Event()  # take no more messages; they stay in the queue
        self._stopping = threading.Event()
        self._channel: Any = None  # the current channel; None while reconnecting
        self._thread = threading.Thread(target=self._run, name=f"consume-{queue_name}", daemon=True)

    def start(self) -> None:
        self._open()
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stopping.set()
        self._thread.join(10)

    def _open(self) -> None:
        self._channel = open_channel(self._params, self._subscribe)

    def _subscribe(self, channel: Any) -> None:
        channel.basic_qos(prefetch_count=100)
        channel.basic_consume(self._queue_name, self._on_message)

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                if self._channel is None:
                    self._open()
                    backoff.reset()
                self._channel.connection.process_data_events(time_limit=0.1)
                if not self._channel.consumer_tags:
                    raise pika.exceptions.ConsumerCancelled("the broker cancelled the consumer")
            except Exception as exc:  # noqa: BLE001 - a consumer thread must never die: its queue would stall
                # AMQP and socket errors, and whatever pika raises from a dead connection
                # (ValueError('Timeout closed before call') after a SIGKILLed node).
                if self._channel is not None:
                    self._on_lost(f"consumer {self._queue_name}: connection lost: {type(exc).__name__}: {exc}")
                close_quietly(self._channel)
                self._channel = None  # unacked messages go back to the queue
                self._stopping.wait(backoff.next())
        close_quietly(self._channel)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        if self._closing.is_set():
            return
        delivery = _Received(channel, method.delivery_tag, properties.message_id, dict(properties.headers or {}), body)
        if delivery.message_id:
            self._on_received(delivery.message_id)
        self._pool.submit(self._work, delivery)

    def _work(self, delivery: _Received) -> None:
        if delivery.channel is not self._channel:
            return  # its channel is gone: RabbitMQ redelivers it on the new one
        try:
            self._handle(delivery.headers, delivery.body)
            settle = partial(self._settle, delivery, ack=True)
        except Stopped:
            return
        except Requeue:
            settle = partial(self._settle, delivery, ack=False)
        with suppress(*AMQP_ERRORS):  # the connection is gone: RabbitMQ redelivers it
            delivery.channel.connection.add_callback_threadsafe(settle)

    def _settle(self, delivery: _Received, *, ack: bool) -> None:
        if delivery.channel is not self._channel or not delivery.channel.is_open:
            return  # stopping or reconnected: RabbitMQ redelivers it
        try:
            if ack:
                delivery.channel.basic_ack(delivery.tag)
            else:
                delivery.channel.basic_nack(delivery.tag, requeue=True)
        except AMQP_ERRORS:
            return  # the consumer loop notices the lost connection
        if ack and delivery.message_id:
            self._on_acked(delivery.message_id)


def open_channel(params: pika.URLParameters, setup: Callable[[Any], object]) -> Any:
    """A channel on a new connection, set up by ``setup``; the connection is closed if that fails."""
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        setup(channel)
    except BaseException:
        with suppress(*AMQP_ERRORS):
            connection.close()
        raise
    return channel


def close_quietly(channel: Any) -> None:
    """Close a channel's connection, which may already be gone."""
    if channel is not None:
        with suppress(*AMQP_ERRORS):
            channel.connection.close()
