"""The ETL against the sandbox hospital API over real HTTP, failing like the real one, into real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from patient_notify.db import Database
from patient_notify.outbox import Publisher
from sandbox.patient_api import PatientApiStandIn, Population
from sandbox.processes import ROOT
from tests.support.functions import load_module
from tests.support.receiver import Receiver

etl_func = load_module("etl", "func")
resilience = load_module("etl", "resilience")
NOW = datetime.now(UTC).replace(microsecond=0)


def _settings(api: PatientApiStandIn, source: str = "fhir", **overrides: str) -> Any:
    cfg = {
        "DATABASE_URL": "postgresql://unused@127.0.0.1/unused", "BROKER_URL": "http://127.0.0.1:1/",
        "ETL_SOURCE": source, "ETL_SOURCE_URL": f"{api.base_url}/{source}", "ETL_DEFAULT_ZONE": "Europe/London",
        "ETL_PAGE_SIZE": "25", "ETL_TIMEOUT_S": "0.3", "ETL_MAX_BACKOFF_S": "0.05", **overrides,
    }  # fmt: skip
    return etl_func.EtlSettings.from_cfg(cfg)


@pytest.fixture
def population() -> Population:
    return Population.generate(2000, seed=1, start=NOW)


@pytest.fixture
def api(population: Population) -> Iterator[PatientApiStandIn]:
    with PatientApiStandIn(population, failure_rate=0.1, seed=5, retry_after_s=1, stall_s=0.5) as stand_in:
        yield stand_in


class Etl:
    """Runs passes the way the function does, keeping one breaker across them."""

    def __init__(self, db: Database, settings: Any, publisher: Publisher | None = None) -> None:
        self.db, self.settings, self.publisher = db, settings, publisher
        self.breaker = resilience.CircuitBreaker(cooldown_s=0.0)

    async def run(self) -> Any:
        async with etl_func.source_http(self.settings) as http:
            return await etl_func.build_pass(self.settings, self.db, self.publisher, self.breaker, http).run()


@pytest.fixture
def etl(db: Database, api: PatientApiStandIn) -> Etl:
    return Etl(db, _settings(api))


def _query(db: Database, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(sql.encode()).fetchall()


def _booked(population: Population, count: int) -> list[str]:
    """Booked appointments well inside every pass's window: a change to them is always seen."""
    inside = [
        i for i in population.ids()
        if population.appointment(i).status == "booked"
        and NOW + timedelta(days=1) < population.appointment(i).start < NOW + timedelta(days=13)
    ]  # fmt: skip
    return inside[:count]


class TestPass:
    async def test_every_appointment_lands_exactly_once_despite_failures(self, db: Database) -> None:
        """8,000 appointments at 10% failures: each lands once, for at most 15% extra requests (theory 11.1%)."""
        population = Population.generate(8000, seed=2, start=NOW)
        # A 2 s timeout: a healthy page never takes that long, even on a loaded machine, so every retry
        # counted below is a fault the stand-in injected (about 4 of them are 2.5 s stalls).
        with PatientApiStandIn(population, failure_rate=0.1, seed=5, retry_after_s=1, stall_s=2.5) as api:
            report = await Etl(db, _settings(api, ETL_PAGE_SIZE="50", ETL_TIMEOUT_S="2")).run()
        assert report.status == "succeeded", report.error
        stored = dict(_query(db, "SELECT id, version FROM appointments"))
        [(start, end)] = _query(db, "SELECT window_start, window_end FROM etl_runs")
        assert sorted(stored) == sorted(population.appointment_ids_between(start, end))
        assert set(stored.values()) == {1} and len(stored) > 7000
        pages = report.counts["pages"]
        assert set(api.faults) == {"500", "503", "stall", "drop"} and report.counts["retries"] == api.failures_injected
        assert report.counts["requests"] <= 1.15 * pages, report.summary()

    async def test_a_rerun_changes_nothing(self, db: Database, api: PatientApiStandIn) -> None:
        """A second full pass over unchanged data fetches it all again, writes no new version, emits nothing."""
        etl = Etl(db, _settings(api, ETL_FULL_RECONCILE_HOURS="0.000001"))  # every pass is a full one
        await etl.run()
        before = _query(db, "SELECT id, version, updated_at FROM appointments ORDER BY id")
        report = await etl.run()
        assert report.status == "succeeded" and report.mode == "full" and report.counts["fetched"] > 1000
        assert report.counts["changed"] == 0
        assert [row[:2] for row in _query(db, "SELECT id, version, updated_at FROM appointments ORDER BY id")] == [
            row[:2] for row in before
        ]
        assert _query(db, "SELECT count(*) FROM outbox") == [(0,)]

    async def test_the_datas_age_is_queryable(self, etl: Etl, db: Database) -> None:
        """After a successful pass, source_freshness gives its time and an age of seconds."""
        await etl.run()
        [(source, last_full, age_s)] = _query(
            db, "SELECT source, last_full_at, extract(epoch FROM age) FROM source_freshness"
        )
        assert source.startswith("fhir:") and last_full is not None and 0 <= age_s < 60


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestOutage:
    async def test_breaker_opens_pass_fails_loudly_and_a_later_pass_resumes(
        self, db: Database, api: PatientApiStandIn, population: Population
    ) -> None:
        """An outage fails the pass with an alert, the breaker then spares the source, and once it is
        back the next pass resumes from the checkpoint and completes."""
        clock = FakeClock()
        etl = Etl(db, _settings(api))
        etl.breaker = resilience.CircuitBreaker(cooldown_s=60.0, clock=clock)
        api.outage_after_pages = 10
        first = await etl.run()
        assert first.status == "failed" and first.counts["pages"] == 10
        second = await etl.run()
        assert second.status == "failed" and "circuit open" in (second.error or "")
        before = api.requests
        third = await etl.run()
        assert third.status == "failed" and api.requests == before  # open: the source is left alone
        assert _query(db, "SELECT kind FROM alerts") == [("etl_pass_failed",)] * 3  # one per failed attempt

        api.fail_everything = False
        clock.now += 61  # the cooldown passes: the breaker lets a trial through
        resumed = await etl.run()
        assert resumed.status == "succeeded" and resumed.resumed, resumed.error
        assert resumed.counts["pages"] > 10  # the same run, continued from its checkpoint
        assert _query(db, "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM etl_runs") == [(1, 1)]
        [(start, end)] = _query(db, "SELECT window_start, window_end FROM etl_runs")
        assert sorted(r[0] for r in _query(db, "SELECT id FROM appointments")) == sorted(
            population.appointment_ids_between(start, end)
        )


class TestLease:
    async def test_a_pass_that_lost_its_lease_lands_nothing(self, db: Database, api: PatientApiStandIn) -> None:
        """A pass that outlived its lease, after another pass resumed its run, cannot land a page."""
        api.failure_rate = 0.0
        api.outage_after_pages = 2
        settings = _settings(api, ETL_ATTEMPTS="2")
        async with etl_func.source_http(settings) as http:
            slow = etl_func.build_pass(settings, db, None, resilience.CircuitBreaker(), http)
            assert (await slow.run()).status == "failed"
            [run] = [dict(zip(("id", "resumes", "started_at"), r, strict=True))
                     for r in _query(db, "SELECT id, resumes, started_at FROM etl_runs")]  # fmt: skip
            with psycopg.connect(db.url, autocommit=True) as conn:  # another pass resumed the run meanwhile
                conn.execute("UPDATE etl_runs SET status = 'running', resumes = resumes + 1")
            api.fail_everything = False
            page = await slow._fetch(_query(db, "SELECT next_url FROM etl_runs")[0][0])
            before = _query(db, "SELECT count(*) FROM appointments")
            with pytest.raises(load_module("etl", "etl_pass").LeaseLost):
                await slow._land(run, page)
        assert _query(db, "SELECT count(*) FROM appointments") == before

    async def test_a_checkpoint_that_keeps_failing_is_abandoned(self, db: Database, api: PatientApiStandIn) -> None:
        """After five failed resumes the run is superseded and a fresh pass starts from the first page."""
        api.fail_everything = True
        etl = Etl(db, _settings(api, ETL_ATTEMPTS="1"))
        for _ in range(7):  # the first attempt, five resumes, then a fresh pass
            assert (await etl.run()).status == "failed"
        assert _query(db, "SELECT status, resumes FROM etl_runs ORDER BY id") == [("superseded", 5), ("failed", 0)]
        assert _query(db, "SELECT count(*) FROM alerts WHERE kind = 'etl_pass_failed'")[0][0] == 7

    async def test_after_a_failed_full_reconcile_the_changes_come_first(
        self, db: Database, population: Population
    ) -> None:
        """A full reconcile that fails (and fails each resume) is followed by an incremental pass, so a
        page that breaks every full listing cannot hold back a cancellation; then the full one again."""
        with PatientApiStandIn(population, failure_rate=0.0) as api:  # failures only when told
            etl = Etl(db, _settings(api, ETL_FULL_RECONCILE_HOURS="0.000001", ETL_ATTEMPTS="1"))
            assert (await etl.run()).status == "succeeded"
            api.fail_everything = True
            for _ in range(6):  # the due full reconcile, then its five resumes
                assert (await etl.run()).mode == "full"
            api.fail_everything = False
            cancelled = _booked(population, 1)[0]
            population.cancel(cancelled)
            report = await etl.run()
            assert (report.mode, report.status, report.counts["changed"]) == ("incremental", "succeeded", 1)
            assert dict(_query(db, "SELECT id, status FROM appointments"))[cancelled] == "cancelled"
            assert (await etl.run()).mode == "full"


class TestQuarantine:
    async def test_bad_records_are_quarantined_and_the_rest_of_the_page_loads(
        self, etl: Etl, population: Population, db: Database
    ) -> None:
        """A record with a bad status, a wrong type or no patient is kept with its reason; the others land."""
        ids = population.ids()[:3]
        population.corrupt(ids[0], "bad-status")
        population.corrupt(ids[1], "wrong-type")
        population.corrupt(ids[2], "no-patient")
        report = await etl.run()
        assert report.status == "succeeded"
        rejected = _query(db, "SELECT event_id, reason FROM rejected_events WHERE receiver = 'etl'")
        assert {source_id.split("/")[-1] for source_id, _ in rejected} >= set(ids)
        assert not set(ids) & {row[0] for row in _query(db, "SELECT id FROM appointments")}
        assert ("etl_records_quarantined",) in _query(db, "SELECT kind FROM alerts")

    async def test_a_bad_page_is_kept_and_fetched_again(self, etl: Etl, api: PatientApiStandIn, db: Database) -> None:
        """A page of invalid JSON is quarantined whole and fetched again: nothing on it is lost."""
        api.failure_rate = 0.0
        api.bad_page_next = 1
        report = await etl.run()
        assert report.status == "succeeded"
        [(reason,)] = _query(db, "SELECT reason FROM rejected_events WHERE receiver = 'etl'")
        assert reason == "not JSON"  # the page is kept whole, then fetched again
        assert _query(db, "SELECT count(*) FROM appointments")[0][0] == report.counts["upserted"] > 0


class TestChangeDetection:
    async def test_time_venue_and_cancellation_each_give_one_event(
        self, etl: Etl, population: Population, db: Database
    ) -> None:
        """Rescheduled, relocated, cancelled: one changed event each with version 2; the rest emit nothing."""
        await etl.run()
        moved, relocated, cancelled = _booked(population, 3)
        population.reschedule(moved, population.appointment(moved).start + timedelta(hours=2))
        other_location = next(
            loc for loc in population.locations.values() if loc.id != population.appointment(relocated).location_id
        )
        population.relocate(relocated, other_location.id)
        population.cancel(cancelled)
        report = await etl.run()
        assert report.counts["changed"] == 3
        events = _query(db, "SELECT subject, data->>'reason', (data->>'version')::int FROM outbox ORDER BY subject")
        assert sorted(events) == sorted(
            [(moved, "rescheduled", 2), (relocated, "relocated", 2), (cancelled, "cancelled", 2)]
        )

    async def test_changes_reach_the_broker(self, db: Database, api: PatientApiStandIn, population: Population) -> None:
        """With a broker, change events are published as CloudEvents, not left in the outbox."""
        async with httpx.AsyncClient() as client:
            with Receiver() as ingress:
                etl = Etl(db, _settings(api), Publisher(db, ingress.url, client))
                await etl.run()
                population.cancel(_booked(population, 1)[0])
                await etl.run()
        assert [h["ce-type"] for h, _ in ingress.requests] == ["org.patientnotify.notice.due.v1"]


class TestReconcile:
    async def test_a_full_pass_marks_what_disappeared(
        self, db: Database, api: PatientApiStandIn, population: Population
    ) -> None:
        """An appointment deleted at the source is marked missing by the next full pass, with an alert."""
        etl = Etl(db, _settings(api, ETL_FULL_RECONCILE_HOURS="0.000001"))
        await etl.run()
        gone = _booked(population, 1)[0]
        population.delete(gone)
        report = await etl.run()
        assert report.mode == "full" and report.counts["missing"] == 1
        assert _query(db, "SELECT id FROM appointments WHERE missing_from_source_at IS NOT NULL") == [(gone,)]
        assert ("appointments_missing_from_source",) in _query(db, "SELECT kind FROM alerts")


class TestCommand:
    @pytest.mark.parametrize("source", ["fhir", "json"])
    def test_one_pass_from_the_command_line(
        self, api: PatientApiStandIn, migrated_database_url: str, source: str
    ) -> None:
        """`task etl -- --source … --base-url …` runs one pass and prints a one-line summary."""
        env = {**os.environ, "DATABASE_URL": migrated_database_url, "ETL_DEFAULT_ZONE": "Europe/London",
               "ETL_TIMEOUT_S": "0.3", "ETL_MAX_BACKOFF_S": "0.05"}  # fmt: skip
        env.pop("BROKER_URL", None)
        result = subprocess.run(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "function", "--source", source, "--base-url", f"{api.base_url}/{source}"],
            cwd=ROOT / "functions" / "etl", env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        [line] = result.stdout.splitlines()
        assert line.startswith("etl succeeded: mode=full") and "rejected=0" in line
