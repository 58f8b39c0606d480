"""Databases for tests: a migrated template, cloned per test under a random name (real PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from hypothesis import settings

from patient_notify.db import Database, migrate
from patient_notify.db.migrate import available_migrations

# No deadline per example: on a loaded 2-core CI machine an example's time says nothing about the
# code, and a stall would fail a correct property. print_blob: a failure in CI can be replayed.
settings.register_profile("patient-notify", deadline=None, print_blob=True)
settings.load_profile("patient-notify")

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _admin(sql: str) -> None:
    """Run one CREATE/DROP DATABASE (not allowed in a transaction) as the admin role."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.encode())  # names come from uuid4 and checksums only


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """Migrated once per session; every test database is a copy of it."""
    digest = "".join(m.checksum[:4] for m in available_migrations())
    name = f"pn_template_{digest}_{uuid.uuid4().hex[:6]}"
    _admin(f"CREATE DATABASE {name}")
    migrate(database_url(name))
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    name = f"pn_empty_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name}")
    yield database_url(name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def migrated_database_url(template_database: str) -> Iterator[str]:
    name = f"pn_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield database_url(name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_database_url, max_size=4)
    yield database
    await database.close()
