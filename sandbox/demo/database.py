"""The demo's database: an embedded PostgreSQL (pgserver) under ``.data/``, or the one DATABASE_URL names.

Embedded, the demo drops and recreates its own ``patient_notify_demo`` database each run, so a
report counts one day only. Given a URL, it uses that database as it is and refuses one that
already holds appointments: it never deletes data it did not create.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import psycopg

from patient_notify.db import migrate

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

__all__ = ["DemoDatabase", "open_database"]

DEMO_DATABASE = "patient_notify_demo"


@dataclass
class DemoDatabase:
    url: str
    embedded: bool
    server_pids: list[int] = field(default_factory=list)  # the embedded postmaster, for the memory figure
    _server: PostgresServer | None = None

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def open_database(data_dir: Path, database_url: str | None) -> DemoDatabase:
    if database_url:
        _refuse_if_not_empty(database_url)
        migrate(database_url)
        return DemoDatabase(database_url, embedded=False)
    from pgserver.postgres_server import get_server  # imported late: only the embedded path needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "postgres", cleanup_mode="stop")
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)".encode())  # a constant name
        conn.execute(f"CREATE DATABASE {DEMO_DATABASE}".encode())
    # pgserver listens on a socket only (postgresql://postgres:@/db?host=/dir); the functions' settings
    # want a host in the URL, and libpq lets the host= parameter name the socket directory instead.
    socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    url = f"postgresql://postgres@localhost/{DEMO_DATABASE}?host={socket_dir}"
    migrate(url)
    return DemoDatabase(url, embedded=True, server_pids=[pid for pid in [server.get_pid()] if pid], _server=server)


def _refuse_if_not_empty(url: str) -> None:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('appointments') IS NOT NULL").fetchone()
        if exists and exists[0]:
            row = conn.execute("SELECT count(*) FROM appointments").fetchone()
            if row and row[0]:
                raise SystemExit(
                    f"DATABASE_URL already holds {row[0]} appointments: the demo needs an empty database "
                    "(unset DATABASE_URL to use the embedded one under .data/)"
                )
