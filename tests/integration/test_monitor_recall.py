"""Fault recall: every failure mode of DESIGN.md §4 is caught by the monitor within one period.

Each fault is injected as the state it leaves behind, timed so that its deadline passes during the
period before the tick (a random offset inside the period, from a seeded PRNG):

    fault (DESIGN §4)                         what it leaves                                   must end as
    an event answered 4xx (acked, dropped)    notification queued, its send event published   notification_stalled alert
    dead-letter sink down                     the send event in the Trigger's DLQ (a real      dead_letters_queued alert naming
                                              quorum queue), its notification queued           the queue, + notification_stalled
    crash between ack and dead-letter publish a send event lost: notification queued,        notification_stalled alert
                                              or a reminder event lost: published, never       event_unprocessed alert
                                              processed by the dispatcher
    an unpublished outbox row                 the row, past the grace period                   published (the ingress took it), or
                                                                                               outbox_unpublished (it did not)
    a send stuck in `sending`                 claimed, never settled                           unknown + delivery_unknown alert

Then ONE monitor tick runs with the clock one period ahead, and recall must be 100% over ≥ 200
faults, with no alert naming any of the healthy rows injected beside them.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pika  # type: ignore[import-untyped]  # pika ships no stubs

from patient_notify.db import Database
from patient_notify.domain.sending import STALE_SENDING_S
from tests.integration.test_alerts import SinkStandIn
from tests.integration.test_monitor import (
    AMQP_URL,
    Harness,
    dead_letter_queue,
    fresh_etl,
    monitor,
    outbox_row,
    reminder_event,
    seed_catalog,
    send_event,
)

PERIOD = timedelta(minutes=5)  # the monitor-tick PingSource's period
STALL = timedelta(minutes=15)  # MONITOR_STALL_MINUTES (default)
GRACE = timedelta(seconds=120)  # MONITOR_OUTBOX_GRACE_S (default)
STALE = timedelta(seconds=STALE_SENDING_S)
REFUSED = "refused-"  # event ids the ingress keeps refusing


@dataclass(frozen=True)
class Fault:
    mode: str
    row: int  # the notification or outbox row it concerns
    expected: frozenset[tuple[str, str]]  # open alerts (kind, subject) that must all name it
    published: bool = False  # an outbox row: published (terminal) also counts


@dataclass
class Scene:
    h: Harness
    now: datetime
    rng: random.Random
    dlq: str

    def due_within_period(self, deadline: timedelta) -> datetime:
        """A last-progress instant whose deadline passes during the period ending at the tick."""
        return self.now - deadline - timedelta(seconds=self.rng.uniform(1, PERIOD.total_seconds() - 1))

    def notifications(self, status: str, at: Sequence[datetime], provider: str | None = None) -> list[int]:
        found = self.h.sql(
            "INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, channel, recipient, "
            "language, body, status, provider, created_at, updated_at) "
            "SELECT %s || t.n, 'appt-1', 1, 'reminder', 'sms', '+12025550123', 'en', 'Hi', %s, %s, t.at, t.at "
            "FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS t (at, n) ORDER BY t.n RETURNING id",
            [uuid.uuid4().hex, status, provider, list(at)],
        )
        return [int(r[0]) for r in found]

    def queued_with_event(self, count: int, *, published: bool = True, refused: bool = False) -> list[tuple[int, int]]:
        """Queued notifications and their send events' outbox rows, the events written when they were claimed."""
        deadline = STALL if published else GRACE
        at = [self.due_within_period(deadline) for _ in range(count)]
        pairs = []
        for nid, claimed in zip(self.notifications("queued", at), at, strict=True):
            event = send_event(nid)
            event_id = f"{REFUSED}{event.get_id()}" if refused else None
            pairs.append((nid, outbox_row(self.h, event, claimed, claimed if published else None, event_id=event_id)))
        return pairs


def inject_faults(s: Scene) -> list[Fault]:
    faults = [Fault("answered 4xx", nid, frozenset({("notification_stalled", str(nid))}))
              for nid, _ in s.queued_with_event(50)]  # fmt: skip
    faults += [Fault("crash between ack and DLQ publish (send)", nid, frozenset({("notification_stalled", str(nid))}))
               for nid, _ in s.queued_with_event(30)]  # fmt: skip
    for _ in range(30):
        lost = outbox_row(s.h, reminder_event(), s.due_within_period(STALL), None)
        s.h.sql("UPDATE outbox SET published_at = created_at WHERE id = %s", [lost])
        faults.append(Fault("crash between ack and DLQ publish (reminder)", lost,
                            frozenset({("event_unprocessed", str(lost))})))  # fmt: skip
    dead = s.queued_with_event(40)
    publish_to_queue(s.dlq, [send_event(nid).get_id() for nid, _ in dead])
    faults += [Fault("dead-letter sink down", nid, frozenset({("dead_letters_queued", s.dlq),
                                                             ("notification_stalled", str(nid))}))
               for nid, _ in dead]  # fmt: skip
    faults += [Fault("unpublished outbox row", row, frozenset({("outbox_unpublished", str(row))}), published=True)
               for _, row in s.queued_with_event(30, published=False)]  # fmt: skip
    faults += [Fault("unpublished outbox row (refused)", row, frozenset({("outbox_unpublished", str(row))}))
               for _, row in s.queued_with_event(10, published=False, refused=True)]  # fmt: skip
    stuck = s.notifications("sending", [s.due_within_period(STALE) for _ in range(50)])
    faults += [Fault("stuck in sending", nid, frozenset({("delivery_unknown", str(nid))})) for nid in stuck]
    return faults


@dataclass(frozen=True)
class Healthy:
    notifications: list[int]
    outbox: list[int]

    def false_alarms(self, h: Harness) -> list[tuple[str, str]]:
        """Open alerts naming one of these rows."""
        return [(str(k), str(s)) for k, s in h.sql(
            "SELECT kind, subject FROM alerts WHERE resolved_at IS NULL AND ("
            " kind IN ('delivery_unknown', 'notification_stalled', 'receipt_missing') AND subject = ANY(%s)"
            " OR kind IN ('outbox_unpublished', 'event_unprocessed') AND subject = ANY(%s))",
            [[str(i) for i in self.notifications], [str(i) for i in self.outbox]],
        )]  # fmt: skip


def inject_healthy(s: Scene) -> Healthy:
    """Rows that are on time at the tick's instant (no alert may name one)."""
    young = s.queued_with_event(20)
    s.h.sql("UPDATE notifications SET created_at = %s, updated_at = %s WHERE id = ANY(%s)",
            [s.now - timedelta(minutes=3), s.now - timedelta(minutes=3), [n for n, _ in young]])  # fmt: skip
    s.h.sql("UPDATE outbox SET created_at = %s, published_at = %s WHERE id = ANY(%s)",
            [s.now - timedelta(minutes=3), s.now - timedelta(minutes=3), [o for _, o in young]])  # fmt: skip
    busy = s.notifications("sending", [s.now - timedelta(seconds=30)] * 10)
    awaiting = s.notifications("sent", [s.now - timedelta(minutes=10)] * 20, provider="twilio")
    delivered = s.notifications("delivered", [s.now - timedelta(hours=2)] * 200, provider="twilio")
    processed = []
    for _ in range(20):
        event = reminder_event()
        processed.append(outbox_row(s.h, event, s.now - timedelta(minutes=20), s.now - timedelta(minutes=20)))
        s.h.sql("INSERT INTO processed_events (source, id, type) VALUES (%s, %s, %s)",
                [event.get_source(), event.get_id(), event.get_type()])  # fmt: skip
    return Healthy([n for n, _ in young] + busy + awaiting + delivered, [o for _, o in young] + processed)


def publish_to_queue(queue: str, event_ids: Sequence[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    for event_id in event_ids:
        headers = {"type": "org.patientnotify.sms.send.v1", "knativeerrorcode": "503"}
        properties = pika.BasicProperties(delivery_mode=2, message_id=event_id, headers=headers)
        channel.basic_publish("", queue, json.dumps({"id": event_id}).encode(), properties)
    connection.close()


def undetected(h: Harness, faults: Sequence[Fault]) -> list[Fault]:
    open_alerts = {(k, s) for k, s in h.sql("SELECT kind, subject FROM alerts WHERE resolved_at IS NULL")}
    published = {int(i) for (i,) in h.sql("SELECT id FROM outbox WHERE published_at IS NOT NULL")}
    return [f for f in faults if not (f.expected <= open_alerts or (f.published and f.row in published))]


class TestFaultRecall:
    async def test_every_injected_fault_is_caught_within_one_period(
        self, migrated_database_url: str, db: Database
    ) -> None:
        """240 faults of the five §4 modes, one tick one period later: 100% end terminal or under an open alert."""
        ingress = SinkStandIn(answer=lambda path, headers: 503 if headers["ce-id"].startswith(REFUSED) else 202)
        await seed_catalog(db)
        with ingress, dead_letter_queue(0) as dlq, dead_letter_queue(0) as healthy_dlq:
            cfg = {"MONITOR_DLQ_QUEUES": f"{dlq},{healthy_dlq}", "RABBITMQ_URL": AMQP_URL}
            async with monitor(migrated_database_url, ingress, cfg) as h:
                injected_at = datetime.now(UTC)
                scene = Scene(h, injected_at + PERIOD, random.Random(20261124), dlq)
                faults, healthy = inject_faults(scene), inject_healthy(scene)
                fresh_etl(h, injected_at)
                assert await h.tick(injected_at + PERIOD) == 200
                missed = undetected(h, faults)
                statuses = dict(h.sql("SELECT status, count(*) FROM notifications GROUP BY status"))
                false_alarms = healthy.false_alarms(h)
        assert len(faults) >= 200
        assert missed == [], f"recall {1 - len(missed) / len(faults):.1%}: missed {missed[:5]}"
        assert false_alarms == []
        assert statuses == {"queued": 180, "sending": 10, "sent": 20, "delivered": 200, "unknown": 50}
        # Sent again once each: 120 stalled notifications' send events, 30 lost reminder events, the 40
        # unpublished rows (10 of them refused).
        assert len(ingress.requests) == 120 + 30 + 40
