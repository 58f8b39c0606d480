"""Migrations against the real PostgreSQL server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from patient_notify.db import migrate
from patient_notify.db.migrate import available_migrations
from patient_notify.errors import DatabaseUnavailable

TABLES = {
    "locations", "patients", "contact_points", "appointments", "notifications",
    "notification_status_history", "notification_transitions", "outbox", "processed_events",
    "rejected_events", "dead_letters", "alerts", "schema_migrations",
}  # fmt: skip


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def _ledger(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


class TestMigrate:
    def test_from_empty_creates_every_table(self, empty_database_url: str) -> None:
        """An empty database gets the whole schema and a ledger of what was applied."""
        applied = migrate(empty_database_url)
        assert applied == [m.version for m in available_migrations()]
        assert _tables(empty_database_url) >= TABLES
        assert _ledger(empty_database_url) == applied

    def test_second_run_applies_nothing(self, empty_database_url: str) -> None:
        """Migrating an up-to-date database is a no-op."""
        migrate(empty_database_url)
        assert migrate(empty_database_url) == []

    def test_concurrent_cold_starts_apply_each_migration_once(self, empty_database_url: str) -> None:
        """Eight functions starting at once: one applies the migrations, the others find them done."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: migrate(empty_database_url), range(8)))
        applied = [version for result in results for version in result]
        assert sorted(applied) == [m.version for m in available_migrations()]
        assert _ledger(empty_database_url) == sorted(applied)

    def test_unreachable_server_is_reported_as_unavailable(self) -> None:
        """A database that cannot be reached raises DatabaseUnavailable (retry later), not a crash."""
        with pytest.raises(DatabaseUnavailable):
            migrate("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
