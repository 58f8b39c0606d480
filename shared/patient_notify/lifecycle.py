"""What every func-python function does around its requests: ``start``, ``alive``, ``ready``, ``stop``.

``EventFunction`` (CloudEvents from the broker) and ``HttpFunction`` (provider webhooks) differ
in what they build on top of the database pool and HTTP client, and in how a request becomes a
response; they share this lifecycle:

    start   validate settings, open the pool and client, wire, migrate. A bad setting is logged
            naming the variable, any other failure naming its type (never its message, which
            may quote a secret); either leaves the function dead: liveness fails, so Kubernetes
            shows a crash loop, because hypercorn would otherwise serve on without ``start``
    ready   migrated; a failed migration is retried by each readiness probe
    stop    close the pool and client
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

import httpx

from patient_notify.db import Database, migrate
from patient_notify.errors import ConfigError, DatabaseError
from patient_notify.logging import configure_logging
from patient_notify.settings import Settings

__all__ = ["FunctionLifecycle", "Resources"]

log = logging.getLogger(__name__)
OTHER_CONNECTIONS = 8  # beside the publisher's: alert sinks, SNS certificates, source API calls
HTTP_TIMEOUT_S = 10.0  # each call through the shared client (a publish to the broker, an alert sink)


class Resources(Protocol):
    """What a runtime holds that ``stop`` must close."""

    @property
    def db(self) -> Database: ...

    @property
    def http(self) -> httpx.AsyncClient: ...


S = TypeVar("S", bound=Settings)
R = TypeVar("R", bound=Resources)


class FunctionLifecycle(Generic[S, R]):
    """The lifecycle; a subclass builds its runtime (and routes) in ``assemble``."""

    def __init__(
        self,
        name: str,
        settings: type[S],
        *,
        transport: httpx.AsyncBaseTransport | None = None,  # tests fake third parties at the HTTP boundary
    ) -> None:
        self.name = name
        self.settings_type = settings  # what start() validates the environment with
        self._transport = transport
        self._runtime: R | None = None
        self._database_url = ""
        self._not_ready: str | None = "not started"
        self._start_error: str | None = None
        self._closing: asyncio.Task[None] | None = None

    def assemble(self, settings: S, db: Database, http: httpx.AsyncClient) -> R:
        raise NotImplementedError

    def start(self, cfg: Mapping[str, str]) -> None:
        """Validate settings, build adapters, migrate; a failure leaves the function dead."""
        configure_logging(cfg.get("LOG_LEVEL") or "INFO")
        try:
            self._runtime = self._build(cfg)
        except ConfigError as exc:
            self._start_error = self._not_ready = f"invalid configuration: {exc}"
            context = {"function": self.name, "variable": exc.variable, "reason": exc.reason}
            log.error("start.config_invalid", extra=context)
            return
        except Exception as exc:  # noqa: BLE001  # raised, hypercorn drops it unlogged and serves on unstarted
            self._start_error = self._not_ready = f"start failed: {type(exc).__name__}"
            log.error("start.failed", extra={"function": self.name, "error_type": type(exc).__name__})
            return
        self._migrate()

    def _build(self, cfg: Mapping[str, str]) -> R:
        settings = self.settings_type.from_cfg(cfg)
        configure_logging(settings.log_level)
        self._database_url = str(settings.database_url)
        # Both open on first use: a failed assemble leaves nothing to close.
        db = Database(self._database_url, max_size=settings.db_pool_max)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(HTTP_TIMEOUT_S, connect=3.0), limits=_limits(settings), transport=self._transport
        )
        return self.assemble(settings, db, http)

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
        return self._start_error is None, self._start_error or "OK"

    def ready(self) -> tuple[bool, str]:
        if self._not_ready and self._runtime is not None:
            self._migrate()  # the database may be back: a readiness probe retries
        return self._not_ready is None, self._not_ready or "OK"

    @property
    def serving(self) -> R | None:
        """The runtime, once started and migrated; None until then (requests get 503)."""
        return None if self._not_ready else self._runtime

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


def _limits(settings: Settings) -> httpx.Limits:
    """The one client's pool: every concurrent publish keeps its connection alive (httpx keeps only
    20 by default, so 32 publishers would reconnect all the time), plus room for the other calls."""
    size = settings.publish_concurrency + OTHER_CONNECTIONS
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


async def _close(runtime: Resources) -> None:
    await runtime.http.aclose()
    await runtime.db.close()
