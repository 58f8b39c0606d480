"""The monitor function, built by its own ``new()`` and ``start(cfg)``, ticked with an injected clock,
against the real database, a real RabbitMQ and local HTTP stand-ins for the ingress and the sinks."""

from __future__ import annotations

import json
import math
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pika  # type: ignore[import-untyped]  # pika ships no stubs
import psycopg
import pytest
from cloudevents.core.v1.event import CloudEvent

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.codec import encode_binary, new_event
from patient_notify.db import Database
from patient_notify.events import PingTick, ReminderDue, SmsSendRequested
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.integration.test_alerts import SinkStandIn
from tests.support.functions import load_module

monitor_module = load_module("monitor", "func")
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
TICK_SOURCE = "/apis/v1/namespaces/patient-notify/pingsources/monitor-tick"
NOW = datetime.now(UTC)  # each test's start (see _now): ticks pass instants relative to it


@pytest.fixture(autouse=True)
def _now() -> None:
    """NOW is the test's own start, not the module's import: the drain ages rows by the database's clock."""
    global NOW
    NOW = datetime.now(UTC)


@dataclass
class Harness:
    url: str
    function: Any
    ingress: SinkStandIn

    async def tick(self, at: datetime) -> int:
        headers, body = encode_binary(new_event(PingTick(job="monitor"), source=TICK_SOURCE, time=at))
        status, _ = await self.function.process(headers, body)
        return int(status)

    async def post(self, event: CloudEvent) -> int:
        headers, body = encode_binary(event)
        status, _ = await self.function.process(headers, body)
        return int(status)

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            cur = conn.execute(statement.encode(), params)
            return cur.fetchall() if cur.description else []

    def open_alerts(self, kind: str | None = None) -> set[tuple[str, str | None]]:
        found = self.sql("SELECT kind, subject FROM alerts WHERE resolved_at IS NULL")
        return {(k, s) for k, s in found if kind is None or k == kind}

    def status(self, notification_id: int) -> str:
        return str(self.sql("SELECT status FROM notifications WHERE id = %s", [notification_id])[0][0])

    def sent_events(self) -> list[tuple[str, str]]:
        """(ce-type, ce-subject) of every event the ingress accepted."""
        return [(h["ce-type"], h.get("ce-subject", "")) for _, h, _ in self.ingress.requests]


@asynccontextmanager
async def monitor(
    url: str, ingress: SinkStandIn, cfg: Mapping[str, str] | None = None, *,
    clock: Callable[[], float] = time.monotonic, **settings: str,
) -> AsyncIterator[Harness]:  # fmt: skip
    """The monitor, started on ``cfg`` and ``settings``; ``clock`` times its publish budget."""
    function = monitor_module.new(clock=clock)
    function.start({"DATABASE_URL": url, "BROKER_URL": ingress.url + "/", "LOG_LEVEL": "WARNING", **(cfg or {}),
                    **settings})  # fmt: skip
    try:
        assert function.ready() == (True, "OK")
        yield Harness(url, function, ingress)
    finally:
        await function.aclose()


@pytest.fixture
def ingress() -> Iterator[SinkStandIn]:
    with SinkStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def harness(migrated_database_url: str, ingress: SinkStandIn, db: Database) -> AsyncIterator[Harness]:
    await seed_catalog(db)
    async with monitor(migrated_database_url, ingress) as h:
        fresh_etl(h, NOW)
        yield h


async def seed_catalog(db: Database) -> None:
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch([make_location()], [make_patient()], [make_contact()],
                                         [make_appointment(starts_at=NOW + timedelta(days=3))]))  # fmt: skip


def fresh_etl(h: Harness, finished: datetime) -> None:
    h.sql("INSERT INTO etl_runs (source, mode, status, started_at, finished_at, lease_until, window_start, window_end) "
          "VALUES ('fhir:test', 'full', 'succeeded', %s, %s, %s, %s, %s)", [finished, finished, finished, finished, finished])  # fmt: skip


def notifications(
    h: Harness, status: str, updated: datetime, count: int = 1, *, provider: str | None = None, channel: str = "sms"
) -> list[int]:
    """``count`` notifications in ``status`` since ``updated`` (inserted as they would be found)."""
    prefix = uuid.uuid4().hex
    found = h.sql(
        "INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, channel, recipient, "
        "language, body, status, provider, created_at, updated_at) "
        "SELECT %s || g, 'appt-1', 1, 'reminder', %s, '+12025550123', 'en', 'Hi', %s, %s, %s, %s "
        "FROM generate_series(1, %s) g RETURNING id",
        [prefix, channel, status, provider, updated, updated, count],
    )
    return [int(r[0]) for r in found]


def outbox_row(
    h: Harness, event: CloudEvent, created: datetime, published: datetime | None, *, event_id: str | None = None
) -> int:
    found = h.sql(
        "INSERT INTO outbox (event_id, type, source, subject, data, created_at, published_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [event_id or event.get_id(), event.get_type(), event.get_source(), event.get_subject(),
         json.dumps(event.get_data()), created, published],
    )  # fmt: skip
    return int(found[0][0])


def send_event(notification_id: int) -> CloudEvent:
    data = SmsSendRequested(notification_id=notification_id, appointment_id="appt-1")
    return new_event(data, source="/patient-notify/dispatcher", subject=str(notification_id))


def reminder_event() -> CloudEvent:
    data = ReminderDue(appointment_id="appt-1", appointment_version=1, local_date=NOW.date(), due_at=NOW)
    return new_event(data, source="/patient-notify/scheduler", subject="appt-1")


class TestNotificationsPastTheirDeadline:
    async def test_a_send_stuck_in_sending_becomes_unknown_with_an_alert(self, harness: Harness) -> None:
        """Claimed 10 minutes ago and never settled: unknown + delivery_unknown; one claimed 30 s ago is left alone."""
        [stuck] = notifications(harness, "sending", NOW - timedelta(minutes=10))
        [busy] = notifications(harness, "sending", NOW - timedelta(seconds=30))
        assert await harness.tick(NOW) == 200
        assert (harness.status(stuck), harness.status(busy)) == ("unknown", "sending")
        assert harness.open_alerts() == {("delivery_unknown", str(stuck))}

    async def test_a_stalled_queued_message_is_sent_again_and_alerted_until_it_moves(self, harness: Harness) -> None:
        """Queued 20 min, its send event lost: re-staged once with an alert, which clears when it is sent."""
        [stalled] = notifications(harness, "queued", NOW - timedelta(minutes=20))
        outbox_row(harness, send_event(stalled), NOW - timedelta(minutes=20), NOW - timedelta(minutes=20))
        await harness.tick(NOW)
        await harness.tick(NOW + timedelta(minutes=5))  # the re-staged event is in flight: not again
        assert harness.sent_events() == [(SmsSendRequested.TYPE, str(stalled))]
        assert harness.open_alerts() == {("notification_stalled", str(stalled))}
        harness.sql("UPDATE notifications SET status = 'sending' WHERE id = %s", [stalled])
        harness.sql("UPDATE notifications SET status = 'sent', provider = 'twilio' WHERE id = %s", [stalled])
        await harness.tick(NOW + timedelta(minutes=10))
        assert harness.open_alerts() == set()

    async def test_queued_with_an_event_in_flight_or_on_hold_is_left_alone(self, harness: Harness) -> None:
        """A held notice, one just released (send event staged now), one whose event awaits the drain: no alert."""
        [held, released, draining] = notifications(harness, "queued", NOW - timedelta(hours=8), 3)
        harness.sql("UPDATE notifications SET hold_until = %s WHERE id = %s", [NOW + timedelta(hours=1), held])
        outbox_row(harness, send_event(released), NOW - timedelta(minutes=1), NOW - timedelta(minutes=1))
        outbox_row(harness, send_event(draining), NOW - timedelta(minutes=5), None)  # the drain sends it
        await harness.tick(NOW)
        assert harness.open_alerts() == set() and harness.sent_events() == [(SmsSendRequested.TYPE, str(draining))]

    async def test_unknown_is_alerted_until_a_receipt_settles_it(self, harness: Harness) -> None:
        """An unknown outcome nobody alerted gets delivery_unknown, resolved once a receipt says delivered."""
        [unknown] = notifications(harness, "unknown", NOW - timedelta(minutes=30), provider="twilio")
        await harness.tick(NOW)
        assert harness.open_alerts() == {("delivery_unknown", str(unknown))}
        harness.sql("UPDATE notifications SET status = 'delivered' WHERE id = %s", [unknown])
        await harness.tick(NOW + timedelta(minutes=5))
        assert harness.open_alerts() == set()
        assert harness.sql("SELECT count(*) FROM alerts WHERE resolved_at IS NOT NULL") == [(1,)]

    async def test_a_missing_receipt_is_alerted_only_where_one_is_due(self, harness: Harness) -> None:
        """Sent by Twilio 2 h ago with no receipt: receipt_missing; by SMTP (never receipts) or 10 min ago: nothing."""
        [late] = notifications(harness, "sent", NOW - timedelta(hours=2), provider="twilio")
        notifications(harness, "sent", NOW - timedelta(hours=2), provider="smtp", channel="email")
        notifications(harness, "sent", NOW - timedelta(minutes=10), provider="twilio")
        await harness.tick(NOW)
        assert harness.open_alerts() == {("receipt_missing", str(late))}


class TestTheOutbox:
    async def test_unpublished_rows_are_published_and_a_refused_one_alerted(
        self, harness: Harness, ingress: SinkStandIn
    ) -> None:
        """Past the grace period: re-published; one the ingress keeps refusing is alerted until it goes out."""
        ingress.answer = lambda path, headers: 503 if headers["ce-id"] == "refused-event" else 202
        ok = outbox_row(harness, reminder_event(), NOW - timedelta(minutes=10), None)
        bad = outbox_row(harness, reminder_event(), NOW - timedelta(minutes=10), None, event_id="refused-event")
        young = outbox_row(harness, reminder_event(), NOW - timedelta(seconds=10), None)  # still with its writer
        await harness.tick(NOW)
        published = dict(harness.sql("SELECT id, published_at IS NOT NULL FROM outbox"))
        assert published == {ok: True, bad: False, young: False}
        assert harness.open_alerts() == {("outbox_unpublished", str(bad))}
        ingress.answer = lambda path, headers: 202
        await harness.tick(NOW + timedelta(minutes=5))
        assert harness.open_alerts() == set()

    async def test_a_row_another_publisher_holds_is_alerted_only_past_the_stall_time(self, harness: Harness) -> None:
        """A backlog the scheduler is still publishing (leased, never tried) is no failure at 10 min; at 20 min it is."""
        rows = [outbox_row(harness, reminder_event(), NOW - timedelta(minutes=m), None) for m in (10, 20)]
        harness.sql("UPDATE outbox SET lease_until = now() + interval '5 minutes' WHERE id = ANY(%s)", [rows])
        await harness.tick(NOW)
        assert harness.sql("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(2,)]  # the drain skipped both
        assert harness.open_alerts() == {("outbox_unpublished", str(rows[1]))}

    async def test_a_backlog_longer_than_the_budget_is_drained_over_several_ticks_each_row_once(
        self, migrated_database_url: str, ingress: SinkStandIn, db: Database
    ) -> None:
        """The tick stops publishing when its budget is spent (it must answer inside its Trigger's
        timeout); the next tick sends the rest; no row twice, and a backlog being drained is no alert."""
        await seed_catalog(db)
        concurrency = 4
        # The clock says each POST to the ingress took one second.
        async with monitor(migrated_database_url, ingress, clock=lambda: float(len(ingress.requests)),
                           PUBLISH_CONCURRENCY=str(concurrency)) as h:  # fmt: skip
            fresh_etl(h, NOW)
            chunk = concurrency * monitor_module.CHUNK_ROUNDS
            in_budget = chunk * math.ceil(monitor_module.PUBLISH_BUDGET_S / chunk)
            count = in_budget + chunk + 3
            for _ in range(count):
                outbox_row(h, reminder_event(), NOW - timedelta(minutes=5), None)
            assert await h.tick(NOW) == 200
            assert len(ingress.requests) == in_budget
            assert h.sql("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(count - in_budget,)]
            assert h.open_alerts("outbox_unpublished") == set()
            assert await h.tick(NOW + timedelta(minutes=5)) == 200
        staged = [r[0] for r in h.sql("SELECT event_id FROM outbox WHERE published_at IS NOT NULL")]
        sent = [headers["ce-id"] for _, headers, _ in ingress.requests]
        assert len(staged) == count and sorted(sent) == sorted(staged)

    async def test_refused_rows_are_posted_once_per_tick_and_the_rows_after_them_still_go_out(
        self, migrated_database_url: str, ingress: SinkStandIn, db: Database
    ) -> None:
        """A drain in chunks walks the outbox once: a row the ingress refuses is not retried in the same
        tick (it is alerted instead), and a chunk with a refusal in it does not stop the drain."""
        await seed_catalog(db)
        ingress.answer = lambda path, headers: 503 if headers["ce-id"].startswith("refused") else 202
        async with monitor(migrated_database_url, ingress, PUBLISH_CONCURRENCY="4") as h:  # chunks of 8
            fresh_etl(h, NOW)
            rows = [outbox_row(h, reminder_event(), NOW - timedelta(minutes=5), None,
                               event_id=f"refused-{i}" if i in (1, 9) else None) for i in range(20)]  # fmt: skip
            assert await h.tick(NOW) == 200
        posted = Counter(headers["ce-id"] for _, headers, _ in ingress.requests)
        assert len(posted) == 20 and set(posted.values()) == {1}
        unpublished = [r for (r,) in h.sql("SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id")]
        assert unpublished == [rows[1], rows[9]]
        assert h.open_alerts("outbox_unpublished") == {("outbox_unpublished", str(rows[1])),
                                                       ("outbox_unpublished", str(rows[9]))}  # fmt: skip

    async def test_an_event_accepted_but_never_processed_is_published_again(self, harness: Harness) -> None:
        """A reminder event the broker took 20 min ago that the dispatcher never recorded goes out again, alerted."""
        lost = outbox_row(harness, reminder_event(), NOW - timedelta(minutes=20), NOW - timedelta(minutes=20))
        done_event = reminder_event()
        outbox_row(harness, done_event, NOW - timedelta(minutes=20), NOW - timedelta(minutes=20))
        harness.sql("INSERT INTO processed_events (source, id, type) VALUES (%s, %s, %s)",
                    [done_event.get_source(), done_event.get_id(), done_event.get_type()])  # fmt: skip
        await harness.tick(NOW)
        assert harness.sent_events() == [(ReminderDue.TYPE, "appt-1")]
        assert harness.open_alerts() == {("event_unprocessed", str(lost))}

    async def test_a_redriven_event_lost_again_is_published_again(self, harness: Harness) -> None:
        """Re-driven from the dead letters and then lost, an event goes out again, alerted until processed;
        one whose dead letter still waits for an operator is left to them."""
        redriven, dead = reminder_event(), reminder_event()
        lost = outbox_row(harness, redriven, NOW - timedelta(hours=2), NOW - timedelta(minutes=20))
        outbox_row(harness, dead, NOW - timedelta(hours=2), NOW - timedelta(hours=1))
        for event, redriven_at in [(redriven, NOW - timedelta(minutes=30)), (dead, None)]:
            harness.sql("INSERT INTO dead_letters (event_source, event_id, event_type, received_at, redriven_at) "
                        "VALUES (%s, %s, %s, %s, %s)", [event.get_source(), event.get_id(), event.get_type(),
                                                         NOW - timedelta(hours=1), redriven_at])  # fmt: skip
        await harness.tick(NOW)
        assert [headers["ce-id"] for _, headers, _ in harness.ingress.requests] == [redriven.get_id()]
        assert harness.open_alerts() == {("event_unprocessed", str(lost))}

    async def test_lost_events_are_looked_at_once_each_and_caught_up_after_an_outage(self, harness: Harness) -> None:
        """Each tick checks the events published since the last one; after 3 h without ticks, it catches up."""
        await harness.tick(NOW)
        lost = outbox_row(harness, reminder_event(), NOW + timedelta(hours=1), NOW + timedelta(hours=1))
        await harness.tick(NOW + timedelta(hours=4))
        assert harness.open_alerts("event_unprocessed") == {("event_unprocessed", str(lost))}
        assert harness.sql("SELECT checked_until FROM monitor_watermarks") == [
            (NOW + timedelta(hours=4) - timedelta(minutes=15),)
        ]


class TestClock:
    async def test_the_database_clock_ignores_the_ticks_time(
        self, migrated_database_url: str, ingress: SinkStandIn, db: Database
    ) -> None:
        """MONITOR_CLOCK=database (a simulated day's ticks): a tick stamped a day ahead finds nothing overdue."""
        await seed_catalog(db)
        async with monitor(migrated_database_url, ingress, MONITOR_CLOCK="database") as h:
            fresh_etl(h, datetime.now(UTC))
            [claimed] = notifications(h, "sending", datetime.now(UTC))
            await h.tick(datetime.now(UTC) + timedelta(days=1))
            assert h.status(claimed) == "sending" and h.open_alerts() == set()


class TestDeliveryRate:
    async def test_a_low_rate_is_alerted_per_channel_and_window_and_clears_when_it_recovers(
        self, harness: Harness
    ) -> None:
        """SMS at 97% over 100 outcomes in the last hour: alerted for 1 h and 24 h; email with 5 outcomes: not judged."""
        notifications(harness, "delivered", NOW - timedelta(minutes=30), 97, provider="twilio")
        notifications(harness, "undelivered", NOW - timedelta(minutes=30), 2, provider="twilio")
        notifications(harness, "failed", NOW - timedelta(minutes=30), 1, provider="twilio")
        notifications(harness, "failed", NOW - timedelta(minutes=30), 5, provider="ses", channel="email")
        await harness.tick(NOW)
        assert harness.open_alerts("delivery_rate_low") == {("delivery_rate_low", "sms")}
        assert {k for (k,) in harness.sql("SELECT dedup_key FROM alerts")} >= {
            "delivery_rate_low:sms:1h", "delivery_rate_low:sms:24h"}  # fmt: skip
        notifications(harness, "delivered", NOW - timedelta(minutes=10), 300, provider="twilio")
        await harness.tick(NOW + timedelta(minutes=5))
        assert harness.open_alerts("delivery_rate_low") == set()

    async def test_a_sent_message_past_its_receipt_deadline_counts_against_the_rate(self, harness: Harness) -> None:
        """Sent 2 h ago with no receipt is not delivered: 100 of them against 100 delivered is a low 24 h rate."""
        notifications(harness, "delivered", NOW - timedelta(hours=3), 100, provider="twilio")
        notifications(harness, "sent", NOW - timedelta(hours=2), 100, provider="twilio")
        await harness.tick(NOW)
        assert ("delivery_rate_low", "sms") in harness.open_alerts()


class TestDataFreshness:
    async def test_stale_data_is_alerted_and_clears_after_a_successful_pass(self, harness: Harness) -> None:
        """The newest successful ETL pass an hour old (stale after 45 min): etl_stale; a new pass resolves it."""
        await harness.tick(NOW + timedelta(minutes=60))
        assert harness.open_alerts("etl_stale") == {("etl_stale", "fhir:test")}
        fresh_etl(harness, NOW + timedelta(minutes=61))
        await harness.tick(NOW + timedelta(minutes=65))
        assert harness.open_alerts("etl_stale") == set()

    async def test_no_pass_ever_is_stale(self, harness: Harness) -> None:
        """A database that no ETL pass has filled is as stale as it gets."""
        harness.sql("DELETE FROM etl_runs")
        await harness.tick(NOW)
        assert harness.open_alerts("etl_stale") == {("etl_stale", None)}


@contextmanager
def dead_letter_queue(messages: int) -> Iterator[str]:
    """A real quorum queue in a random namespace, as the broker declares a Trigger's DLQ, holding ``messages``."""
    name = f"pn-{uuid.uuid4().hex[:8]}.sms-sender.dlq"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    for n in range(messages):
        channel.basic_publish("", name, json.dumps({"n": n}).encode(), pika.BasicProperties(delivery_mode=2))
    try:
        yield name
    finally:
        channel.queue_delete(name)
        connection.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestDeadLetterQueues:
    async def test_waiting_dead_letters_and_a_missing_queue_are_alerted(
        self, migrated_database_url: str, ingress: SinkStandIn
    ) -> None:
        """3 messages in one DLQ, 0 in another, a third that does not exist: two alerts, and the tick succeeds."""
        with dead_letter_queue(3) as full, dead_letter_queue(0) as empty:
            missing = f"pn-{uuid.uuid4().hex[:8]}.gone.dlq"
            queues = ",".join([full, empty, missing])
            async with monitor(migrated_database_url, ingress, MONITOR_DLQ_QUEUES=queues, RABBITMQ_URL=AMQP_URL) as h:
                fresh_etl(h, NOW)
                assert await h.tick(NOW) == 200
                assert h.open_alerts() == {("dead_letters_queued", full), ("dead_letter_queue_unreadable", missing)}
                [detail] = [d for (d,) in h.sql("SELECT detail FROM alerts WHERE kind = 'dead_letters_queued'")]
                assert detail.startswith("3 dead-lettered events")

    async def test_drained_queue_clears_its_alert(self, migrated_database_url: str, ingress: SinkStandIn) -> None:
        """Once the sink is back and the queue is empty, the alert resolves."""
        with dead_letter_queue(2) as name:
            async with monitor(migrated_database_url, ingress, MONITOR_DLQ_QUEUES=name, RABBITMQ_URL=AMQP_URL) as h:
                fresh_etl(h, NOW)
                await h.tick(NOW)
                connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
                connection.channel().queue_purge(name)
                connection.close()
                await h.tick(NOW + timedelta(minutes=5))
                assert h.open_alerts() == set()

    async def test_an_unreachable_broker_is_an_alert_not_a_crash(
        self, migrated_database_url: str, ingress: SinkStandIn
    ) -> None:
        """RabbitMQ down: the tick still succeeds (200) and one alert says the queues cannot be read."""
        url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
        async with monitor(migrated_database_url, ingress, MONITOR_DLQ_QUEUES="a.dlq,b.dlq", RABBITMQ_URL=url) as h:
            fresh_etl(h, NOW)
            assert await h.tick(NOW) == 200
            assert h.open_alerts() == {("dead_letter_queue_unreadable", "rabbitmq")}


class TestDeadLetterSink:
    async def test_a_dead_letter_sent_to_the_monitor_is_kept_and_alerted(self, harness: Harness) -> None:
        """An event carrying knativeerrordest is recorded in dead_letters with a dead_letter alert, answered 202."""
        event = send_event(7)
        dead = CloudEvent(attributes={**event.get_attributes(), "knativeerrordest": "http://sms-sender.patient-notify",
                                      "knativeerrorcode": "500"}, data=event.get_data())  # fmt: skip
        assert await harness.post(dead) == 202
        assert harness.sql("SELECT event_id, error_code FROM dead_letters") == [(event.get_id(), "500")]
        assert harness.open_alerts() == {("dead_letter", event.get_id())}


class TestAlertsReachAPerson:
    async def test_a_tick_pushes_what_it_found_and_resolves_it_later(
        self, migrated_database_url: str, ingress: SinkStandIn, db: Database
    ) -> None:
        """Slack and PagerDuty hear of a stuck send on the tick that found it, and of its resolution later."""
        await seed_catalog(db)
        cfg = {"ALERT_SINKS": "slack,pagerduty", "ALERT_SLACK_WEBHOOK_URL": ingress.url + "/slack",
               "ALERT_PAGERDUTY_ROUTING_KEY": "R" * 32, "ALERT_PAGERDUTY_URL": ingress.url + "/pd"}  # fmt: skip
        async with monitor(migrated_database_url, ingress, cfg) as h:
            fresh_etl(h, NOW)
            [stuck] = notifications(h, "sending", NOW - timedelta(minutes=10))
            await h.tick(NOW)
            h.sql("UPDATE notifications SET status = 'delivered' WHERE id = %s", [stuck])
            await h.tick(NOW + timedelta(minutes=5))
        actions = [(b["event_action"], b["dedup_key"]) for b in ingress.bodies("/pd")]
        assert actions == [("trigger", f"delivery_unknown:{stuck}"), ("resolve", f"delivery_unknown:{stuck}")]
        assert len(ingress.bodies("/slack")) == 2 and "+12025550123" not in json.dumps(ingress.bodies())


class TestConfiguration:
    @pytest.mark.parametrize(("cfg", "variable"), [
        ({"ALERT_SINKS": "slack"}, "ALERT_SLACK_WEBHOOK_URL"),  # a sink without its URL
        ({"ALERT_SINKS": "pagerduty"}, "ALERT_PAGERDUTY_ROUTING_KEY"),  # ... or its key
        ({"ALERT_SINKS": "email"}, "ALERT_SINKS"),  # not a sink we have
        ({"MONITOR_DLQ_QUEUES": "x.dlq"}, "RABBITMQ_URL"),  # queues to read, nowhere to read them
    ])  # fmt: skip
    def test_an_incomplete_setting_fails_start_naming_the_variable(self, cfg: dict[str, str], variable: str) -> None:
        """start() leaves the function dead (liveness fails) with the variable named."""
        function = monitor_module.new()
        function.start({"DATABASE_URL": "postgresql://x@127.0.0.1/x", "BROKER_URL": "http://127.0.0.1:1/", **cfg})
        alive, reason = function.alive()
        assert not alive and variable in reason


class TestSchedulerCapacity:
    async def test_more_reminders_than_a_window_can_send_raise_capacity_short_once_a_day(
        self, migrated_database_url: str, ingress: SinkStandIn, db: Database
    ) -> None:
        """40 SMS reminders in one 3-hour window at 0.002/s (21 fit): capacity_short for sms, raised once per day."""
        start = (NOW + timedelta(days=4)).replace(hour=15, minute=0, second=0, microsecond=0)
        async with db.transaction() as tx:
            await save_batch(tx, SourceBatch(
                [make_location()], [make_patient(id=f"p{i}", channel_preference="sms") for i in range(40)],
                [make_contact(patient_id=f"p{i}") for i in range(40)],
                [make_appointment(id=f"a{i}", patient_id=f"p{i}", starts_at=start) for i in range(40)],
            ))  # fmt: skip
        [(window_end,)] = rows_of(migrated_database_url, "SELECT DISTINCT reminder_window_end FROM appointments")
        scheduler = load_module("scheduler", "func").new()
        scheduler.start({"DATABASE_URL": migrated_database_url, "BROKER_URL": ingress.url + "/",
                         "LOG_LEVEL": "ERROR", "TWILIO_MAX_MPS": "0.002", "SES_MAX_RATE": "0.002"})  # fmt: skip
        try:
            for at in (window_end - timedelta(hours=20), window_end - timedelta(hours=19)):
                headers, body = encode_binary(new_event(PingTick(job="plan-reminders"), source="/s", time=at))
                assert (await scheduler.process(headers, body))[0] == 200
        finally:
            await scheduler.aclose()
        assert rows_of(migrated_database_url, "SELECT kind, subject, occurrences FROM alerts") == [
            ("capacity_short", "sms", 2)]  # fmt: skip


def rows_of(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()
