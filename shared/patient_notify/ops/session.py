"""One connection for one command: a CLI needs no pool, and must fail at once when it cannot connect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import psycopg
from psycopg.rows import DictRow, dict_row

from patient_notify.db import Transaction
from patient_notify.db.database import translate_errors
from patient_notify.db.migrate import available_migrations
from patient_notify.ops.errors import SchemaBehind

__all__ = ["Session", "Transactions", "connect"]


class Transactions(Protocol):
    """What a command needs of the database: ``patient_notify.db.Database`` is one too."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


class Session:
    def __init__(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        self._conn = conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with translate_errors(), self._conn.transaction():
            yield Transaction(self._conn)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Session]:
    """Connect, and refuse a database whose schema is older than the migrations this CLI ships."""
    async with translate_errors():
        # No server-side prepared statements: the same database may sit behind PgBouncer.
        conn = await psycopg.AsyncConnection.connect(
            url, connect_timeout=5, prepare_threshold=None, row_factory=dict_row
        )
    async with conn:
        session = Session(conn)
        await _check_schema(session)
        yield session


async def _check_schema(session: Session) -> None:
    needed = max(m.version for m in available_migrations())
    async with session.transaction() as tx:
        ledger = await tx.one("ops_has_ledger")
        version = await tx.one("ops_schema_version") if ledger and ledger["present"] else None
    found = int(version["version"]) if version else 0
    if found < needed:
        raise SchemaBehind(found, needed)
