"""The func-python function shape every step shares: ``start``, ``handle``, ``ready``, ``alive``, ``stop``.

Functions are served by func-python's HTTP middleware and decode CloudEvents here, because its
CloudEvent middleware answers 400 to anything that is not one, and the RabbitMQ broker acks and
drops a 400. This is the one place errors become status codes (DESIGN §4):

    handled                                  → 200
    not an event we accept (kept + alerted)  → 202
    dead letter (kept + alerted)             → 202
    retryable: database, broker, provider    → 503  (the broker retries, then dead-letters)
    anything else                            → 500  (same)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from cloudevents.core.base import BaseCloudEvent

from patient_notify.codec import decode_http
from patient_notify.db import Database
from patient_notify.errors import DatabaseUnavailable, EventRejected, ProviderRetryable, PublishError
from patient_notify.lifecycle import FunctionLifecycle
from patient_notify.outbox import Publisher
from patient_notify.records import record_dead_letter, record_rejected
from patient_notify.settings import Settings

__all__ = ["ASGIReceive", "ASGISend", "EventFunction", "Route", "Runtime", "read_body"]

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Settings)
Route = Callable[[BaseCloudEvent], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
_RETRYABLE = (DatabaseUnavailable, PublishError, ProviderRetryable)


@dataclass(frozen=True)
class Runtime:
    """What ``start`` builds once and every route shares."""

    name: str
    db: Database
    publisher: Publisher
    http: httpx.AsyncClient


class EventFunction(FunctionLifecycle[S, Runtime]):
    def __init__(self, name: str, settings: type[S], wire: Callable[[S, Runtime], Mapping[str, Route]]) -> None:
        super().__init__(name, settings)
        self._wire = wire
        self._routes: Mapping[str, Route] = {}

    def assemble(self, settings: S, db: Database, http: httpx.AsyncClient) -> Runtime:
        publisher = Publisher(db, str(settings.broker_url), http, settings.publish_concurrency)
        runtime = Runtime(self.name, db, publisher, http)
        self._routes = self._wire(settings, runtime)
        return runtime

    async def handle(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        if scope.get("method") != "POST":
            await _respond(send, 405, {"error": "POST a CloudEvent"})
            return
        body = await read_body(receive)
        if body is None:  # the sender hung up mid-request (its timeout): it will retry; nothing to keep
            log.warning("request.abandoned", extra={"function": self.name})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status, outcome = await self.process(headers, body)
        await _respond(send, status, {"outcome": outcome})

    async def process(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Decode, route and handle one request; the error → status mapping lives here alone."""
        runtime = self.serving
        if runtime is None:
            return 503, "not ready"
        event: BaseCloudEvent | None = None
        try:
            try:
                event = decode_http(headers, body)
                if event.get_extension("knativeerrordest"):
                    await record_dead_letter(runtime, event)
                    return 202, "dead letter recorded"
                route = self._routes.get(event.get_type())
                if route is None:
                    raise EventRejected("unknown event type", event_type=event.get_type())
                await route(event)
                return 200, "handled"
            except EventRejected as rejected:
                await record_rejected(runtime, rejected, event, headers, body)
                return 202, "rejected and recorded"
        except _RETRYABLE as exc:
            log.warning("event.retry", extra=_context(self.name, event, exc))
            return 503, "retry"
        except Exception as exc:
            log.exception("event.failed", extra=_context(self.name, event, exc))
            return 500, "failed"


def _context(name: str, event: BaseCloudEvent | None, exc: BaseException) -> dict[str, Any]:
    ids = {"event_type": event.get_type(), "event_id": event.get_id()} if event else {}
    return {"function": name, "error_type": type(exc).__name__, **ids}


async def read_body(receive: ASGIReceive) -> bytes | None:
    """The whole body, or None if the client disconnected before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: ASGISend, status: int, payload: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
