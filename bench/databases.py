"""Fresh, uniquely named databases on the machine's PostgreSQL, each dropped when the bench is done.

The bench never touches a database it did not create: every name is ``pn_bench_<random>``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from patient_notify.db import migrate

__all__ = ["ADMIN_URL", "clone_database", "fresh_database"]

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")  # noqa: TID251 - the bench's composition root


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.encode())  # names are pn_bench_ + uuid4 hex only


def _url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def _created(template: str | None) -> Iterator[str]:
    name = f"pn_bench_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        yield _url(name)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated database; its URL. Dropped on exit, whatever happened."""
    with _created(None) as url:
        migrate(url)
        yield url


@contextmanager
def clone_database(url: str) -> Iterator[str]:
    """A copy of the (idle) database at ``url``, made by PostgreSQL's TEMPLATE; dropped on exit."""
    with _created(url.rsplit("/", 1)[1]) as clone:
        yield clone
