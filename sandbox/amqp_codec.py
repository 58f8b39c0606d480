"""CloudEvents ↔ AMQP messages as eventing-rabbitmq carries them (DESIGN §4); pure, no I/O.

Attributes travel as AMQP headers by their plain name (``type``, ``source``, extensions by their
own name); the body is the event's data bytes. Binary HTTP mode is the pivot: ``ce-x`` ↔ ``x``,
``content-type`` ↔ ``datacontenttype``.
"""

from __future__ import annotations

from collections.abc import Mapping

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import to_binary_event

__all__ = ["amqp_headers", "binary_http_headers", "filter_matches", "is_retryable", "reply_http_headers"]

_RETRY_STATUSES = frozenset({404, 408, 409, 429})


def amqp_headers(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    """The AMQP headers and body that carry ``event``."""
    message = to_binary_event(event)
    headers = {_attribute_name(key): value for key, value in message.headers.items()}
    return {k: v for k, v in headers.items() if k}, message.body


def binary_http_headers(headers: Mapping[str, object]) -> dict[str, str]:
    """The binary-mode HTTP headers for an event that arrived with these AMQP headers.

    RabbitMQ's own ``x-`` headers (a quorum queue stamps ``x-delivery-count`` on a redelivery)
    are not event attributes and are left out, as eventing-rabbitmq's dispatcher does
    (pkg/rabbit/message.go): posted as ``ce-x-delivery-count`` they would make the event invalid.
    """
    return {_http_name(key): str(value) for key, value in headers.items() if not key.lower().startswith("x-")}


def reply_http_headers(response_headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a binary reply event worth re-posting to the ingress (hop-by-hop ones dropped)."""
    return {k: v for k, v in response_headers.items() if k.lower().startswith("ce-") or k.lower() == "content-type"}


def filter_matches(filter_: Mapping[str, str], headers: Mapping[str, object]) -> bool:
    """What a headers exchange with ``x-match: all`` does: every key present with an equal value."""
    return all(key in headers and headers[key] == value for key, value in filter_.items())


def is_retryable(status: int) -> bool:
    """5xx, 404, 408, 409, 429 and network errors (599 here) are retried; other 4xx are final."""
    return status >= 500 or status in _RETRY_STATUSES


def _attribute_name(http_header: str) -> str:
    key = http_header.lower()
    if key == "content-type":
        return "datacontenttype"
    return key[3:] if key.startswith("ce-") else ""


def _http_name(attribute: str) -> str:
    return "content-type" if attribute == "datacontenttype" else f"ce-{attribute}"
