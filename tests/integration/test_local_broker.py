"""The local broker's delivery semantics (DESIGN §4), each against both backends built by ``open_broker``.

The ``running`` fixture runs every test twice: on the in-process LocalRouter and on RabbitRouter
over the real RabbitMQ. The RabbitMQ restart test runs on RabbitMQ only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import cache

import httpx
import pytest

from sandbox.broker_rabbitmq import RabbitRouter
from sandbox.brokers import Broker, open_broker
from sandbox.pingsources import PING_TYPE, PingScheduler, PingSource
from sandbox.triggers import Delivery, Trigger
from tests.support.receiver import Receiver

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
SCALE = 0.2  # backoff_scale: every Trigger backoff runs five times shorter
QUICK = Delivery(retry=2, backoff_delay_s=0.05, timeout_s=5.0)
WITH_SINK = Delivery(retry=2, backoff_delay_s=0.05, timeout_s=5.0, dead_letter_service="sink")
CLOCK_SLACK_S = 0.001  # timer granularity: a backoff may end a hair before its nominal instant

Running = Callable[[Sequence[Trigger], Mapping[str, str]], AbstractContextManager[Broker]]


def make_trigger(name: str, type_: str, **overrides: object) -> Trigger:
    fields: dict[str, object] = {"filter": {"type": type_}, "service": name, "parallelism": 1, "delivery": QUICK}
    return Trigger(name=name, **{**fields, **overrides})  # type: ignore[arg-type]


def post_event(ingress: str, type_: str, *, source: str = "/tests", event_id: str | None = None,
               client: httpx.Client | None = None, **extensions: str) -> httpx.Response:  # fmt: skip
    """A binary-mode CloudEvent with JSON data ``{"n": 1}``."""
    headers = {"ce-id": event_id or uuid.uuid4().hex, "ce-source": source, "ce-type": type_, "ce-specversion": "1.0"}
    headers |= {f"ce-{k}": v for k, v in extensions.items()} | {"content-type": "application/json"}
    return (client or shared_client()).post(ingress, headers=headers, content=b'{"n": 1}')


@cache
def shared_client() -> httpx.Client:
    """One client for the whole run: building one costs an SSL context (~50 ms)."""
    return httpx.Client()


@contextmanager
def started(triggers: Sequence[Trigger], endpoints: Mapping[str, str], rabbitmq_url: str | None) -> Iterator[Broker]:
    broker = open_broker(triggers, endpoints, rabbitmq_url=rabbitmq_url, backoff_scale=SCALE)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=["in-process", "rabbitmq"])
def running(request: pytest.FixtureRequest) -> Running:
    """Starts a broker on the backend under test; stops it on leaving the ``with``."""
    url = AMQP_URL if request.param == "rabbitmq" else None
    return lambda triggers, endpoints: started(triggers, endpoints, url)


class TestFilters:
    def test_type_and_source_must_both_match(self, running: Running) -> None:
        """A Trigger filtering on type and source gets only events matching both; a type-only Trigger gets all of that type."""
        exact = make_trigger("exact", "appt.booked", filter={"type": "appt.booked", "source": "/clinic-a"})
        by_type = make_trigger("by-type", "appt.booked")
        with (
            Receiver() as exact_sub,
            Receiver() as type_sub,
            running([exact, by_type], {"exact": exact_sub.url, "by-type": type_sub.url}) as broker,
        ):
            for type_, source, event_id in [
                ("appt.booked", "/clinic-a", "1"),
                ("appt.booked", "/clinic-b", "2"),
                ("appt.cancelled", "/clinic-a", "3"),
            ]:
                assert post_event(broker.ingress_url, type_, source=source, event_id=event_id).status_code == 202
            assert broker.wait_idle(60)
        assert exact_sub.event_ids() == ["1"]
        assert type_sub.event_ids() == ["1", "2"] and broker.stats.ingested == 3

    def test_extension_attribute_filter_is_exact_and_attributes_and_data_arrive(self, running: Running) -> None:
        """Only the event whose extension equals the filter value arrives, in binary mode with its data."""
        trigger = make_trigger("a1", "appt.booked", filter={"type": "appt.booked", "appointmentid": "a1"})
        with Receiver() as subscriber, running([trigger], {"a1": subscriber.url}) as broker:
            post_event(broker.ingress_url, "appt.booked", event_id="match", appointmentid="a1")
            post_event(broker.ingress_url, "appt.booked", event_id="other", appointmentid="a10")
            post_event(broker.ingress_url, "appt.booked", event_id="absent")
            assert broker.wait_idle(60)
        [(headers, body)] = subscriber.requests
        assert headers["ce-id"] == "match" and headers["ce-appointmentid"] == "a1"
        assert headers["content-type"] == "application/json" and json.loads(body) == {"n": 1}

    def test_a_trigger_without_filter_attributes_receives_every_event(self, running: Running) -> None:
        """An empty filter matches everything, as an ``x-match: all`` binding without arguments does."""
        trigger = make_trigger("all", "", filter={})
        with Receiver() as subscriber, running([trigger], {"all": subscriber.url}) as broker:
            for type_ in ["appt.booked", "sms.sent"]:
                post_event(broker.ingress_url, type_)
            assert broker.wait_idle(60)
        assert sorted(h["ce-type"] for h, _ in subscriber.requests) == ["appt.booked", "sms.sent"]


class TestIngress:
    def test_a_structured_cloudevent_is_accepted_and_delivered_in_binary_mode(self, running: Running) -> None:
        """A structured-mode event is accepted with 202 and reaches the subscriber as ce-* headers."""
        event = {"specversion": "1.0", "id": "s1", "source": "/tests", "type": "appt.booked", "data": {"n": 1}}
        with (
            Receiver() as subscriber,
            running([make_trigger("booked", "appt.booked")], {"booked": subscriber.url}) as broker,
        ):
            headers = {"content-type": "application/cloudevents+json"}
            assert httpx.post(broker.ingress_url, headers=headers, content=json.dumps(event)).status_code == 202
            assert broker.wait_idle(60)
        [(headers, body)] = subscriber.requests
        assert headers["ce-id"] == "s1" and json.loads(body) == {"n": 1}

    def test_a_request_that_is_not_a_cloudevent_gets_400(self, running: Running) -> None:
        """Like the real ingress, a plain POST is refused and nothing is routed."""
        with (
            Receiver() as subscriber,
            running([make_trigger("booked", "appt.booked")], {"booked": subscriber.url}) as broker,
        ):
            assert httpx.post(broker.ingress_url, content=b"hello").status_code == 400
            assert broker.wait_idle(60)
        assert broker.stats.ingested == 0 and subscriber.requests == []


class TestRetries:
    def test_5xx_is_retried_then_delivered_once(self, running: Running) -> None:
        """503 twice then 200: three attempts, two retries, one delivery."""
        with (
            Receiver(script=[503, 503], status=200) as subscriber,
            running([make_trigger("booked", "appt.booked")], {"booked": subscriber.url}) as broker,
        ):
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        assert len(subscriber.requests) == 3
        assert broker.stats.delivered["booked"] == 1 and broker.stats.retried["booked"] == 2

    def test_5xx_gets_retry_plus_one_attempts_then_is_dropped_without_a_sink(self, running: Running) -> None:
        """Always 500 with ``retry: 3`` and no deadLetterSink: four attempts, then the event is dropped."""
        trigger = make_trigger("booked", "appt.booked", delivery=Delivery(retry=3, backoff_delay_s=0.05))
        with Receiver(status=500) as subscriber, running([trigger], {"booked": subscriber.url}) as broker:
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        assert len(subscriber.requests) == 4 and broker.stats.retried["booked"] == 3
        assert broker.stats.dropped == [("booked", 500)] and broker.stats.dead_lettered == []

    def test_exponential_backoff_waits_the_delay_times_two_to_the_retry_number(self, running: Running) -> None:
        """Retry n comes at least backoffDelay·2^n after attempt n-1 (eventing-rabbitmq: 2d, 4d, 8d)."""
        delay = 0.25  # 50 ms once scaled
        trigger = make_trigger("booked", "appt.booked", delivery=Delivery(retry=3, backoff_delay_s=delay))
        with Receiver(status=500) as subscriber, running([trigger], {"booked": subscriber.url}) as broker:
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        gaps = [later - earlier for earlier, later in zip(subscriber.times, subscriber.times[1:], strict=False)]
        assert len(gaps) == 3
        for n, gap in enumerate(gaps, start=1):
            assert gap >= delay * SCALE * 2**n - CLOCK_SLACK_S, f"retry {n} came {gap:.3f} s after the attempt before"

    def test_linear_backoff_waits_the_delay_times_the_retry_number(self, running: Running) -> None:
        """With ``backoffPolicy: linear`` retry n comes at least backoffDelay·n after attempt n-1."""
        delay = 0.25
        trigger = make_trigger(
            "booked", "appt.booked", delivery=Delivery(retry=3, exponential=False, backoff_delay_s=delay)
        )
        with Receiver(status=500) as subscriber, running([trigger], {"booked": subscriber.url}) as broker:
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        gaps = [later - earlier for earlier, later in zip(subscriber.times, subscriber.times[1:], strict=False)]
        assert len(gaps) == 3
        for n, gap in enumerate(gaps, start=1):
            assert gap >= delay * SCALE * n - CLOCK_SLACK_S, f"retry {n} came {gap:.3f} s after the attempt before"


class TestClientErrors:
    @pytest.mark.parametrize(
        "status",
        [
            400,  # func-python's answer to a non-CloudEvent
            403,
            422,  # a function rejecting a valid CloudEvent it cannot use
        ],
    )
    def test_other_4xx_is_one_attempt_acked_and_dropped_not_dead_lettered(self, running: Running, status: int) -> None:
        """A 4xx outside eventing-rabbitmq's retry set counts as delivered: no retry, no dead letter, recorded as dropped."""
        trigger = make_trigger("booked", "appt.booked", delivery=WITH_SINK)
        with (
            Receiver(status=status) as subscriber,
            Receiver(status=200) as sink,
            running([trigger], {"booked": subscriber.url, "sink": sink.url}) as broker,
        ):
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        assert len(subscriber.requests) == 1 and sink.requests == []
        assert broker.stats.dropped == [("booked", status)] and broker.stats.retried["booked"] == 0
        assert broker.stats.dead_lettered == []

    @pytest.mark.parametrize(
        "status",
        [
            404,  # the subscriber's route is not there yet (a rollout)
            408,  # request timeout
            409,  # conflict: worth another try
            429,  # rate limited
        ],
    )
    def test_retryable_4xx_is_retried_then_dead_lettered(self, running: Running, status: int) -> None:
        """404, 408, 409 and 429 are retried like a 5xx, then dead-lettered with that status as knativeerrorcode."""
        trigger = make_trigger("booked", "appt.booked", delivery=WITH_SINK)
        with (
            Receiver(status=status) as subscriber,
            Receiver(status=200) as sink,
            running([trigger], {"booked": subscriber.url, "sink": sink.url}) as broker,
        ):
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        assert len(subscriber.requests) == 3 and broker.stats.dead_lettered == ["booked"]
        [(headers, _)] = sink.requests
        assert headers["ce-knativeerrorcode"] == str(status)


class TestDeadLetters:
    def test_exhausted_retries_reach_the_sink_with_error_extensions(self, running: Running) -> None:
        """After the last retry the sink gets the same event plus knativeerrordest (the subscriber) and knativeerrorcode."""
        trigger = make_trigger("booked", "appt.booked", delivery=WITH_SINK)
        with (
            Receiver(status=503) as subscriber,
            Receiver(status=200) as sink,
            running([trigger], {"booked": subscriber.url, "sink": sink.url}) as broker,
        ):
            post_event(broker.ingress_url, "appt.booked", event_id="e1", appointmentid="a1")
            assert broker.wait_idle(60)
        [(headers, body)] = sink.requests
        assert headers["ce-knativeerrordest"] == subscriber.url and headers["ce-knativeerrorcode"] == "503"
        assert headers["ce-id"] == "e1" and headers["ce-appointmentid"] == "a1" and json.loads(body) == {"n": 1}
        assert len(subscriber.requests) == 3 and broker.stats.dead_lettered == ["booked"] and broker.stats.dropped == []

    @pytest.mark.parametrize(
        ("sink_status", "sink_attempts"),
        [
            (500, 3),  # retried with the Trigger's own delivery settings, then given up
            (400, 1),  # final at once, as for a subscriber
        ],
    )
    def test_a_sink_that_refuses_leaves_the_event_recorded_as_dropped(
        self, running: Running, sink_status: int, sink_attempts: int
    ) -> None:
        """When the deadLetterSink refuses too, the event is lost: recorded as dropped with the subscriber's status."""
        trigger = make_trigger("booked", "appt.booked", delivery=WITH_SINK)
        with (
            Receiver(status=500) as subscriber,
            Receiver(status=sink_status) as sink,
            running([trigger], {"booked": subscriber.url, "sink": sink.url}) as broker,
        ):
            post_event(broker.ingress_url, "appt.booked")
            assert broker.wait_idle(60)
        assert len(sink.requests) == sink_attempts
        assert broker.stats.dead_lettered == ["booked"] and broker.stats.dropped == [("booked", 500)]


class TestReplies:
    def test_a_reply_event_is_published_to_the_broker_and_routed(self, running: Running) -> None:
        """A binary CloudEvent in a 200 response is ingested like any event and reaches the Trigger it matches."""
        reply_headers = {
            "ce-id": "r1",
            "ce-source": "/reminders",
            "ce-type": "appt.reminded",
            "ce-specversion": "1.0",
            "content-type": "application/json",
        }
        triggers = [make_trigger("booked", "appt.booked"), make_trigger("reminded", "appt.reminded")]
        with (
            Receiver(status=200, reply=(reply_headers, b'{"sent": true}')) as replier,
            Receiver(status=200) as follower,
            running(triggers, {"booked": replier.url, "reminded": follower.url}) as broker,
        ):
            post_event(broker.ingress_url, "appt.booked", event_id="b1")
            assert broker.wait_idle(60)
        assert replier.event_ids() == ["b1"]
        [(headers, body)] = follower.requests
        assert (headers["ce-id"], headers["ce-source"], json.loads(body)) == ("r1", "/reminders", {"sent": True})
        assert broker.stats.ingested == 2 and broker.stats.delivered == Counter({"booked": 1, "reminded": 1})


def delivered_ping_times(running: Running, source: PingSource, since: datetime, until: datetime) -> list[datetime]:
    """``source`` and a decoy on the same schedule fired through the broker; the ``time`` of each event delivered."""
    decoy = PingSource(name="decoy", namespace=source.namespace, schedule=source.schedule, timezone=source.timezone)
    trigger = make_trigger("ping", PING_TYPE, filter={"type": PING_TYPE, "source": source.source})
    with Receiver(status=200) as subscriber, running([trigger], {"ping": subscriber.url}) as broker:
        assert PingScheduler([source, decoy], broker.ingress_url, since=since).catch_up(until) > 0
        assert broker.wait_idle(60)
    assert all(json.loads(body) == json.loads(source.data) for _, body in subscriber.requests)  # may be re-serialised
    return [datetime.fromisoformat(headers["ce-time"]) for headers, _ in subscriber.requests]


class TestPingSources:
    def test_daily_ping_keeps_nine_oclock_new_york_time_across_the_dst_change(self, running: Running) -> None:
        """09:00 America/New_York fires at 14:00Z under EST and at 13:00Z from 8 March 2026, when DST begins."""
        source = PingSource(
            name="morning", namespace="pn", schedule="0 9 * * *", timezone="America/New_York", data='{"job":"x"}'
        )
        times = delivered_ping_times(
            running, source, datetime.fromisoformat("2026-03-06T00:00-05:00"), datetime(2026, 3, 10, tzinfo=UTC)
        )
        assert times == [
            datetime(2026, 3, 6, 14, tzinfo=UTC),
            datetime(2026, 3, 7, 14, tzinfo=UTC),
            datetime(2026, 3, 8, 13, tzinfo=UTC),  # DST began at 02:00 local
            datetime(2026, 3, 9, 13, tzinfo=UTC),
        ]

    def test_the_hour_skipped_by_dst_does_not_fire(self, running: Running) -> None:
        """Every 30 min from 01:00 to 03:59 New York on 8 March 2026: 02:00 and 02:30 do not exist, so they never fire."""
        source = PingSource(
            name="night", namespace="pn", schedule="*/30 1-3 * * *", timezone="America/New_York", data="{}"
        )
        times = delivered_ping_times(
            running, source, datetime.fromisoformat("2026-03-08T00:00-05:00"), datetime(2026, 3, 8, 12, tzinfo=UTC)
        )
        assert times == [
            datetime(2026, 3, 8, 6, tzinfo=UTC),  # 01:00 EST
            datetime(2026, 3, 8, 6, 30, tzinfo=UTC),  # 01:30 EST
            datetime(2026, 3, 8, 7, tzinfo=UTC),  # 03:00 EDT, one hour of wall clock later
            datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # 03:30 EDT
        ]


class SteadyClient:
    """Posts events one after another; like the outbox publisher, each id is re-sent until it gets a 202."""

    def __init__(self, ingress_url: str, *, at_least: int, after_restart: int) -> None:
        self._url, self._at_least, self._after_restart = ingress_url, at_least, after_restart
        self.accepted: list[str] = []
        self.refusals: Counter[str] = Counter()  # why a post was not accepted: "HTTP 500", "ReadTimeout", ...
        self.refused_at: list[float] = []  # time.monotonic() of each refusal
        self.stop = threading.Event()
        self._accepted_at_restart: int | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="steady-client", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def restarted(self) -> None:
        """From now on, post ``after_restart`` more events (and at least ``at_least`` in all) before finishing."""
        with self._changed:
            self._accepted_at_restart = len(self.accepted)

    def wait_accepted(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.accepted) >= count, timeout)

    def finished(self) -> bool:
        with self._changed:
            mark = self._accepted_at_restart
            return mark is not None and len(self.accepted) >= max(self._at_least, mark + self._after_restart)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            number = 0
            while not self.finished() and not self.stop.is_set():
                while not self._post(client, f"e{number}") and not self.stop.wait(0.02):
                    pass  # the outbox's retry, compressed: the same id again after a pause
                number += 1

    def _post(self, client: httpx.Client, event_id: str) -> bool:
        try:
            status = post_event(self._url, "appt.booked", event_id=event_id, client=client).status_code
        except httpx.HTTPError as exc:
            return self._refused(type(exc).__name__)
        if status != 202:
            return self._refused(f"HTTP {status}")
        with self._changed:
            self.accepted.append(event_id)
            self._changed.notify_all()
        return True

    def _refused(self, why: str) -> bool:
        self.refusals[why] += 1
        self.refused_at.append(time.monotonic())
        return False


def restart_rabbitmq() -> float:
    """Stop RabbitMQ's application and start it again (the Erlang node stays up); seconds until it is back."""
    began = time.monotonic()
    try:
        _rabbitmqctl("stop_app")
    finally:
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")
    return time.monotonic() - began


def _rabbitmqctl(command: str) -> None:
    executable = shutil.which("rabbitmqctl")
    assert executable, "the restart test drives the local RabbitMQ node with rabbitmqctl"
    subprocess.run([executable, command], check=True, capture_output=True, timeout=120)  # noqa: S603 - a fixed command


class TestRabbitMQRestart:
    def test_every_accepted_event_arrives_when_rabbitmq_restarts_mid_stream(self) -> None:
        """Every event the ingress accepted (202) before, during or after a RabbitMQ restart reaches the subscriber at least once."""
        trigger = make_trigger("booked", "appt.booked", delivery=Delivery(timeout_s=60.0))
        with Receiver(status=200) as subscriber, started([trigger], {"booked": subscriber.url}, AMQP_URL) as broker:
            assert isinstance(broker, RabbitRouter)
            client = SteadyClient(broker.ingress_url, at_least=300, after_restart=50)
            client.start()
            try:
                assert subscriber.wait_until(lambda: len(subscriber.requests) >= 100, 30)
                subscriber.hold()  # the delivery in flight stays unanswered; the next ones wait unacked behind it
                assert client.wait_accepted(200, 30)
                restart_s = restart_rabbitmq()
                client.restarted()
                subscriber.release()
                assert client.join(60) and client.finished(), f"client stuck at {len(client.accepted)}"
            finally:
                subscriber.release()
                client.stop.set()
                client.join(10)
            accepted = set(client.accepted)
            assert subscriber.wait_until(lambda: accepted <= set(subscriber.event_ids()), 30), (
                f"lost {sorted(accepted - set(subscriber.event_ids()))}"
            )
            assert broker.wait_idle(120)
        received = subscriber.event_ids()
        duplicates = len(received) - len(set(received))
        refusing_s = client.refused_at[-1] - client.refused_at[0] if client.refused_at else 0.0
        report = (
            f"{len(accepted)} accepted, {duplicates} duplicates, refusals {dict(client.refusals)} over {refusing_s:.1f} s,"
            f" rabbitmqctl stop_app..await_startup {restart_s:.1f} s"
        )
        assert set(received) == accepted, report
        assert client.refusals, f"the restart was not mid-stream: {report}"
        assert duplicates >= 1, f"the delivery in flight during the restart was not redelivered: {report}"
        assert broker.stats.delivered["booked"] == len(received), report
        explained = (f"publish to {broker.exchange}: ", f"consumer {broker.namespace}.booked: connection lost: ")
        unexplained = [error for error in broker.stats.errors if not error.startswith(explained)]
        assert unexplained == [], f"{unexplained}: {report}"
        assert any(error.startswith(explained[1]) for error in broker.stats.errors), "the consumer never lost RabbitMQ"
