"""The lifecycle both function shapes share: a bad setting kills, a missing database waits (real PostgreSQL).

``EventFunction`` (CloudEvents) and ``HttpFunction`` (webhooks) are built on
``patient_notify.lifecycle.FunctionLifecycle``; each is checked here through its own request path.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import psycopg
import pytest

from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.http_function import Handler, HttpFunction, HttpRequest, HttpResponse, HttpRuntime, HttpSettings
from patient_notify.settings import Settings
from tests.conftest import ADMIN_URL, database_url

BROKER = "http://127.0.0.1:9/"  # nothing is published in these tests


def _no_routes(_settings: Settings, _runtime: Runtime) -> Mapping[str, Route]:
    return {}


async def _event_request(function: Any) -> int:
    status, _ = await function.process({"content-type": "application/json"}, b"{}")
    return int(status)


async def _http_request(function: Any) -> int:
    response = await function.process(HttpRequest("/ping", "", {}, b""))
    return int(response.status)


async def _pong(_request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, b"pong")


def _ping_route(_settings: HttpSettings, _runtime: HttpRuntime) -> Mapping[str, Handler]:
    return {"/ping": _pong}


def _event_function() -> EventFunction[Settings]:
    return EventFunction("lifecycle-test", Settings, _no_routes)


def _http_function() -> HttpFunction[HttpSettings]:
    return HttpFunction("lifecycle-test", HttpSettings, _ping_route)


# Each shape, how to send it one request, and the answer once it serves: a body that is not a
# CloudEvent is kept and answered 202; the HTTP function's one route answers 200.
SHAPES = [
    pytest.param(_event_function, _event_request, 202, id="event"),
    pytest.param(_http_function, _http_request, 200, id="http"),
]


@pytest.fixture
def absent_database() -> Iterator[str]:
    """A database name that does not exist yet; dropped after the test if the test created it."""
    name = f"pn_later_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


@pytest.mark.parametrize(("make", "request_once", "serving"), SHAPES)
async def test_a_bad_setting_leaves_it_dead_naming_the_variable(
    make: Callable[[], Any], request_once: Callable[[Any], Awaitable[int]], serving: int
) -> None:
    """Liveness fails with the variable's name (a crash loop in Kubernetes); requests get 503."""
    function = make()
    function.start({"DATABASE_URL": "mysql://nope", "BROKER_URL": BROKER})
    alive, reason = function.alive()
    assert not alive and "DATABASE_URL" in reason
    assert function.ready()[0] is False
    assert await request_once(function) == 503


@pytest.mark.parametrize(("make", "request_once", "serving"), SHAPES)
async def test_it_waits_for_its_database_and_becomes_ready_when_it_appears(
    make: Callable[[], Any], request_once: Callable[[Any], Awaitable[int]], serving: int, absent_database: str
) -> None:
    """Alive but not ready while the database is missing (503: retried); a later probe migrates and serves."""
    function = make()
    function.start({"DATABASE_URL": database_url(absent_database), "BROKER_URL": BROKER})
    try:
        assert function.alive() == (True, "OK")
        ready, reason = function.ready()
        assert not ready and reason.startswith("database:")
        assert await request_once(function) == 503
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {absent_database}".encode())
        assert function.ready() == (True, "OK")  # the probe retried the migration
        assert await request_once(function) == serving
        with psycopg.connect(database_url(absent_database)) as conn:
            assert conn.execute(b"SELECT count(*) FROM schema_migrations").fetchone() != (0,)
    finally:
        await function.aclose()
