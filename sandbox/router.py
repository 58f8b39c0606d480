"""A small in-process broker: routes CloudEvents by the Triggers in ``knative/`` over real HTTP.

It mirrors eventing-rabbitmq's delivery (DESIGN §4): an ingress that answers 202 once an event is
queued; a queue per Trigger with ``parallelism`` workers; exact-match filters; retry on 5xx, 404,
408, 409, 429 and network errors with the Trigger's backoff; any other 4xx counts as delivered
(acked and dropped, recorded here as ``dropped``); after the last retry, the dead-letter sink gets
the event with ``knativeerrordest`` and ``knativeerrorcode``; a CloudEvent in a 2xx reply is
published back to the ingress. For tests it can deliver every event twice, in shuffled order.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event, to_binary_event
from cloudevents.core.v1.event import CloudEvent
from hypercorn.asyncio import serve
from hypercorn.config import Config

from sandbox.triggers import Trigger

__all__ = ["LocalRouter", "RouterStats", "ingress_event"]

_RETRY_STATUSES = frozenset({404, 408, 409, 429})


@dataclass
class RouterStats:
    ingested: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    dead_lettered: list[str] = field(default_factory=list)
    dropped: list[tuple[str, int]] = field(default_factory=list)  # (trigger, status): lost events
    errors: list[str] = field(default_factory=list)  # the router's own failures


class LocalRouter:
    def __init__(
        self,
        triggers: Sequence[Trigger],
        endpoints: Mapping[str, str],
        *,
        duplicate: bool = False,
        shuffle_seed: int | None = None,
        backoff_scale: float = 1.0,
    ) -> None:
        self._triggers = triggers
        self._endpoints = endpoints
        self._copies = 2 if duplicate else 1
        self._random = random.Random(shuffle_seed) if shuffle_seed is not None else None
        self._backoff_scale = backoff_scale
        self.stats = RouterStats()
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self._started = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="local-router", daemon=True)
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.ingress_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/"

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("local router did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(10)

    def wait_idle(self, timeout: float) -> bool:
        """True once every accepted event is delivered, dead-lettered or dropped."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._shutdown = asyncio.Event()
        self._queues = {t.name: asyncio.Queue[BaseCloudEvent]() for t in self._triggers}
        async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=200)) as client:
            self._client = client
            workers = [
                asyncio.create_task(self._worker(t))
                for t in self._triggers for _ in range(t.parallelism)
            ]  # fmt: skip
            config = Config()
            config.bind = [f"fd://{self._socket.detach()}"]
            config.accesslog = None
            config.loglevel = "WARNING"  # not "Running on ..." in the demo's output
            self._started.set()
            await serve(
                cast(Any, self._ingress),
                config,  # a plain ASGI callable; hypercorn types its own scopes
                shutdown_trigger=self._shutdown.wait,
            )
            for worker in workers:
                worker.cancel()

    async def _ingress(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] != "POST" or scope["path"] != "/":  # the real ingress: POST / only
            await _reply(send, 405 if scope["method"] != "POST" else 404)
            return
        event = ingress_event(headers, body)
        if event is None:
            await _reply(send, 400)
            return
        self._ingest(event)
        await _reply(send, 202)

    def _ingest(self, event: BaseCloudEvent) -> None:
        self.stats.ingested += 1
        attributes = event.get_attributes()
        for trigger in self._triggers:
            if trigger.matches(attributes):
                for _ in range(self._copies):
                    self._enqueue(trigger, event)

    def _enqueue(self, trigger: Trigger, event: BaseCloudEvent) -> None:
        self._pending += 1
        self._idle.clear()
        queue = self._queues[trigger.name]
        if self._random is None:
            queue.put_nowait(event)
        else:  # shuffle: each copy joins its queue after its own random delay
            self._loop.call_later(self._random.uniform(0, 0.05), queue.put_nowait, event)

    async def _worker(self, trigger: Trigger) -> None:
        queue = self._queues[trigger.name]
        while True:
            event = await queue.get()
            try:
                await self._deliver(trigger, event)
            except Exception as exc:  # noqa: BLE001 - a router bug must show in the stats, not kill the worker
                self.stats.errors.append(f"{trigger.name}: {type(exc).__name__}: {exc}")
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def _deliver(self, trigger: Trigger, event: BaseCloudEvent) -> None:
        url = self._endpoints[trigger.service]
        status = await self._with_retries(trigger, url, event)
        if status is None or status < 400:
            self.stats.delivered[trigger.name] += 1
        elif status < 500 and status not in _RETRY_STATUSES:
            self.stats.dropped.append((trigger.name, status))
        elif trigger.delivery.dead_letter_service:
            self.stats.dead_lettered.append(trigger.name)
            extensions = {"knativeerrordest": url, "knativeerrorcode": str(status)}
            dead = CloudEvent(attributes={**event.get_attributes(), **extensions}, data=event.get_data())
            dlq = self._endpoints[trigger.delivery.dead_letter_service]
            if await self._with_retries(trigger, dlq, dead) is not None:
                self.stats.dropped.append((trigger.name, status))  # the sink refused it too: lost
        else:
            self.stats.dropped.append((trigger.name, status))

    async def _with_retries(self, trigger: Trigger, url: str, event: BaseCloudEvent) -> int | None:
        """The final status: None for a 2xx, else the last error status (599: network error)."""
        delivery = trigger.delivery
        status = 599
        for attempt in range(delivery.retry + 1):
            if attempt:
                self.stats.retried[trigger.name] += 1
                factor = 2**attempt if delivery.exponential else attempt  # eventing-rabbitmq: d·2^n or d·n
                await asyncio.sleep(delivery.backoff_delay_s * factor * self._backoff_scale)
            status = await self._post(url, event, delivery.timeout_s)
            if status < 300:
                return None
            if status < 500 and status not in _RETRY_STATUSES:
                return status
        return status

    async def _post(self, url: str, event: BaseCloudEvent, limit_s: float) -> int:
        message = to_binary_event(event)
        try:
            response = await self._client.post(url, headers=message.headers, content=message.body, timeout=limit_s)
        except httpx.HTTPError:
            return 599
        if response.is_success and "ce-type" in response.headers:
            self._ingest(from_http_event(HTTPMessage(dict(response.headers), response.content)))
        return response.status_code


def ingress_event(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent | None:
    """The CloudEvent a request carries, or None where the real ingress answers 400.

    The Python SDK fills in a missing ``id``, ``specversion`` and ``time``; the Go SDK the real
    ingress uses invents nothing, so a request that does not carry an id and a specversion is refused.
    """
    try:
        event = from_http_event(HTTPMessage(headers=dict(headers), body=body))
        structured = headers.get("content-type", "").startswith("application/cloudevents")
        carried = set(json.loads(body)) if structured else {k[3:] for k in headers if k.startswith("ce-")}
    except Exception:  # noqa: BLE001 - the real ingress answers 400 to anything that is not a CloudEvent
        return None
    return _json_data_as_bytes(event) if {"id", "specversion"} <= carried else None


def _json_data_as_bytes(event: BaseCloudEvent) -> BaseCloudEvent:
    """JSON data other than an object, as its JSON bytes: the SDK would re-encode ``[false]`` as ``[False]``."""
    data, content_type = event.get_data(), event.get_datacontenttype() or "application/json"
    if not isinstance(data, dict | bytes | None) and "json" in content_type:
        return CloudEvent(attributes=event.get_attributes(), data=json.dumps(data).encode())
    return event


async def _reply(send: Any, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
