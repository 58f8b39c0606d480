"""Dead-letter queue depths from RabbitMQ (pika): a passive declare per queue, never a consumer.

A missing queue closes its channel (404) and is reported as unreadable; the others are still
read on new channels. A broker that cannot be reached is one error for all. Nothing raises: the
monitor turns both into alerts. Blocking (pika), so the monitor runs it in a thread, with short
socket and connection timeouts so a dead broker costs seconds, not the tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import pika  # type: ignore[import-untyped]  # pika ships no stubs; types-pika (1.2.0b1, 2022) predates pika 1.3

from patient_notify.domain.monitoring import QueueReading

__all__ = ["QueueDepths", "RabbitQueueDepths", "amqp_parameters"]

_AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)
# What pika's URL parsing raises: int() and float() of options, literal_eval of ssl_options and
# client_properties, a missing path segment, the TLS files ssl_options names.
_URL_ERRORS = (ValueError, LookupError, TypeError, SyntaxError, OSError)


class QueueDepths(Protocol):
    def read(self, queues: Sequence[str]) -> tuple[list[QueueReading], str | None]:
        """Each queue's depth, or the broker's error (then the readings are empty)."""
        ...


class RabbitQueueDepths:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._params = amqp_parameters(url)
        self._params.socket_timeout = timeout_s
        self._params.stack_timeout = timeout_s * 2
        self._params.blocked_connection_timeout = timeout_s
        self._params.connection_attempts = 1

    def read(self, queues: Sequence[str]) -> tuple[list[QueueReading], str | None]:
        try:
            connection = pika.BlockingConnection(self._params)
        except _AMQP_ERRORS as exc:
            return [], f"broker unreachable ({type(exc).__name__})"
        try:
            return [_depth(connection, name) for name in queues], None
        except _AMQP_ERRORS as exc:  # the connection itself dropped mid-way
            return [], f"broker connection lost ({type(exc).__name__})"
        finally:
            if connection.is_open:
                connection.close()


def amqp_parameters(url: str) -> Any:
    """pika's parameters for an amqp:// or amqps:// URL; ValueError, never echoing the URL, if it is not one.

    pika itself takes http:// and a bare word too, and fails on the way with anything from
    IndexError to ssl.SSLError; the settings call this so a bad RABBITMQ_URL is named at start.
    """
    try:
        parts = urlsplit(url)
        amqp = parts.scheme in ("amqp", "amqps") and bool(parts.hostname)
        params = pika.URLParameters(url) if amqp else None
    except _URL_ERRORS as exc:  # its message may quote the URL, credentials included: keep only the type
        raise ValueError(f"not a valid amqp:// or amqps:// URL ({type(exc).__name__})") from None
    if params is None:
        raise ValueError("not an amqp:// or amqps:// URL with a host")
    return params


def _depth(connection: Any, queue: str) -> QueueReading:
    channel = connection.channel()
    try:
        declared = channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:  # 404 NOT_FOUND, 403 ACCESS_REFUSED: this queue only
        return QueueReading(queue, None, f"{exc.reply_code} {str(exc.reply_text).split(' - ')[0]}")
    depth = int(declared.method.message_count)
    channel.close()
    return QueueReading(queue, depth)
