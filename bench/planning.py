"""Scheduler planning time: one tick with N reminders due, in a fresh database.

The scheduler's own code (``functions/scheduler``) runs in this process on real PostgreSQL with
its ingress faked at the HTTP boundary (``httpx.MockTransport`` answering 202 at once). Two
figures, each on its own copy of the seeded database:

- planning: the tick with publishing left out (claim, plan and stage every event in the outbox,
  the late and missed checks, the capacity check): the set-based SQL and the pure planning;
- tick: the same tick publishing to an ingress that answers at once (encoding and POSTing
  CloudEvents through httpx, and marking them published) until its publish budget runs out, as it
  does against the Trigger's 60 s timeout; how many it published is reported beside it, the rest
  is left in the outbox for the next drain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from bench.databases import clone_database, fresh_database
from bench.population import DuePopulation, due_population, seed
from patient_notify.db import Database
from patient_notify.events import ReminderDue
from patient_notify.function import Runtime
from patient_notify.outbox import DRAIN_MIN_AGE_S, LEASE_S, Publisher, PublishReport
from sandbox.pingsources import load_pingsources
from sandbox.processes import ROOT
from tests.support.functions import load_module

__all__ = ["measure_planning"]

INGRESS = "http://ingress.bench/"  # answered by the MockTransport; never resolved


class StagingOnly(Publisher):
    """Leaves staged events in the outbox: what is timed is the planning alone."""

    async def publish(self, ids: Sequence[int]) -> PublishReport:
        return PublishReport(0, 0)

    async def drain(
        self, *, limit: int = 1000, min_age_s: float = DRAIN_MIN_AGE_S, lease_s: float = LEASE_S, after_id: int = 0
    ) -> PublishReport:
        return PublishReport(0, 0)


def measure_planning(count: int) -> dict[str, Any]:
    population = due_population(count, datetime.now(UTC).date())
    with fresh_database() as url:
        started = time.perf_counter()
        seed(url, population)
        seeded = time.perf_counter() - started
        with clone_database(url) as copy:
            planning = asyncio.run(_tick(url, population, publish=False))
            tick = asyncio.run(_tick(copy, population, publish=True))
            published = _reminders_published(copy)
    return {"appointments": count, "planning_s": round(planning, 2), "tick_with_publishing_s": round(tick, 2),
            "tick_published": published, "seed_s": round(seeded, 1)}  # fmt: skip


async def _tick(url: str, population: DuePopulation, *, publish: bool) -> float:
    scheduler_module = load_module("scheduler", "func")
    settings = scheduler_module.SchedulerSettings.from_cfg({"DATABASE_URL": url, "BROKER_URL": INGRESS})
    db = Database(url, max_size=settings.db_pool_max)
    accepted = httpx.MockTransport(lambda request: httpx.Response(202))
    async with httpx.AsyncClient(transport=accepted) as http:
        kind = Publisher if publish else StagingOnly
        runtime = Runtime("scheduler", db, kind(db, INGRESS, http, settings.publish_concurrency), http)
        scheduler = scheduler_module.Scheduler(runtime, settings)
        [tick] = [p for p in load_pingsources(ROOT / "knative") if p.name == "scheduler-tick"]
        started = time.perf_counter()
        await scheduler.on_tick(tick.event(population.tick_at))
        elapsed = time.perf_counter() - started
    await db.close()
    if (staged := _reminders_staged(url)) != population.count:
        raise RuntimeError(f"the tick staged {staged} reminders, not {population.count}")
    return elapsed


def _reminders_staged(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE type = %s", [ReminderDue.TYPE]).fetchone()
    return int(row[0]) if row else 0


def _reminders_published(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox WHERE type = %s AND published_at IS NOT NULL", [ReminderDue.TYPE]
        ).fetchone()
    return int(row[0]) if row else 0
