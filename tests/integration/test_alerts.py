"""The alert lifecycle and the pushes to sinks, against the real database and local HTTP sinks."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest

from patient_notify.alert_sinks import SinkConfig, build_sinks, push_alerts
from patient_notify.alerts import raise_alerts, resolve_alerts, resolve_alerts_of_kind
from patient_notify.db import Database
from patient_notify.domain.alerts import Alert


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the publisher opens up to 32 connections at once


@dataclass
class SinkStandIn:
    """A local HTTP endpoint recording each POST (path, headers, JSON body); answers ``answer(path, headers)``."""

    answer: Callable[[str, dict[str, str]], int] = lambda path, headers: 202
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    def __enter__(self) -> SinkStandIn:
        lock, stand_in = threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    stand_in.requests.append((self.path, headers, body))
                self.send_response(stand_in.answer(self.path, headers))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, path: str = "") -> list[Any]:
        return [body for p, _, body in self.requests if p.startswith(path)]


def alert(key: str, kind: str = "test_kind", detail: str = "something happened", subject: str | None = "42") -> Alert:
    return Alert(key, kind, "critical", subject, detail)


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), params).fetchall()


async def raise_(db: Database, *alerts: Alert) -> None:
    async with db.transaction() as tx:
        await raise_alerts(tx, alerts)


class TestLifecycle:
    async def test_an_incident_seen_again_is_one_row_counted(self, db: Database) -> None:
        """Raising the same key three times keeps one open row: first seen kept, seen three times, latest detail."""
        for n in range(3):
            await raise_(db, alert("k1", detail=f"seen {n}"))
        [(occurrences, detail, first, last, resolved)] = rows(
            db.url, "SELECT occurrences, detail, created_at, last_seen_at, resolved_at FROM alerts"
        )
        assert (occurrences, detail, resolved) == (3, "seen 2", None) and last >= first

    async def test_a_batch_repeating_a_key_is_one_row(self, db: Database) -> None:
        """One statement raising the same key twice (e.g. two checks finding one notification) does not fail."""
        await raise_(db, alert("k1", detail="first"), alert("k2"), alert("k1", detail="second"))
        assert rows(db.url, "SELECT dedup_key, detail FROM alerts ORDER BY 1") == [
            ("k1", "second"),
            ("k2", "something happened"),
        ]

    async def test_a_resolved_incident_seen_again_reopens_unacknowledged(self, db: Database) -> None:
        """Resolved, then raised again: the same row is open again, news again (acknowledgement cleared)."""
        await raise_(db, alert("k1"))
        async with db.transaction() as tx:
            assert await resolve_alerts(tx, ["k1", "never-raised"]) == 1
        rows(db.url, "UPDATE alerts SET acknowledged_at = now() RETURNING id")
        await raise_(db, alert("k1"))
        assert rows(db.url, "SELECT count(*), bool_and(resolved_at IS NULL), bool_and(acknowledged_at IS NULL), "
                            "max(occurrences) FROM alerts") == [(1, True, True, 2)]  # fmt: skip

    async def test_an_acknowledged_open_incident_stays_acknowledged(self, db: Database) -> None:
        """Seen again while open and acknowledged, it is counted but not made news again."""
        await raise_(db, alert("k1"))
        rows(db.url, "UPDATE alerts SET acknowledged_at = now() RETURNING id")
        await raise_(db, alert("k1"))
        assert rows(db.url, "SELECT acknowledged_at IS NOT NULL, occurrences FROM alerts") == [(True, 2)]

    async def test_resolving_by_kind_keeps_the_conditions_still_true(self, db: Database) -> None:
        """Every open alert of the kind clears except the keys still raised; other kinds are untouched."""
        await raise_(db, alert("a"), alert("b"), alert("c", kind="other"))
        async with db.transaction() as tx:
            assert await resolve_alerts_of_kind(tx, "test_kind", ["b"]) == 1
        assert rows(db.url, "SELECT dedup_key FROM alerts WHERE resolved_at IS NULL ORDER BY 1") == [("b",), ("c",)]

    async def test_contact_data_never_reaches_the_table(self, db: Database) -> None:
        """A detail or subject quoting a number or an address is stored redacted."""
        await raise_(db, alert("k:+12025550123", detail="to ada@example.org (202) 555-0123", subject="+12025550123"))
        [(key, subject, detail)] = rows(db.url, "SELECT dedup_key, subject, detail FROM alerts")
        assert (key, subject) == ("k:[phone]", "[phone]") and "ada@" not in detail and "555" not in detail


@pytest.fixture
def sinks() -> Iterator[SinkStandIn]:
    with SinkStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


def config(url: str, *names: str) -> SinkConfig:
    return SinkConfig(
        sinks=names, webhook_url=f"{url}/hook", webhook_token="t0ken", slack_webhook_url=f"{url}/slack",
        pagerduty_routing_key="R" * 32, pagerduty_url=f"{url}/pd", alertmanager_url=f"{url}/am",
    )  # fmt: skip


async def push(
    db: Database, client: httpx.AsyncClient, cfg: SinkConfig, now: datetime | None = None
) -> tuple[int, int]:
    report = await push_alerts(db, build_sinks(cfg, client), now=now or datetime.now(UTC), storm_threshold=3)
    return report.pushed, report.failed


class TestPushes:
    async def test_each_change_reaches_each_sink_once(
        self, db: Database, sinks: SinkStandIn, client: httpx.AsyncClient
    ) -> None:
        """A new alert is pushed once to every sink; a second tick pushes nothing; resolving pushes once more."""
        cfg = config(sinks.url, "webhook", "slack", "pagerduty")
        await raise_(db, alert("k1"))
        assert await push(db, client, cfg) == (3, 0)
        assert await push(db, client, cfg) == (0, 0)
        async with db.transaction() as tx:
            await resolve_alerts(tx, ["k1"])
        assert await push(db, client, cfg) == (3, 0)
        [trigger, resolve] = sinks.bodies("/pd")
        assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
        assert trigger["dedup_key"] == resolve["dedup_key"] == "k1" and trigger["payload"]["severity"] == "critical"
        assert [b["state"] for b in sinks.bodies("/hook")] == ["open", "resolved"]
        assert rows(db.url, "SELECT notified_state, notified_at IS NOT NULL FROM alerts") == [("resolved", True)]

    async def test_a_failing_sink_is_retried_without_repeating_the_others(
        self, db: Database, client: httpx.AsyncClient
    ) -> None:
        """Slack down: the webhook gets the alert once; Slack gets it on the tick after it recovers; never lost."""
        slack_up = False
        with SinkStandIn(answer=lambda path, headers: 200 if slack_up or path != "/slack" else 503) as sinks:
            cfg = config(sinks.url, "webhook", "slack")
            await raise_(db, alert("k1"))
            assert await push(db, client, cfg) == (1, 1)
            failed = rows(db.url, "SELECT kind, resolved_at IS NULL FROM alerts WHERE kind = 'alert_sink_failed'")
            assert failed == [("alert_sink_failed", True)]
            slack_up = True
            await push(db, client, cfg)
        assert [b["dedup_key"] for b in sinks.bodies("/hook")].count("k1") == 1
        assert sum("`k1`" in json.dumps(b) for b in sinks.bodies("/slack")) == 1 + 1  # refused once, accepted once
        assert rows(db.url, "SELECT resolved_at IS NOT NULL FROM alerts WHERE kind = 'alert_sink_failed'") == [(True,)]
        assert rows(db.url, "SELECT notified_state FROM alerts WHERE dedup_key = 'k1'") == [("open",)]

    async def test_a_storm_is_one_message_but_every_row_is_recorded(
        self, db: Database, sinks: SinkStandIn, client: httpx.AsyncClient
    ) -> None:
        """Ten alerts of one kind in a tick are one Slack message naming the kind; all ten are marked notified."""
        await raise_(db, *(alert(f"k{i}", kind="delivery_unknown", subject=str(i)) for i in range(10)))
        await push(db, client, config(sinks.url, "slack"))
        [message] = sinks.bodies("/slack")
        assert "10 delivery_unknown alerts opened" in message["text"]
        assert rows(db.url, "SELECT count(*) FROM alerts WHERE notified_state = 'open'") == [(10,)]

    async def test_alertmanager_gets_labels_and_times_and_open_alerts_again(
        self, db: Database, sinks: SinkStandIn, client: httpx.AsyncClient
    ) -> None:
        """One POST /api/v2/alerts; an open alert fires into the future and is re-sent after the refresh period."""
        cfg, now = config(sinks.url, "alertmanager"), datetime.now(UTC)
        await raise_(db, alert("k1"), alert("k2"))
        await push(db, client, cfg, now)
        [batch] = sinks.bodies("/am/api/v2/alerts")
        assert {a["labels"]["dedup_key"] for a in batch} == {"k1", "k2"}
        assert all(datetime.fromisoformat(a["endsAt"]) > now for a in batch)
        assert all(a["labels"]["alertname"] == "test_kind" for a in batch)
        await push(db, client, cfg, now + timedelta(minutes=5))  # within the refresh period: nothing
        await push(db, client, cfg, now + timedelta(hours=2))  # past it: both again
        assert [len(b) for b in sinks.bodies("/am")] == [2, 2]

    async def test_webhook_carries_the_bearer_token_and_no_contact_data(
        self, db: Database, sinks: SinkStandIn, client: httpx.AsyncClient
    ) -> None:
        """The generic webhook authenticates with the token; a detail quoting a number arrives redacted."""
        await raise_(db, alert("k1", detail="Twilio: The 'To' number +12025550123 is not valid"))
        await push(db, client, config(sinks.url, "webhook"))
        [(_, headers, body)] = sinks.requests
        assert headers["authorization"] == "Bearer t0ken"
        assert "+12025550123" not in json.dumps(body) and "[phone]" in body["detail"]
