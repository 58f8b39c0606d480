"""Versioned migrations, applied at start by every function and by ``task db:migrate``.

All pending files run in one transaction under a transaction-scoped advisory lock, so several
functions cold-starting at once apply each migration exactly once, and nothing is held across
transactions (safe behind PgBouncer in transaction mode).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from patient_notify.errors import DatabaseError, DatabaseUnavailable

__all__ = ["Migration", "available_migrations", "migrate"]

LOCK_KEY = 0x70_6E_6D_69_67  # "pnmig"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    folder = resources.files("patient_notify.db").joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        if match := _FILE.match(entry.name):
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(url: str) -> list[int]:
    """Apply every pending migration; return the versions this call applied."""
    try:
        with psycopg.connect(url, connect_timeout=5, prepare_threshold=None) as conn:
            return _apply_pending(conn, available_migrations())
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    except psycopg.Error as exc:
        raise DatabaseError(f"migration failed: {exc}") from exc


def _apply_pending(conn: psycopg.Connection[tuple[object, ...]], migrations: list[Migration]) -> list[int]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(_CREATE_LEDGER)
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        applied = {int(str(version)): str(checksum) for version, checksum in rows}
        done = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise DatabaseError(f"migration {migration.version} changed after it was applied")
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            done.append(migration.version)
        return done


def main() -> int:
    from patient_notify.settings import database_url_from

    url = database_url_from(os.environ)  # noqa: TID251 - a command's composition root
    applied = migrate(url)
    print(f"applied migrations: {applied or 'none (up to date)'}")  # noqa: T201 - a command's output
    return 0
