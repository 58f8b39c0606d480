"""The transactional outbox and its publisher, against real PostgreSQL and real HTTP."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, date, datetime

import httpx
import psycopg

from patient_notify.codec import new_event
from patient_notify.db import Database
from patient_notify.events import ReminderDue
from patient_notify.outbox import Publisher, PublishReport, stage
from tests.support.receiver import Receiver


def _events(count: int) -> list:  # type: ignore[type-arg]
    return [
        new_event(ReminderDue(appointment_id=f"a{i}", appointment_version=1, local_date=date(2026, 1, 5),
                              due_at=datetime(2026, 1, 2, 9, tzinfo=UTC)), source="/test")
        for i in range(count)
    ]  # fmt: skip


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


INGRESS = "http://ingress.test/"  # answered by a MockTransport; never resolved


async def _pending(db: Database) -> int:
    async with db.transaction() as tx:
        row = await tx.one("outbox_pending_count")
    assert row is not None
    return int(row["pending"])


class TestPublisher:
    async def test_ingress_down_then_up_loses_nothing(self, db: Database) -> None:
        """Events staged while the ingress is down stay in the outbox and are all sent once it is back."""
        events = _events(50)
        async with db.transaction() as tx:
            ids = await stage(tx, events)
        async with httpx.AsyncClient() as client:
            down = await Publisher(db, _closed_port_url(), client).publish(ids)
            assert (down.published, down.failed) == (0, 50)
            assert await _pending(db) == 50
            with Receiver() as ingress:
                up = await Publisher(db, ingress.url, client).drain(min_age_s=0)
        assert (up.published, up.failed) == (50, 0)
        assert sorted(ingress.event_ids()) == sorted(e.get_id() for e in events)
        assert await _pending(db) == 0

    async def test_only_a_2xx_counts_as_published(self, db: Database) -> None:
        """A 400 or 500 from the ingress leaves the row unpublished with the reason recorded."""
        async with db.transaction() as tx:
            ids = await stage(tx, _events(2))
        async with httpx.AsyncClient() as client:
            with Receiver(status=400) as ingress:
                report = await Publisher(db, ingress.url, client).publish(ids)
        assert (report.published, report.failed) == (0, 2)
        with psycopg.connect(db.url) as conn:
            errors = [row[0] for row in conn.execute("SELECT last_error FROM outbox WHERE published_at IS NULL")]
        assert errors == ["HTTP 400", "HTTP 400"]

    async def test_events_are_posted_in_binary_mode(self, db: Database) -> None:
        """The broker ingress receives ce-* headers and the JSON data as the body."""
        async with db.transaction() as tx:
            ids = await stage(tx, _events(1))
        async with httpx.AsyncClient() as client:
            with Receiver() as ingress:
                await Publisher(db, ingress.url, client).publish(ids)
        headers, body = ingress.requests[0]
        assert headers["ce-type"] == ReminderDue.TYPE
        assert headers["content-type"] == "application/json"
        assert b'"appointment_id": "a0"' in body or b'"appointment_id":"a0"' in body

    async def test_drain_leaves_young_rows_to_their_writer(self, db: Database) -> None:
        """Rows younger than min_age are in flight with the function that wrote them: drain skips them."""
        async with db.transaction() as tx:
            await stage(tx, _events(3))
        async with httpx.AsyncClient() as client:
            with Receiver() as ingress:
                report = await Publisher(db, ingress.url, client).drain(min_age_s=3600)
        assert report.published == 0 and ingress.requests == []

    async def test_overlapping_drains_send_each_row_once(self, db: Database) -> None:
        """Two drains racing over the same stale rows split them: the lease keeps each row to one drainer."""
        async with db.transaction() as tx:
            await stage(tx, _events(40))
        async with httpx.AsyncClient() as client:
            with Receiver() as ingress:
                publisher = Publisher(db, ingress.url, client)
                reports = await asyncio.gather(*(publisher.drain(min_age_s=0) for _ in range(4)))
        assert sum(r.published for r in reports) == 40
        assert len(ingress.event_ids()) == len(set(ingress.event_ids())) == 40


class TestLeases:
    """Whoever sends a row leases it first, so a writer and a drain never both send it."""

    async def test_a_drain_skips_rows_their_writer_is_still_sending(self, db: Database) -> None:
        """A drain that runs while the writer posts its (old enough) rows finds them leased and sends none."""
        events = _events(5)
        async with db.transaction() as tx:
            ids = await stage(tx, events)
        sent: list[str] = []
        drains: list[PublishReport] = []

        async def ingress(request: httpx.Request) -> httpx.Response:
            sent.append(request.headers["ce-id"])
            if len(sent) == 1:  # the writer is mid-publish: a drain comes by
                drains.append(await Publisher(db, INGRESS, client).drain(min_age_s=0))
            return httpx.Response(202)

        async with httpx.AsyncClient(transport=httpx.MockTransport(ingress)) as client:
            report = await Publisher(db, INGRESS, client).publish(ids)
        assert (report.published, drains) == (5, [PublishReport(0, 0)])
        assert sorted(sent) == sorted(e.get_id() for e in events)

    async def test_a_writer_skips_rows_a_drain_is_sending(self, db: Database) -> None:
        """A late publish by the writer of rows a drain has already leased leaves them to the drain."""
        events = _events(5)
        async with db.transaction() as tx:
            ids = await stage(tx, events)
        sent: list[str] = []
        publishes: list[PublishReport] = []

        async def ingress(request: httpx.Request) -> httpx.Response:
            sent.append(request.headers["ce-id"])
            if len(sent) == 1:  # the drain is mid-send: the writer gets round to publishing
                publishes.append(await Publisher(db, INGRESS, client).publish(ids))
            return httpx.Response(202)

        async with httpx.AsyncClient(transport=httpx.MockTransport(ingress)) as client:
            report = await Publisher(db, INGRESS, client).drain(min_age_s=0)
        assert (report.published, publishes) == (5, [PublishReport(0, 0)])
        assert sorted(sent) == sorted(e.get_id() for e in events)


class TestStage:
    async def test_extensions_and_a_missing_subject_survive_the_outbox(self, db: Database) -> None:
        """Staged as one JSON document, an event's extensions come back as ce- headers, and no subject stays none."""
        data = ReminderDue(appointment_id="a1", appointment_version=2, local_date=date(2026, 1, 5),
                           due_at=datetime(2026, 1, 2, 9, tzinfo=UTC))  # fmt: skip
        event = new_event(data, source="/test", extensions={"appointmentid": "a1"})
        async with db.transaction() as tx:
            ids = await stage(tx, [event])
        requests: list[httpx.Request] = []

        def ingress(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return httpx.Response(202)

        async with httpx.AsyncClient(transport=httpx.MockTransport(ingress)) as client:
            await Publisher(db, INGRESS, client).publish(ids)
        [request] = requests
        assert request.headers["ce-appointmentid"] == "a1" and "ce-subject" not in request.headers
        assert request.headers["ce-id"] == event.get_id()
