"""The etl function served by func-python: a PingSource tick runs one pass into PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from sandbox.patient_api import PatientApiStandIn, Population
from sandbox.processes import FunctionProcess
from tests.support.receiver import Receiver


def _tick() -> CloudEvent:
    return CloudEvent(attributes={
        "id": "etl-tick-1", "source": "/apis/v1/namespaces/patient-notify/pingsources/etl-tick",
        "type": "dev.knative.sources.ping", "specversion": "1.0", "datacontenttype": "application/json",
    }, data={"job": "etl-pass"})  # fmt: skip


class TestEtlFunction:
    def test_a_tick_runs_a_pass_and_changes_reach_the_broker(self, migrated_database_url: str, tmp_path: Path) -> None:
        """A tick loads the horizon; after a cancellation at the source, the next tick announces it."""
        population = Population.generate(300, seed=4, start=datetime.now(UTC))
        env = {"DATABASE_URL": migrated_database_url, "ETL_SOURCE": "fhir", "ETL_DEFAULT_ZONE": "America/Chicago"}
        with (
            PatientApiStandIn(population, failure_rate=0.1, seed=2, stall_s=0.5) as api,
            Receiver() as broker,
            (tmp_path / "etl.log").open("wb") as log,
        ):
            etl = FunctionProcess("etl", {**env, "BROKER_URL": broker.url, "ETL_SOURCE_URL": api.fhir_url,
                                          "ETL_TIMEOUT_S": "0.3", "ETL_MAX_BACKOFF_S": "0.05"}, log)  # fmt: skip
            etl.start()
            try:
                etl.wait_ready()
                message = to_binary_event(_tick())
                assert httpx.post(etl.url, headers=message.headers, content=message.body, timeout=60).status_code == 200
                with psycopg.connect(migrated_database_url) as conn:
                    [(loaded,)] = conn.execute("SELECT count(*) FROM appointments").fetchall()
                    booked = conn.execute("SELECT id FROM appointments WHERE status = 'booked' LIMIT 1").fetchone()
                assert loaded > 250 and booked is not None
                population.cancel(booked[0])
                assert httpx.post(etl.url, headers=message.headers, content=message.body, timeout=60).status_code == 200
            finally:
                etl.stop()
        assert [h["ce-type"] for h, _ in broker.requests] == ["org.patientnotify.notice.due.v1"]
        assert [h["ce-subject"] for h, _ in broker.requests] == [booked[0]]
