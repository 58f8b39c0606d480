"""Alert sinks: what each one is sent, that no payload carries contact data, and how failures read."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from patient_notify.alert_sinks import (
    AlertmanagerSink,
    AlertNotice,
    ContactDataInAlert,
    MessageSink,
    SinkConfig,
    build_sinks,
    notice_from_row,
    refuse_contact_data,
    summarise_storms,
)
from patient_notify.alert_sinks.payloads import alertmanager_body, pagerduty_body, slack_body, webhook_body

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def make_notice(**overrides: Any) -> AlertNotice:
    row: dict[str, Any] = {
        "id": 7, "dedup_key": "delivery_unknown:42", "kind": "delivery_unknown", "severity": "critical",
        "subject": "42", "detail": "sms outcome unknown since 2026-11-25T09:40Z", "created_at": NOW - timedelta(hours=1),
        "last_seen_at": NOW, "occurrences": 2, "resolved_at": None,
    }  # fmt: skip
    return notice_from_row({**row, **overrides})


class TestPayloads:
    def test_pagerduty_triggers_then_resolves_one_incident_per_alert(self) -> None:
        """Events API v2: routing_key, event_action, the alert's key as dedup_key; a trigger carries the payload."""
        trigger = pagerduty_body(make_notice(), "R" * 32)
        resolve = pagerduty_body(make_notice(resolved_at=NOW), "R" * 32)
        assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
        assert trigger["dedup_key"] == resolve["dedup_key"] == "delivery_unknown:42"
        assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "patient-notify"
        assert "payload" not in resolve and resolve["routing_key"] == "R" * 32

    def test_alertmanager_labels_identify_and_times_bound_the_alert(self) -> None:
        """Labels (alertname = kind, dedup_key), startsAt first seen; endsAt in the future while open, else resolved."""
        open_, closed = make_notice(), make_notice(dedup_key="k2", resolved_at=NOW - timedelta(minutes=1))
        body = alertmanager_body([open_, closed], NOW, timedelta(hours=3))
        assert body[0]["labels"] == {"alertname": "delivery_unknown", "severity": "critical",
                                     "dedup_key": "delivery_unknown:42", "service": "patient-notify"}  # fmt: skip
        assert body[0]["startsAt"] == (NOW - timedelta(hours=1)).isoformat()
        assert body[0]["endsAt"] == (NOW + timedelta(hours=3)).isoformat()
        assert body[1]["endsAt"] == (NOW - timedelta(minutes=1)).isoformat()

    def test_slack_has_a_notification_line_and_blocks(self) -> None:
        """``text`` for the notification, blocks with the kind, state, subject and key."""
        body = slack_body(make_notice())
        assert body["text"].startswith(":rotating_light: [critical] delivery_unknown 42 open")
        assert "`delivery_unknown:42`" in json.dumps(body["blocks"])
        assert slack_body(make_notice(resolved_at=NOW))["text"].startswith(":white_check_mark:")

    def test_webhook_is_flat_json(self) -> None:
        """Our own webhook: every field of the alert by name, state included."""
        body = webhook_body(make_notice())
        assert {k: body[k] for k in ("dedup_key", "state", "occurrences", "alerts")} == {
            "dedup_key": "delivery_unknown:42", "state": "open", "occurrences": 2, "alerts": 1}  # fmt: skip


class TestNoContactDataLeavesUs:
    @pytest.mark.parametrize("dirty", [
        {"detail": "Twilio: The 'To' number +12025550123 is not valid"},  # a provider's error quoting it
        {"detail": "bounce from ada.lovelace@example.org"},  # an address
        {"subject": "+12025550123"},  # a number used as a subject by mistake
        {"dedup_key": "unreachable:ada@example.org"},  # ... or in a key
    ])  # fmt: skip
    def test_every_payload_is_clean_whatever_the_row_held(self, dirty: dict[str, str]) -> None:
        """Rows written by hand or before the guard still leave redacted, for every sink."""
        notice = make_notice(**dirty)
        bodies = [webhook_body(notice), slack_body(notice), pagerduty_body(notice, "key"),
                  alertmanager_body([notice], NOW, timedelta(hours=1))]  # fmt: skip
        text = json.dumps(bodies)
        assert "2025550123" not in text and "ada.lovelace" not in text and "ada@" not in text

    def test_a_payload_with_contact_data_is_refused_naming_where(self) -> None:
        """The last guard refuses a body a builder filled wrongly, naming the field, quoting nothing."""
        with pytest.raises(ContactDataInAlert) as caught:
            refuse_contact_data({"labels": {"to": "+12025550123"}})
        assert caught.value.path == "$.labels.to" and "2025550123" not in str(caught.value)

    def test_timestamps_and_ids_pass_the_guard(self) -> None:
        """ISO times, UUIDs and numeric ids are not mistaken for phone numbers."""
        ok = {"t": NOW.isoformat(), "id": "3f2a1b4c-1234-5678-9012-3456789abcde", "n": "123456789012"}
        assert refuse_contact_data(ok) == ok


class TestStorms:
    def test_many_changes_of_one_kind_become_one_summary_standing_for_all(self) -> None:
        """Twelve delivery_unknown opened in a tick: one notice covering the twelve rows; others untouched."""
        storm = [make_notice(id=i, dedup_key=f"delivery_unknown:{i}", subject=str(i)) for i in range(12)]
        other = make_notice(id=99, kind="etl_stale", dedup_key="etl_stale", subject=None)
        out = summarise_storms([*storm, other], threshold=10)
        summary = next(n for n in out if n.kind == "delivery_unknown")
        assert len(out) == 2 and summary.dedup_key == "delivery_unknown:summary"
        assert summary.alert_ids == tuple(range(12)) and summary.detail.startswith("12 delivery_unknown alerts opened")

    def test_a_few_changes_go_one_by_one(self) -> None:
        """At or under the threshold nothing is summarised."""
        notices = [make_notice(id=i, dedup_key=f"k{i}") for i in range(3)]
        assert summarise_storms(notices, threshold=3) == notices


def _client(answer: int | type[httpx.TransportError], seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(answer, type):
            raise answer("boom", request=request)
        return httpx.Response(answer)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


class TestHttpSinks:
    async def test_each_notice_is_one_post_and_a_2xx_is_success(self) -> None:
        """A message sink posts each notice; per notice, None when accepted."""
        seen: list[httpx.Request] = []
        async with _client(200, seen) as client:
            sink = MessageSink("slack", "https://hooks.example/T/B/secret", slack_body, client)
            assert await sink.push([make_notice(), make_notice(dedup_key="k2")], NOW) == [None, None]
        assert [r.url.path for r in seen] == ["/T/B/secret"] * 2

    @pytest.mark.parametrize(("answer", "reason"), [
        (500, "HTTP 500"),  # the sink failed
        (429, "HTTP 429"),  # it throttled us
        (httpx.ConnectError, "unreachable: ConnectError"),  # it is down
    ])  # fmt: skip
    async def test_a_failure_is_a_reason_never_the_url(
        self, answer: int | type[httpx.TransportError], reason: str
    ) -> None:
        """The reason names the status or error type only: a Slack URL is a secret."""
        async with _client(answer, []) as client:
            sink = MessageSink("slack", "https://hooks.example/T/B/secret", slack_body, client)
            [outcome] = await sink.push([make_notice()], NOW)
        assert outcome == reason and "secret" not in reason

    async def test_alertmanager_takes_every_notice_in_one_post(self) -> None:
        """One POST /api/v2/alerts; its outcome is every notice's."""
        seen: list[httpx.Request] = []
        async with _client(200, seen) as client:
            outcomes = await AlertmanagerSink("http://am:9093/", client).push([make_notice(), make_notice()], NOW)
        assert outcomes == [None, None] and [r.url.path for r in seen] == ["/api/v2/alerts"]
        assert len(json.loads(seen[0].content)) == 2


class TestConfig:
    @pytest.mark.parametrize(("config", "problem"), [
        (SinkConfig(sinks=("slack",)), ("ALERT_SLACK_WEBHOOK_URL", "required when ALERT_SINKS lists slack")),
        (SinkConfig(sinks=("pagerduty",)), ("ALERT_PAGERDUTY_ROUTING_KEY", "required when ALERT_SINKS lists pagerduty")),
        (SinkConfig(sinks=("sms",)), ("ALERT_SINKS", "unknown sink 'sms': use webhook, slack, pagerduty, alertmanager")),
        (SinkConfig(), None),  # no sinks: alerts stay in the table only
    ])  # fmt: skip
    def test_a_listed_sink_needs_its_setting(self, config: SinkConfig, problem: tuple[str, str] | None) -> None:
        """Each sink named in ALERT_SINKS needs its URL or key; an unknown name is refused."""
        assert config.missing() == problem

    async def test_sinks_are_built_in_the_order_listed(self) -> None:
        """Only the listed sinks, in ALERT_SINKS order, whatever else is configured."""
        config = SinkConfig(sinks=("pagerduty", "webhook"), webhook_url="http://w", slack_webhook_url="http://s",
                            pagerduty_routing_key="k")  # fmt: skip
        async with httpx.AsyncClient() as client:
            assert [s.name for s in build_sinks(config, client)] == ["pagerduty", "webhook"]

    def test_a_notice_is_frozen_and_guarded_on_copy(self) -> None:
        """A changed copy is guarded again."""
        assert replace(make_notice(), subject="+12025550123").subject == "[phone]"
