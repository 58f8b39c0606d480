"""Receipts that beat the provider id, on real PostgreSQL: the webhooks function keeps them pending,
and the monitor's tick applies them with the webhooks' own forward-only code (patient_notify.receipts).

Twilio may post ``sent``/``delivered`` within milliseconds of accepting a message, before the sender
has committed the sid its API call returned, and never posts them again. Here a send's provider call
posts its callbacks to the webhooks function before returning, which is exactly that race.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patient_notify.db import migrate
from patient_notify.db.migrate import _apply_pending, available_migrations
from sandbox.sns import SnsStandIn
from tests.integration.test_alerts import SinkStandIn
from tests.integration.test_monitor import Harness, fresh_etl, monitor
from tests.integration.test_webhooks import (
    CHAINS,
    PATIENT_DATA,
    CapturedLogs,
    Webhooks,
    captured_logs,
    new_sid,
    running_webhooks,
)
from tests.support.functions import load_module

DAY = timedelta(hours=24)  # the monitor's grace before a receipt matching nothing is alerted


@dataclass
class System:
    webhooks: Webhooks
    monitor: Harness
    now: datetime
    ingress: SinkStandIn  # the broker the monitor publishes to

    async def tick(self, after: timedelta = timedelta(0)) -> None:
        assert await self.monitor.tick(self.now + after) == 200

    def alerts(self, kind: str) -> list[tuple[str, str | None, int, str]]:
        return [(k, s, int(n), d) for k, s, n, d in self.monitor.sql(
            "SELECT dedup_key, subject, occurrences, detail FROM alerts WHERE kind = %s", [kind])]  # fmt: skip


@asynccontextmanager
async def running_system(url: str, sns: SnsStandIn, logs: CapturedLogs, ingress: SinkStandIn) -> AsyncIterator[System]:
    """The monitor and the webhooks on one database; the webhooks start last, so both log to ``logs``."""
    async with monitor(url, ingress) as harness, running_webhooks(url, sns, logs) as webhooks:
        now = datetime.now(UTC)
        fresh_etl(harness, now + 2 * DAY)  # fresh for every tick a test makes
        try:
            yield System(webhooks, harness, now, ingress)
        finally:
            await webhooks.db.close()


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    with captured_logs() as captured:
        yield captured


@pytest.fixture
async def system(migrated_database_url: str, sns: SnsStandIn, logs: CapturedLogs) -> AsyncIterator[System]:
    with SinkStandIn() as ingress:
        async with running_system(migrated_database_url, sns, logs, ingress) as running:
            yield running


class TestReceiptsBeforeTheSid:
    async def test_one_tick_applies_them_before_the_receipt_deadline_is_judged(self, system: System) -> None:
        """sent and delivered beat the sid: the notification stays sent until the next tick delivers it,
        even a tick past the receipt deadline (applied first: no receipt_missing, not counted as failed)."""
        nid, sid = await system.webhooks.raced_notification(["sent", "delivered"])
        assert (system.webhooks.status(nid), system.webhooks.match_states(sid)) == ("sent", ["pending", "pending"])
        await system.tick(timedelta(hours=2))
        assert (system.webhooks.status(nid), system.webhooks.match_states(sid)) == ("delivered", ["matched"] * 2)
        assert system.alerts("receipt_missing") == []
        history = system.webhooks.rows(
            "SELECT status FROM notification_status_history WHERE notification_id = %s ORDER BY id", nid
        )
        assert [s for (s,) in history] == ["queued", "sending", "sent", "delivered"]

    async def test_a_failure_applied_late_keeps_its_error_and_alerts_once(self, system: System) -> None:
        """An undelivered callback that beat the sid ends the notification undelivered with Twilio's error
        code, and one delivery_failed alert, however many ticks follow."""
        nid, _ = await system.webhooks.raced_notification(["undelivered", "undelivered"], ErrorCode="30003")
        await system.tick()
        await system.tick(timedelta(minutes=5))
        assert system.webhooks.rows("SELECT status, last_error FROM notifications WHERE id = %s", nid) == [
            ("undelivered", "twilio undelivered 30003")
        ]
        assert [(key, n) for key, _, n, _ in system.alerts("delivery_failed")] == [(f"delivery_failed:{nid}", 1)]

    async def test_delivered_never_regresses(self, system: System) -> None:
        """delivered then sent, both before the sid, then a late sent after it: delivered, moved forward only."""
        nid, sid = await system.webhooks.raced_notification(["delivered", "sent"])
        await system.tick()
        await system.webhooks.callbacks(sid, ["sent"])
        await system.tick(timedelta(minutes=5))
        assert system.webhooks.status(nid) == "delivered"
        history = system.webhooks.rows(
            "SELECT status FROM notification_status_history WHERE notification_id = %s ORDER BY id", nid
        )
        assert [s for (s,) in history] == ["queued", "sending", "sent", "delivered"]


class TestEmailFallbackOnTheTick:
    def published(self, system: System) -> list[tuple[str, str]]:
        """Each event the monitor published: (type, the notification it names)."""
        return [(h["ce-type"], str(body["notification_id"])) for _, h, body in system.ingress.requests
                if isinstance(body, dict) and "notification_id" in body]  # fmt: skip

    async def test_an_undelivered_receipt_applied_late_sends_one_email_that_tick(self, system: System) -> None:
        """undelivered beat the sid: the tick that applies it replaces the SMS by one email and publishes
        its send event at once; later ticks send nothing more."""
        nid, _ = await system.webhooks.raced_notification(["undelivered"], email=True, ErrorCode="30003")
        await system.tick()
        [(email_id,)] = system.webhooks.rows("SELECT id FROM notifications WHERE fallback_of = %s", nid)
        assert self.published(system) == [("org.patientnotify.email.send.v1", str(email_id))]
        await system.tick(timedelta(minutes=10))
        assert len(self.published(system)) == 1

    async def test_the_webhooks_fallback_is_published_by_the_next_drain(self, system: System) -> None:
        """An undelivered receipt on time: the webhooks stage the email's event; the monitor's drain sends it."""
        sid = new_sid()
        nid = await system.webhooks.sent_notification("twilio", sid, preference="sms", email=True)
        await system.webhooks.callbacks(sid, ["undelivered"], ErrorCode="30003")
        [(email_id,)] = system.webhooks.rows("SELECT id FROM notifications WHERE fallback_of = %s", nid)
        assert self.published(system) == []
        await system.tick(timedelta(minutes=5))  # past the drain's grace for rows left by their writer
        assert self.published(system) == [("org.patientnotify.email.send.v1", str(email_id))]
        assert system.alerts("outbox_unpublished") == []


class TestReceiptsMatchingNothing:
    async def test_one_alert_once_a_day_has_passed_and_never_again(self, system: System) -> None:
        """A callback for a sid no notification carries: pending for a day, then one receipt_unmatched
        alert naming the provider (no patient data), not raised again by later ticks."""
        sid = new_sid()
        await system.webhooks.callbacks(sid, ["delivered"])
        await system.tick(timedelta(hours=1))
        assert (system.webhooks.match_states(sid), system.alerts("receipt_unmatched")) == (["pending"], [])
        for after in (DAY + timedelta(hours=1), DAY + timedelta(hours=2)):
            await system.tick(after)
        [(key, subject, occurrences, detail)] = system.alerts("receipt_unmatched")
        assert (key, subject, occurrences) == ("receipt_unmatched:twilio", "twilio", 1)
        assert detail.startswith("1 verified twilio receipts matched no notification within 24 h")
        assert not any(secret in detail for secret in PATIENT_DATA)
        assert system.webhooks.match_states(sid) == ["orphaned"]

    async def test_an_orphan_is_applied_once_its_sid_is_recorded(self, system: System) -> None:
        """A send left unknown (the sid never stored): its delivered callback waits, alerted; an operator
        records the sid from the provider's console, and the next tick applies it."""
        sid, nid = new_sid(), await system.webhooks.queued_notification()
        for status in ("sending", "unknown"):
            system.webhooks.rows("UPDATE notifications SET status = %s WHERE id = %s RETURNING id", status, nid)
        await system.webhooks.callbacks(sid, ["delivered"])
        await system.tick(DAY + timedelta(hours=1))
        system.webhooks.rows(
            "UPDATE notifications SET provider = 'twilio', provider_message_id = %s WHERE id = %s RETURNING id",
            sid,
            nid,
        )
        await system.tick(DAY + timedelta(hours=2))
        assert (system.webhooks.status(nid), system.webhooks.match_states(sid)) == ("delivered", ["matched"])


class TestTheTicksCounts:
    async def test_it_reports_messages_applied_moves_and_receipts_given_up_on(self, system: System) -> None:
        """Two raced messages (three receipts, two moves to make) and one orphan past its grace."""
        for statuses in (["sent", "delivered"], ["delivered"]):
            await system.webhooks.raced_notification(statuses)
        await system.webhooks.callbacks(new_sid(), ["sent"])
        func = load_module("monitor", "func")
        cfg = {"DATABASE_URL": system.monitor.url, "BROKER_URL": "http://127.0.0.1:1/"}
        limits = func.limits_from(func.MonitorSettings.from_cfg(cfg))
        late = load_module("monitor", "late_receipts")
        at = system.now + DAY + timedelta(hours=1)
        counts = await late.apply_late_receipts(system.webhooks.db, at, limits, email_fallback=True)
        assert counts == late.LateReceipts(messages=2, moved=2, orphaned=1)


@dataclass
class SystemOnLoop:
    """The system on a loop of its own, which a synchronous (hypothesis) test drives."""

    system: System
    loop: asyncio.AbstractEventLoop

    def race(self, early: list[str], late: list[str], concurrency: int) -> int:
        """A send whose callbacks ``early`` beat the sid, ``late`` follow it; then one tick."""
        return self.loop.run_until_complete(_race(self.system, early, late, concurrency))


async def _race(system: System, early: list[str], late: list[str], concurrency: int) -> int:
    nid, sid = await system.webhooks.raced_notification(early, concurrency)
    await system.webhooks.callbacks(sid, late, concurrency)
    await system.tick()
    assert set(system.webhooks.match_states(sid)) <= {"matched"}
    return nid


@pytest.fixture
def system_on_loop(migrated_database_url: str, sns: SnsStandIn, logs: CapturedLogs) -> Iterator[SystemOnLoop]:
    loop = asyncio.new_event_loop()
    with SinkStandIn() as ingress:
        context = running_system(migrated_database_url, sns, logs, ingress)
        yield SystemOnLoop(loop.run_until_complete(context.__aenter__()), loop)
        loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()


class TestOrderingProperty:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        chain=st.sampled_from(CHAINS),
        picks=st.lists(st.integers(0, 4), min_size=1, max_size=8),
        before_sid=st.integers(0, 8),
        concurrency=st.integers(1, 3),
    )
    def test_any_order_duplication_and_timing_ends_at_the_furthest_status(
        self, system_on_loop: SystemOnLoop, chain: list[str], picks: list[int], before_sid: int, concurrency: int
    ) -> None:
        """Callbacks of one message in any order, repeated, some at once, the first ``before_sid`` of them
        before the sid is recorded, then one tick: the furthest status that arrived, reached forward only."""
        arrived = [chain[i % len(chain)] for i in picks]
        nid = system_on_loop.race(arrived[:before_sid], arrived[before_sid:], concurrency)
        final = chain[-1] if chain[-1] in arrived else "sent"
        webhooks = system_on_loop.system.webhooks
        history = [s for (s,) in webhooks.rows(
            "SELECT status FROM notification_status_history WHERE notification_id = %s ORDER BY id", nid)]  # fmt: skip
        assert webhooks.status(nid) == final
        assert history == ["queued", "sending", "sent"] + ([final] if final != "sent" else [])


class TestReceiptsKeptBeforeTheMigration:
    async def test_unapplied_ones_wait_and_settled_ones_are_matched(self, empty_database_url: str) -> None:
        """Migration 0008 marks the receipts already kept: pending unless their notification is final
        (applying one twice changes nothing); inbound messages and refused requests are never matched."""
        before = [m for m in available_migrations() if m.version < 8]
        with psycopg.connect(empty_database_url) as conn:
            _apply_pending(conn, before)
            # The schema as it was (no save_batch: today's upsert writes columns from later migrations).
            conn.execute("INSERT INTO locations (id, name, phone, timezone) VALUES ('loc-1', 'Clinic', '+12025550100',"
                         " 'America/New_York')")  # fmt: skip
            conn.execute("INSERT INTO patients (id, given_name, channel_preference) VALUES ('pat-1', 'Zoe', 'sms')")
            conn.execute("INSERT INTO appointments (id, patient_id, location_id, starts_at, status, reminder_local_date,"
                         " reminder_due_at, reminder_window_end) VALUES ('appt-1', 'pat-1', 'loc-1', now() + interval"
                         " '4 days', 'booked', current_date + 1, now() + interval '1 day', now() + interval '1 day')")  # fmt: skip
            for key, status, sid in [("a", "sent", "SMa"), ("b", "delivered", "SMb")]:
                conn.execute("INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, "
                             "channel, recipient, language, body, status, provider, provider_message_id) "
                             "VALUES (%s, 'appt-1', 1, 'reminder', 'sms', '+12025550123', 'en', 'Hi', %s, 'twilio', %s)",
                             (key, status, sid))  # fmt: skip
            for kind, sid, verified in [("status", "SMa", True), ("status", "SMb", True), ("status", "SMz", True),
                                        ("inbound", "SMi", True), ("status", "SMa", False)]:  # fmt: skip
                conn.execute("INSERT INTO provider_receipts (provider, kind, provider_message_id, status, verified, "
                             "payload) VALUES ('twilio', %s, %s, 'delivered', %s, %s)",
                             (kind, sid, verified, json.dumps({})))  # fmt: skip
        assert migrate(empty_database_url) == [m.version for m in available_migrations() if m.version >= 8]
        with psycopg.connect(empty_database_url) as conn:
            states = conn.execute("SELECT match_state FROM provider_receipts ORDER BY id").fetchall()
        assert [s for (s,) in states] == ["pending", "matched", "pending", None, None]
