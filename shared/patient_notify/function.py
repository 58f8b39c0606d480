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

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from cloudevents.core.base import BaseCloudEvent

from patient_notify.codec import decode_http
from patient_notify.db import Database, migrate
from patient_notify.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    EventRejected,
    ProviderRetryable,
    PublishError,
)  # fmt: skip
from patient_notify.logging import configure_logging
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


class EventFunction(Generic[S]):
    def __init__(self, name: str, settings: type[S], wire: Callable[[S, Runtime], Mapping[str, Route]]) -> None:
        self.name = name
        self._settings_type = settings
        self._wire = wire
        self._routes: Mapping[str, Route] = {}
        self._runtime: Runtime | None = None
        self._database_url = ""
        self._not_ready: str | None = "not started"
        self._config_error: str | None = None
        self._closing: asyncio.Task[None] | None = None

    def start(self, cfg: Mapping[str, str]) -> None:
        """Validate settings, build adapters, migrate.

        A bad setting is logged naming the variable and leaves the function dead (liveness fails,
        so Kubernetes shows a crash loop): hypercorn would otherwise serve on without ``start``.
        """
        configure_logging(cfg.get("LOG_LEVEL") or "INFO")
        try:
            settings = self._settings_type.from_cfg(cfg)
        except ConfigError as exc:
            self._config_error = self._not_ready = f"invalid configuration: {exc}"
            context = {"function": self.name, "variable": exc.variable, "reason": exc.reason}
            log.error("start.config_invalid", extra=context)
            return
        configure_logging(settings.log_level)
        self._database_url = str(settings.database_url)
        db = Database(self._database_url, max_size=settings.db_pool_max)
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
        publisher = Publisher(db, str(settings.broker_url), http, settings.publish_concurrency)
        self._runtime = Runtime(self.name, db, publisher, http)
        self._routes = self._wire(settings, self._runtime)
        self._migrate()

    def _migrate(self) -> None:
        try:
            applied = migrate(self._database_url)
        except DatabaseError as exc:
            self._not_ready = f"database: {type(exc).__name__}"
            log.error("start.migrate_failed", extra={"function": self.name, "error_type": type(exc).__name__})
        else:
            self._not_ready = None
            log.info("start.ready", extra={"function": self.name, "applied": applied})

    def alive(self) -> tuple[bool, str]:
        return self._config_error is None, self._config_error or "OK"

    def ready(self) -> tuple[bool, str]:
        if self._not_ready and self._runtime is not None:
            self._migrate()  # the database may be back: a readiness probe retries
        return self._not_ready is None, self._not_ready or "OK"

    def stop(self) -> None:
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            # func-python's stop() is synchronous; the loop ends soon after, so keep a reference
            # and let the close finish if it can (connections are dropped with the process anyway).
            self._closing = asyncio.get_running_loop().create_task(_close(runtime))

    async def aclose(self) -> None:
        """Close the pool and HTTP client from inside the loop (tests, embedding)."""
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            await _close(runtime)

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
        runtime = self._runtime
        if runtime is None or self._not_ready:
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


async def _close(runtime: Runtime) -> None:
    await runtime.http.aclose()
    await runtime.db.close()


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
