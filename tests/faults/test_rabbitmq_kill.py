"""RabbitMQ killed (SIGKILL) and restarted mid-run: nothing lost, nothing sent twice.

A private RabbitMQ node (``sandbox.rabbitmq_node``; the machine's shared one is never touched)
carries the broker's queues while the scheduler plans two days of reminders. When a third of the
messages have reached the providers, the node's Erlang VM is killed without warning and started
again on the same data. Events the ingress had confirmed live in durable quorum queues; those
the functions could not publish while it was down wait in the outbox (the ingress answered 500)
until the monitor's drain; deliveries whose ack died with the node are redelivered and found
already handled. The providers must see every expected message exactly once.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandbox.amqp_codec import binary_http_headers
from sandbox.broker_rabbitmq import RabbitRouter
from sandbox.processes import ROOT
from sandbox.rabbitmq_node import RabbitNode
from sandbox.ses import SesStandIn
from sandbox.triggers import load_triggers
from tests.e2e.population import build_population
from tests.faults.conftest import Figures
from tests.faults.harness import PIPELINE, SCHEDULER_TICK_SOURCE, System, load_batch, ping, start_system, wait_until

APPOINTMENTS = 600
SETTLE_S = 240.0


def _post_ticks(system: System, start: datetime) -> int:
    """Every 15 minutes through the 48 hours in which the reminders fall due (as the PingSource does)."""
    ticks = [ping(SCHEDULER_TICK_SOURCE, start + timedelta(minutes=15 * step), "plan-reminders")
             for step in range(48 * 4 + 1)]  # fmt: skip
    for tick in ticks:
        assert system.post(system.broker.ingress_url, tick) == 202
    return len(ticks)


def _dead_consumers(system: System) -> list[str]:
    """The broker's per-queue consumer threads (``consume-<queue>``) that are no longer running."""
    broker = system.broker
    assert isinstance(broker, RabbitRouter)
    queues = [broker.queue_name(t) for t in load_triggers(ROOT / "knative")]
    queues += [
        broker.queue_name(t, dead=True) for t in load_triggers(ROOT / "knative") if t.delivery.dead_letter_service
    ]
    alive = {thread.name for thread in threading.enumerate()}
    return [queue for queue in queues if f"consume-{queue}" not in alive]


def _settle(system: System) -> int:
    """Until nothing is in flight or unpublished: each round waits for the broker to go idle, then
    ticks the monitor (its outbox grace is 0 here), whose drain re-publishes every outbox row the
    ingress refused during the outage. Returns the monitor ticks it took."""
    deadline = datetime.now(UTC) + timedelta(seconds=SETTLE_S)
    rounds = 0
    while datetime.now(UTC) < deadline:
        assert system.broker.wait_idle(SETTLE_S), "the broker did not settle"
        if system.unpublished() == 0:
            return rounds
        assert system.tick_monitor(datetime.now(UTC)) == 200
        rounds += 1
    raise AssertionError(f"{system.unpublished()} outbox rows still unpublished after {SETTLE_S:.0f} s")


class TestLocalBrokerAfterACrash:
    def test_rabbitmqs_own_headers_do_not_become_event_attributes(self) -> None:
        """A redelivered message's ``x-delivery-count`` is not posted as a ``ce-`` attribute."""
        headers = binary_http_headers({"type": "t", "source": "/s", "id": "1", "x-delivery-count": 1})
        assert headers == {"ce-type": "t", "ce-source": "/s", "ce-id": "1"}


class TestRabbitMQKilled:
    def test_sigkill_and_restart_mid_run_loses_nothing_and_sends_nothing_twice(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path, figures: Figures
    ) -> None:
        """600 appointments; RabbitMQ SIGKILLed at a third sent, restarted: every message sent exactly once."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - timedelta(minutes=now.minute % 15)
        population = build_population(APPOINTMENTS, start)
        with ExitStack() as stack:
            node = stack.enter_context(RabbitNode(tmp_path / "rabbitmq"))
            system = start_system(stack, migrated_database_url, ses, tmp_path, functions=(*PIPELINE, "monitor"),
                                  rabbitmq_url=node.amqp_url, settings={"monitor": {"MONITOR_OUTBOX_GRACE_S": "0"}})  # fmt: skip
            load_batch(migrated_database_url, population.batch)
            ticks = _post_ticks(system, start)
            third = len(population.expected) // 3
            assert wait_until(lambda: sum(system.sent().values()) >= third, 300), "the run did not get going"

            sent_at_kill = sum(system.sent().values())
            node.kill()
            restart_s = node.start()
            assert _dead_consumers(system) == [], "a local-broker consumer thread died"
            rounds = _settle(system)

            sent = system.sent()
            stats = system.broker.stats
            figures(
                appointments=APPOINTMENTS, expected=len(population.expected), ticks=ticks,
                sent_at_kill=sent_at_kill, restart_s=round(restart_s, 1), monitor_rounds=rounds,
                sent=sum(sent.values()), duplicates=sum(n - 1 for n in sent.values()),
                broker_deliveries=sum(stats.delivered.values()), broker_retries=sum(stats.retried.values()),
                outbox_republished=system.rows("SELECT count(*) FROM outbox WHERE attempts > 1")[0][0],
                broker_errors=len(stats.errors),
                rejected_events=system.rows("SELECT count(*) FROM rejected_events")[0][0],
            )  # fmt: skip
            assert sent_at_kill < len(population.expected), "the kill came after the run had finished"
            assert set(sent) == population.expected, f"lost: {sorted(population.expected - set(sent))[:5]}"
            assert max(sent.values()) == 1, f"sent twice: {[k for k, v in sent.items() if v > 1][:5]}"
            statuses = system.table("SELECT status, count(*) FROM notifications GROUP BY status")
            assert statuses == {"sent": len(population.expected)}
            alerts = system.table("SELECT kind, count(*) FROM alerts GROUP BY kind")
            assert alerts.pop("no_usable_contact") == population.unreachable
            # No ETL runs in this scenario (etl_stale); the ticks start at the wall clock, so at some
            # hours reminders whose window had passed when they were loaded go out late, counted in
            # the day's short-notice alert (reminder_short_notice), or reminder_late: all by design.
            assert set(alerts) <= {"etl_stale", "reminder_late", "reminder_short_notice"}, alerts
            assert (stats.dropped, stats.dead_lettered) == ([], [])
