"""The monitor's pure decisions, and the guard that keeps contact data out of every alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from patient_notify.domain import monitoring as m
from patient_notify.domain.alerts import Alert, contains_contact_data, redact_identifier

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class TestContactDataGuard:
    @pytest.mark.parametrize(("text", "kept"), [
        ("+12025550123", "[phone]"),  # E.164
        ("+44 20 7946 0123", "[phone]"),  # spaced international
        ("(202) 555-0123", "[phone]"),  # national, punctuated
        ("202.555.0123", "[phone]"),  # national, dotted
        ("ada.lovelace+nhs@example.org", "[email]"),  # email
        ("unreachable:john.o'neil@nhs.net", "unreachable:[email]"),  # an apostrophe in the local part
        ("delivery_unknown:+12025550123", "delivery_unknown:[phone]"),  # inside a key
        ("123456789012", "123456789012"),  # a bare run of digits is an id (a notification, an appointment)
        ("3f2a1b4c-1234-5678-9012-3456789abcde", "3f2a1b4c-1234-5678-9012-3456789abcde"),  # an event id (UUID)
        ("reminder-late:appt-1:2026-11-25", "reminder-late:appt-1:2026-11-25"),  # a date
        ("pn-1a2b.sms-sender.dlq", "pn-1a2b.sms-sender.dlq"),  # a queue name
    ])  # fmt: skip
    def test_identifiers_lose_numbers_and_addresses_only(self, text: str, kept: str) -> None:
        """Subjects and keys keep ids, UUIDs and dates; anything phone- or email-shaped is replaced."""
        assert redact_identifier(text) == kept
        assert contains_contact_data(text) is (kept != text)

    def test_an_alert_cannot_be_built_holding_contact_data(self) -> None:
        """Whatever a caller passes, the alert holds no number or address in key, subject or detail."""
        a = Alert("k:+12025550123", "delivery_failed", "critical", "ada@example.org",
                  "The 'To' number 2025550123 is not valid; bounce from ada@example.org")  # fmt: skip
        assert (a.dedup_key, a.subject) == ("k:[phone]", "[email]")
        assert "2025550123" not in a.detail and "ada@" not in a.detail

    def test_detail_is_bounded(self) -> None:
        """A long detail is cut to what the table and the pagers take."""
        assert len(Alert("k", "x", "warning", None, "y" * 2000).detail) == 500


def _row(**values: object) -> dict[str, object]:
    return {"id": 42, "channel": "sms", "since": NOW - timedelta(minutes=20), "provider": "twilio",
            "type": "org.patientnotify.reminder.due.v1", "attempts": 3, "last_error": "HTTP 503", **values}  # fmt: skip


class TestAlertsAboutOneRow:
    @pytest.mark.parametrize(("build", "kind", "severity"), [
        (m.stale_send_alerts, "delivery_unknown", "critical"),  # the senders' key: one incident, whoever sees it
        (m.unknown_alerts, "delivery_unknown", "critical"),
        (m.stalled_alerts, "notification_stalled", "warning"),
        (m.receipt_alerts, "receipt_missing", "warning"),
        (m.lost_event_alerts, "event_unprocessed", "warning"),
        (m.outbox_alerts, "outbox_unpublished", "critical"),
    ])  # fmt: skip
    def test_each_is_keyed_by_kind_and_row_with_the_row_as_subject(
        self, build: object, kind: str, severity: str
    ) -> None:
        """``<kind>:<id>``, subject the id, a UTC timestamp the guard leaves alone."""
        [a] = build([_row()])  # type: ignore[operator]
        assert (a.dedup_key, a.kind, a.severity, a.subject) == (f"{kind}:42", kind, severity, "42")
        assert "2026-11-25T09:40Z" in a.detail and "[phone]" not in a.detail


class TestUnmatchedReceipts:
    def test_one_alert_per_provider_naming_ids_only(self) -> None:
        """Receipts given up on this tick: one alert per provider, counting them, the first named by id."""
        rows = [{"id": 9, "provider": "twilio", "received_at": NOW - timedelta(hours=25)},
                {"id": 5, "provider": "twilio", "received_at": NOW - timedelta(hours=26)},
                {"id": 6, "provider": "ses", "received_at": NOW - timedelta(hours=25)}]  # fmt: skip
        alerts = m.unmatched_receipt_alerts(rows, timedelta(hours=24))
        assert [(a.dedup_key, a.subject, a.severity) for a in alerts] == [
            ("receipt_unmatched:ses", "ses", "warning"), ("receipt_unmatched:twilio", "twilio", "warning"),
        ]  # fmt: skip
        assert alerts[1].detail.startswith("2 verified twilio receipts matched no notification within 24 h")
        assert "receipt 5, received 2026-11-24T08:00Z" in alerts[1].detail

    def test_nothing_given_up_is_no_alert(self) -> None:
        """A tick that gives up on no receipt raises nothing (an open alert is not raised again)."""
        assert m.unmatched_receipt_alerts([], timedelta(hours=24)) == []


class TestDeliveryRate:
    @pytest.mark.parametrize(("delivered", "settled", "alerted"), [
        (98, 100, True),  # 98% on 100 outcomes: under target
        (99, 100, False),  # exactly the target
        (9, 10, False),  # 90%, but too few outcomes to judge
        (0, 0, False),  # nothing settled: nothing to judge
    ])  # fmt: skip
    def test_a_window_is_alerted_under_target_on_enough_outcomes(
        self, delivered: int, settled: int, alerted: bool
    ) -> None:
        """Below 99% over at least the minimum sample alerts; anything else does not (and clears)."""
        rows = [{"channel": "sms", "hours": 1, "delivered": delivered, "settled": settled}]
        alerts = m.rate_alerts(m.rate_windows(rows), target=0.99, min_sample=50)
        assert [a.dedup_key for a in alerts] == (["delivery_rate_low:sms:1h"] if alerted else [])

    def test_each_channel_and_window_is_its_own_alert(self) -> None:
        """SMS low over 24 h and email low over 1 h are two incidents."""
        rows = [{"channel": "sms", "hours": 24, "delivered": 90, "settled": 100},
                {"channel": "email", "hours": 1, "delivered": 50, "settled": 100}]  # fmt: skip
        alerts = m.rate_alerts(m.rate_windows(rows), target=0.99, min_sample=50)
        assert {a.dedup_key for a in alerts} == {"delivery_rate_low:sms:24h", "delivery_rate_low:email:1h"}
        assert "90 of 100" in alerts[0].detail


class TestDataFreshness:
    @pytest.mark.parametrize(("age", "stale"), [
        (timedelta(minutes=44), False),  # within the limit
        (timedelta(minutes=46), True),  # past it
    ])  # fmt: skip
    def test_data_older_than_the_limit_is_stale(self, age: timedelta, stale: bool) -> None:
        """The newest successful pass older than ETL_STALE_AFTER raises etl_stale, naming the source."""
        alert = m.data_freshness_alert({"source": "fhir:x", "last_success_at": NOW - age}, NOW, timedelta(minutes=45))
        assert (alert is not None) is stale and (alert is None or alert.subject == "fhir:x")

    def test_no_pass_ever_is_stale(self) -> None:
        """No successful pass at all is the stalest data of all."""
        alert = m.data_freshness_alert(None, NOW, timedelta(minutes=45))
        assert alert is not None and alert.kind == "etl_stale"


class TestDeadLetterQueues:
    def test_depth_alerts_and_clears_per_queue(self) -> None:
        """Messages waiting alert; an empty queue clears both its alerts; a missing one is unreadable."""
        readings = [m.QueueReading("a.dlq", 3), m.QueueReading("b.dlq", 0), m.QueueReading("c.dlq", None, "404")]
        raised, cleared = m.dead_letter_queue_alerts(readings, None)
        assert {(a.kind, a.subject) for a in raised} == {
            ("dead_letters_queued", "a.dlq"), ("dead_letter_queue_unreadable", "c.dlq")}  # fmt: skip
        assert set(cleared) == {"dead_letter_queue_unreadable:rabbitmq", "dead_letter_queue_unreadable:a.dlq",
                                "dead_letter_queue_unreadable:b.dlq", "dead_letters_queued:b.dlq"}  # fmt: skip

    def test_an_unreachable_broker_is_one_alert_and_clears_nothing(self) -> None:
        """While the broker cannot be read, the queues' alerts stay as they were."""
        raised, cleared = m.dead_letter_queue_alerts([], "broker unreachable (AMQPConnectionError)")
        assert [(a.kind, a.subject) for a in raised] == [("dead_letter_queue_unreadable", "rabbitmq")]
        assert cleared == []
