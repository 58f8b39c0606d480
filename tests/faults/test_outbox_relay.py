"""10,000 events through the outbox relay, with latency and 1% resets in front of the broker ingress.

The relay is ``patient_notify.outbox.Publisher``: ``publish`` POSTs committed rows, ``drain``
re-sends whatever is still unpublished. A fault proxy between it and the broker ingress adds
latency to every chunk and resets 1% of chunks either way: a reset request never arrives (the
relay sends it again), a reset reply arrives after the ingress accepted the event (the relay
cannot tell, sends it again, and the broker carries it twice: at least once). The consumer, the
real dispatcher, records each event's (source, id) with its effect in one transaction, so each of
the 10,000 events takes effect once however often it is delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import psycopg

from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.events import ReminderDue
from patient_notify.outbox import Publisher, stage
from sandbox.faultproxy import FaultProxy
from sandbox.processes import ROOT
from sandbox.router import LocalRouter
from sandbox.triggers import load_triggers
from tests.e2e.population import Population, build_population
from tests.faults.conftest import Figures
from tests.faults.harness import load_batch
from tests.support.receiver import Receiver

EVENTS = 10_000
RESET_RATE = 0.01  # per chunk, either way
LATENCY_S = 0.002  # per chunk, each way
SCHEDULER = "/patient-notify/scheduler"


def reminder_events(population: Population) -> list[ReminderDue]:
    """One reminder.due per appointment, as the scheduler stages them."""
    zones = {loc.id: loc.timezone for loc in population.batch.locations}
    return [
        ReminderDue(appointment_id=a.id, appointment_version=1, due_at=a.starts_at - timedelta(days=3),
                    local_date=a.starts_at.astimezone(ZoneInfo(zones[a.location_id])).date())
        for a in population.batch.appointments
    ]  # fmt: skip


async def relay(database_url: str, ingress_url: str, events: list[ReminderDue]) -> list[tuple[int, int]]:
    """Stage every event in one transaction, publish, then drain until none is left unpublished;
    (published, failed) per round."""
    db = Database(database_url, max_size=4)
    try:
        async with db.transaction() as tx:
            ids = await stage(tx, [new_event(e, source=SCHEDULER, subject=e.appointment_id) for e in events])
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0)) as client:
            publisher = Publisher(db, ingress_url, client)
            report = await publisher.publish(ids)
            rounds = [(report.published, report.failed)]
            while report.failed and len(rounds) < 20:
                report = await publisher.drain(limit=EVENTS, min_age_s=0)
                rounds.append((report.published, report.failed))
        return rounds
    finally:
        await db.close()


class TestOutboxRelay:
    def test_ten_thousand_events_through_latency_and_resets_are_each_delivered(
        self, migrated_database_url: str, figures: Figures
    ) -> None:
        """All 10,000 rows published and delivered; a copy only where the relay saw a publish fail."""
        population = build_population(EVENTS, datetime.now(UTC))
        load_batch(migrated_database_url, population.batch)
        with ExitStack() as stack:
            subscriber = stack.enter_context(Receiver(status=200))
            triggers = [t for t in load_triggers(ROOT / "knative") if t.name == "dispatcher-reminder-due"]
            broker = LocalRouter(triggers, {"dispatcher": subscriber.url}, backoff_scale=0.05)
            broker.start()
            stack.callback(broker.stop)
            ingress = urlsplit(broker.ingress_url)
            proxy = stack.enter_context(FaultProxy(ingress.hostname or "127.0.0.1", ingress.port or 80, seed=11))
            proxy.latency_s, proxy.reset_rate = LATENCY_S, RESET_RATE

            began = time.monotonic()
            rounds = asyncio.run(relay(migrated_database_url, f"http://{proxy.address}/", reminder_events(population)))
            relayed_s = time.monotonic() - began
            assert broker.wait_idle(120), "the broker did not settle"

            delivered = Counter(subscriber.event_ids())
            copies = sum(delivered.values()) - len(delivered)
            figures(events=EVENTS, relay_rounds=rounds, relay_seconds=round(relayed_s, 1),
                    resets=proxy.stats.resets, reply_resets=proxy.stats.reply_resets,
                    ingested=broker.stats.ingested, deliveries=sum(delivered.values()), copies=copies,
                    unpublished=_unpublished(migrated_database_url))  # fmt: skip
            assert _unpublished(migrated_database_url) == 0
            assert proxy.stats.resets >= 0.5 * RESET_RATE * EVENTS, "the faults did not happen"
            assert len(delivered) == EVENTS, f"{EVENTS - len(delivered)} events never delivered"
            # A copy needs a publish the relay saw fail after the ingress had it: a reset reply, or a
            # reply later than the relay's 10 s timeout (latency, a loaded machine).
            assert copies <= sum(failed for _, failed in rounds), "a copy no failed publish explains"
            assert broker.stats.ingested == sum(delivered.values())
            assert (broker.stats.dropped, broker.stats.dead_lettered, broker.stats.errors) == ([], [], [])


def _unpublished(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        [(count,)] = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchall()
    return int(count)
