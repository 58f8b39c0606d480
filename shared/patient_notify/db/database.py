"""The database port: a pool, transactions, and named queries returning dict rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from patient_notify.db.queries import QUERIES
from patient_notify.errors import DatabaseError, DatabaseUnavailable

__all__ = ["Database", "Transaction", "translate_errors"]

Params = Mapping[str, Any]

# Server-side prepared statements are off so the code runs behind PgBouncer in transaction mode.
CONNECT_KWARGS: dict[str, Any] = {"prepare_threshold": None, "autocommit": False}


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    except psycopg.Error as exc:
        raise DatabaseError(str(exc)) from exc


class Transaction:
    """One open transaction; every statement is named in ``sql/queries.sql``."""

    def __init__(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        self._conn = conn

    async def all(self, query: str, params: Params | None = None) -> list[DictRow]:
        cur = await self._conn.execute(QUERIES[query], params)
        return await cur.fetchall() if cur.description else []

    async def one(self, query: str, params: Params | None = None) -> DictRow | None:
        cur = await self._conn.execute(QUERIES[query], params)
        return await cur.fetchone() if cur.description else None

    async def run(self, query: str, params: Params | None = None) -> int:
        cur = await self._conn.execute(QUERIES[query], params)
        return cur.rowcount


class Database:
    """A connection pool opened lazily on first use (``start()`` is synchronous in func-python)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=10.0,
            kwargs={**CONNECT_KWARGS, "row_factory": dict_row},
        )
        self._opened = False
        self.url = url

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        if not self._opened:
            self._opened = True
            await self._pool.open()
        async with translate_errors(), self._pool.connection() as conn, conn.transaction():
            yield Transaction(conn)

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
