"""The func-python function shape for plain HTTP routes (provider webhooks), beside ``EventFunction``.

``EventFunction`` decodes CloudEvents from the broker; a webhook is a form or JSON POST from a
provider (Twilio, SNS), answered with a status the provider acts on. Each route is ``POST <path>``
to a handler returning an ``HttpResponse``. Errors become status codes here alone:

    the route's answer                       → its own status (200; 403 for a bad signature, kept)
    not started, or not ready                → 503  (whatever the path)
    unknown path · not POST · body too large → 404 · 405 · 413
    DatabaseError, ProviderRetryable         → 503  (the provider retries: what it sent is not lost)
    anything else                            → 500
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import AnyHttpUrl

from patient_notify.db import Database
from patient_notify.errors import DatabaseError, ProviderRetryable
from patient_notify.function import ASGIReceive, ASGISend
from patient_notify.lifecycle import FunctionLifecycle
from patient_notify.settings import Settings

__all__ = ["MAX_BODY_BYTES", "Handler", "HttpFunction", "HttpRequest", "HttpResponse", "HttpRuntime", "HttpSettings"]

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20  # an SNS message is at most 256 KiB, a Twilio callback a few hundred bytes
_RETRYABLE = (DatabaseError, ProviderRetryable)


@dataclass(frozen=True)
class HttpRequest:
    path: str
    query: str  # the raw query string, without "?"
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class HttpRuntime:
    """What ``start`` builds once and every route shares."""

    name: str
    db: Database
    http: httpx.AsyncClient


class HttpSettings(Settings):
    # An HTTP function publishes nothing, so it needs no broker; the base makes it required.
    broker_url: AnyHttpUrl | None = None  # type: ignore[assignment]  # narrowing back to optional is the point


S = TypeVar("S", bound=HttpSettings)


class HttpFunction(FunctionLifecycle[S, HttpRuntime]):
    def __init__(
        self,
        name: str,
        settings: type[S],
        wire: Callable[[S, HttpRuntime], Mapping[str, Handler]],
        *,
        transport: httpx.AsyncBaseTransport | None = None,  # tests fake third parties at the HTTP boundary
    ) -> None:
        super().__init__(name, settings, transport=transport)
        self._wire = wire
        self._routes: Mapping[str, Handler] = {}

    def assemble(self, settings: S, db: Database, http: httpx.AsyncClient) -> HttpRuntime:
        runtime = HttpRuntime(self.name, db, http)
        self._routes = self._wire(settings, runtime)
        return runtime

    async def handle(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        path = str(scope.get("path", ""))
        if self.serving is None:  # a provider retries a 503; a 404 it may not
            await _respond(send, HttpResponse(503, b"not ready"))
        elif path not in self._routes:
            await _respond(send, HttpResponse(404, b"no such route"))
        elif scope.get("method") != "POST":
            await _respond(send, HttpResponse(405, b"POST only"))
        else:
            try:
                body = await _read_limited(receive, MAX_BODY_BYTES)
            except _TooLarge:
                await _respond(send, HttpResponse(413, b"body too large"))
                return
            if body is None:  # the sender hung up mid-request: it will retry; nothing to keep
                log.warning("request.abandoned", extra={"function": self.name})
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            query = bytes(scope.get("query_string", b"")).decode("latin-1")
            await _respond(send, await self.process(HttpRequest(path, query, headers, body)))

    async def process(self, request: HttpRequest) -> HttpResponse:
        """Route one request; the error → status mapping lives here alone."""
        if self.serving is None:
            return HttpResponse(503, b"not ready")
        try:
            return await self._routes[request.path](request)
        except _RETRYABLE as exc:
            log.warning("request.retry", extra={"function": self.name, "error_type": type(exc).__name__})
            return HttpResponse(503, b"retry")
        except Exception as exc:
            log.exception("request.failed", extra={"function": self.name, "error_type": type(exc).__name__})
            return HttpResponse(500, b"failed")


class _TooLarge(Exception):
    pass


async def _read_limited(receive: ASGIReceive, limit: int) -> bytes | None:
    """The whole body, None if the client disconnected first; ``_TooLarge`` past ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: ASGISend, response: HttpResponse) -> None:
    headers = [(b"content-type", response.content_type.encode()), (b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
