"""Scheduled reminders end to end: exactly one message per (appointment, channel), whatever happens."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from patient_notify.catalog import save_batch
from patient_notify.db import Database
from sandbox.ses import SesStandIn
from tests.e2e.conftest import System, start_system
from tests.e2e.population import Population, build_population

TICK_SOURCE = "/apis/v1/namespaces/patient-notify/pingsources/scheduler-tick"
APPOINTMENTS = 1000


def _tick(at: datetime) -> CloudEvent:
    return CloudEvent(attributes={
        "id": f"tick-{at:%Y%m%d%H%M}", "source": TICK_SOURCE, "type": "dev.knative.sources.ping",
        "specversion": "1.0", "time": at, "datacontenttype": "application/json",
    }, data={"job": "plan-reminders"})  # fmt: skip


def _run_day(system: System, population: Population, start: datetime) -> None:
    """Load the data, then tick every 15 minutes through the 48 hours in which the reminders fall due."""

    async def load() -> None:
        db = Database(system.database_url, max_size=2)
        async with db.transaction() as tx:
            await save_batch(tx, population.batch)
        await db.close()

    asyncio.run(load())
    with httpx.Client() as client:
        for step in range(48 * 4 + 1):
            message = to_binary_event(_tick(start + timedelta(minutes=15 * step)))
            assert (
                client.post(system.router.ingress_url, headers=message.headers, content=message.body).status_code == 202
            )
    assert system.router.wait_idle(timeout=480), "the pipeline did not settle"


def _sent(system: System) -> Counter[tuple[str, str]]:
    sms = Counter((m.to, "sms") for m in system.twilio.messages)
    email = Counter((to, "email") for m in system.ses.sent_messages() if m.source == system.email_from for to in m.to)
    return sms + email


def _table(system: System, sql: str) -> dict[str, int]:
    with psycopg.connect(system.database_url) as conn:
        return {str(row[0]): int(row[1]) for row in conn.execute(sql.encode())}


def _assert_exactly_once(system: System, population: Population, *, ticks_reordered: bool = False) -> None:
    sent = _sent(system)
    assert set(sent) == population.expected
    assert max(sent.values()) == 1, [k for k, v in sent.items() if v > 1][:5]
    assert _table(system, "SELECT status, count(*) FROM notifications GROUP BY status") == {
        "sent": len(population.expected)
    }
    assert _table(system, "SELECT 'pending', count(*) FROM outbox WHERE published_at IS NULL") == {"pending": 0}
    assert _table(system, "SELECT receiver || ': ' || reason, count(*) FROM rejected_events GROUP BY 1") == {}
    alerts = _table(system, "SELECT kind, count(*) FROM alerts GROUP BY kind")
    assert alerts.pop("no_usable_contact") == population.unreachable
    # A tick handled after a later one (reordered) finds reminders past their window: alerted as late.
    assert set(alerts) <= ({"reminder_late"} if ticks_reordered else set())
    stats = system.router.stats
    assert (stats.dropped, stats.dead_lettered, stats.errors) == ([], [], [])


def _assert_no_patient_data_in_logs(logs: Path, population: Population) -> None:
    text = "\n".join(path.read_text(errors="replace") for path in logs.glob("*.log"))
    assert "send.sent" in text  # the logs were captured at all
    leaked = [secret for secret in population.secrets if secret in text]
    assert leaked == []


@pytest.fixture
def start() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=now.minute % 15)


class TestScheduledReminders:
    def test_each_appointment_gets_one_message_per_chosen_channel(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path, start: datetime
    ) -> None:
        """1,000 appointments in five zones: one reminder per (appointment, channel), all sent, logs clean."""
        population = build_population(APPOINTMENTS, start)
        with ExitStack() as stack:
            system = start_system(stack, migrated_database_url, ses, tmp_path)
            _run_day(system, population, start)
            _assert_exactly_once(system, population)
        _assert_no_patient_data_in_logs(tmp_path, population)

    def test_every_event_delivered_twice_in_shuffled_order_still_sends_once(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path, start: datetime
    ) -> None:
        """The broker's at-least-once delivery, doubled and reordered, never doubles a message."""
        population = build_population(APPOINTMENTS, start)
        with ExitStack() as stack:
            system = start_system(stack, migrated_database_url, ses, tmp_path, duplicate=True)
            _run_day(system, population, start)
            _assert_exactly_once(system, population, ticks_reordered=True)
            assert sum(system.router.stats.delivered.values()) >= 2 * len(population.expected)

    def test_a_provider_failing_a_fifth_of_calls_still_sends_each_once(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path, start: datetime
    ) -> None:
        """Twilio refusing 20% of calls (429/503): broker retries deliver every SMS once, none left pending."""
        population = build_population(APPOINTMENTS, start)
        with ExitStack() as stack:
            system = start_system(stack, migrated_database_url, ses, tmp_path, twilio_failure_rate=0.2)
            _run_day(system, population, start)
            _assert_exactly_once(system, population)
            assert system.twilio.injected_failures > 0.1 * len(system.twilio.messages)
            assert system.router.stats.retried["sms-sender"] == system.twilio.injected_failures
