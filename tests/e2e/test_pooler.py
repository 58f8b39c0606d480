"""The end-to-end tier really runs through PgBouncer in transaction mode, and the code is fit for it."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from sandbox.processes import FunctionProcess
from tests.support.pgbouncer import PgBouncer

UNKNOWN_EVENT = {
    "ce-specversion": "1.0", "ce-id": "pooler-1", "ce-source": "/pooler-test",
    "ce-type": "org.example.unknown.v1", "content-type": "application/json",
}  # fmt: skip


def _console(bouncer: PgBouncer, command: str) -> list[dict[str, object]]:
    with psycopg.connect(bouncer.admin_url, autocommit=True, prepare_threshold=None) as conn:
        return conn.cursor(row_factory=dict_row).execute(command.encode()).fetchall()


class TestThroughPgBouncer:
    def test_the_tier_hands_out_pooled_urls(self, migrated_database_url: str, pgbouncer: PgBouncer) -> None:
        """Every database URL of this tier names PgBouncer's port, and PgBouncer pools by transaction."""
        assert urlsplit(migrated_database_url).port == pgbouncer.port
        settings = {row["key"]: row["value"] for row in _console(pgbouncer, "SHOW CONFIG")}
        assert settings["pool_mode"] == "transaction"

    def test_a_function_migrates_and_handles_an_event_through_it(
        self, dispatcher: FunctionProcess, migrated_database_url: str, pgbouncer: PgBouncer
    ) -> None:
        """Migration (transaction-scoped lock), readiness and a recorded event all pass through the pooler."""
        database = urlsplit(migrated_database_url).path.lstrip("/")
        before = {row["database"]: int(str(row["total_xact_count"])) for row in _console(pgbouncer, "SHOW STATS")}
        response = httpx.post(dispatcher.url, headers=UNKNOWN_EVENT, content=b"{}")
        assert (response.status_code, response.json()) == (202, {"outcome": "rejected and recorded"})
        after = {row["database"]: int(str(row["total_xact_count"])) for row in _console(pgbouncer, "SHOW STATS")}
        assert after[database] > before.get(database, 0)
        with psycopg.connect(migrated_database_url) as conn:
            assert conn.execute(b"SELECT receiver FROM rejected_events").fetchall() == [("dispatcher",)]
