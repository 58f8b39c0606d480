"""ETL throughput: full passes over N appointments from the sandbox hospital API failing 10% of calls.

The API (``sandbox.patient_api``: FHIR R4, faults in rotation: 500, 503 with Retry-After 1 s, a 2 s
stall, a dropped connection) runs as its own process, as does the etl function (func-python),
with its deployed defaults (pages of 500, 5 s timeout, 6 attempts). Its tick is POSTed to the
function directly; a failed pass is resumed by the next tick, as the PingSource would, and the
time counts every pass until one succeeds. Change events go to an ingress that routes nowhere.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
from cloudevents.core.bindings.http import to_binary_event

from bench.databases import fresh_database
from sandbox.pingsources import load_pingsources
from sandbox.processes import ROOT, FunctionProcess
from sandbox.router import LocalRouter

__all__ = ["measure_etl"]

PASSES = 5  # ticks before giving up
PASS_TIMEOUT_S = 1800.0  # a pass takes what it takes; the Trigger's 60 s would cut a 100,000-record one


def measure_etl(count: int, failure_rate: float, logs: Path) -> dict[str, Any]:
    with fresh_database() as url, ExitStack() as stack:
        api = _start_api(stack, count, failure_rate, stack.enter_context((logs / "patient-api.log").open("wb")))
        ingress = LocalRouter([], {})
        ingress.start()
        stack.callback(ingress.stop)
        env = {"DATABASE_URL": url, "BROKER_URL": ingress.ingress_url, "ETL_SOURCE": "fhir", "ETL_SOURCE_URL": api,
               "ETL_DEFAULT_ZONE": "America/Chicago"}  # fmt: skip
        etl = FunctionProcess("etl", env, stack.enter_context((logs / "etl.log").open("wb")))
        etl.start()
        stack.callback(etl.stop)
        etl.wait_ready(120)
        started = time.perf_counter()
        for _ in range(PASSES):
            if _tick(etl.url) and _last_run(url)["status"] == "succeeded":
                break
        elapsed = time.perf_counter() - started
        run = _last_run(url)
    return {"appointments": count, "api_failure_rate": failure_rate, "seconds": round(elapsed, 1),
            "appointments_per_s": round(run["upserted"] / elapsed, 1), **run}  # fmt: skip


def _start_api(stack: ExitStack, count: int, failure_rate: float, log: IO[bytes]) -> str:
    """The API's FHIR base URL, once it has generated its population and listens."""
    command = [sys.executable, "-m", "sandbox.patient_api", "--count", str(count), "--failure-rate", str(failure_rate)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)  # noqa: S603 - our interpreter and module
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("FHIR R4 base"):
            return line.split()[-1]
    raise RuntimeError("the patient API stand-in exited before it listened")


def _tick(url: str) -> bool:
    """One etl-tick, as its Trigger delivers it (but with no timeout: a pass takes what it takes)."""
    [source] = [p for p in load_pingsources(ROOT / "knative") if p.name == "etl-tick"]
    message = to_binary_event(source.event(datetime.now(UTC)))
    return httpx.post(url, headers=message.headers, content=message.body, timeout=PASS_TIMEOUT_S).status_code == 200


def _last_run(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status, pages, fetched, upserted, rejected, requests, retries, resumes FROM etl_runs "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    names = ("status", "pages", "fetched", "upserted", "rejected", "requests", "retries", "resumes")
    return dict(zip(names, row or (None,) * len(names), strict=True))
