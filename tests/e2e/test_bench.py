"""``task bench`` at a tiny size: it runs every step, writes every figure, and the end-to-end run
reminds every due appointment exactly once on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from sandbox.demo.system import FUNCTIONS
from sandbox.processes import ROOT
from tests.conftest import ADMIN_URL

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SIZES = ("--appointments", "200", "--planning-appointments", "500", "--etl-appointments", "500",
         "--latency-events", "20")  # fmt: skip


def _bench_databases() -> set[str]:
    with psycopg.connect(ADMIN_URL) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'pn_bench_%'").fetchall()
    return {str(name) for (name,) in rows}


@dataclass(frozen=True)
class BenchRun:
    results: dict[str, Any]
    left_behind: set[str]  # bench databases that exist after the run and did not before


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    """One tiny run of the whole bench, shared by the tests below."""
    folder = tmp_path_factory.mktemp("bench")
    before = _bench_databases()
    command = [sys.executable, "-m", "bench", *SIZES, "--results", str(folder / "results.json"),
               "--workdir", str(folder), "--rabbitmq-url", RABBITMQ_URL]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603 - our interpreter and module
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "goal (reported, not asserted)" in result.stdout
    return BenchRun(json.loads((folder / "results.json").read_text()), _bench_databases() - before)


class TestBench:
    def test_every_due_reminder_is_accepted_exactly_once(self, bench_run: BenchRun) -> None:
        """200 appointments due at one tick: each (recipient, channel) accepted once, none missing, none extra."""
        e2e = bench_run.results["end_to_end"]
        once = e2e["exactly_once"]
        assert once == {"accepted": e2e["notifications"], "expected": e2e["notifications"], "missing": 0,
                        "unexpected": 0, "duplicates": 0}  # fmt: skip
        assert e2e["notifications"] == 200 // 3 * 4 + 2  # sms, email, both in turn: 67 + 67 + 2 × 66
        assert (e2e["broker"]["dropped"], e2e["broker"]["dead_lettered"], e2e["broker"]["errors"]) == (0, 0, [])

    def test_results_hold_every_figure(self, bench_run: BenchRun) -> None:
        """Throughput, both ceilings with our share of each, planning, ETL, latency, and every goal judged."""
        results = bench_run.results
        assert results["end_to_end"]["notifications_per_s"] > 0
        assert min(results["ceiling"][k] for k in ("pika_per_s", "http_per_s", "share_of_pika", "share_of_http")) > 0
        assert results["planning"]["appointments"] == 500 and results["planning"]["planning_s"] > 0
        assert results["etl"]["status"] == "succeeded" and results["etl"]["appointments_per_s"] > 0
        assert results["change_notice_latency"]["events"] == 20
        assert all(goal["met"] is not None for goal in results["goals"].values()), results["goals"]

    def test_each_function_has_a_cold_start_and_memory(self, bench_run: BenchRun) -> None:
        """All seven functions: seconds to ready, RSS and PSS at ready and after the run."""
        e2e = bench_run.results["end_to_end"]
        assert set(e2e["cold_start"]) == set(e2e["memory_after_run"]) == set(FUNCTIONS)
        assert all(s["ready_s"] > 0 and s["rss_mb"] > s["pss_mb"] > 0 for s in e2e["cold_start"].values())

    def test_no_database_is_left_behind(self, bench_run: BenchRun) -> None:
        """Every database the bench created was dropped at its end."""
        assert bench_run.left_behind == set()
