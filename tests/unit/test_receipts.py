"""What a receipt or an inbound SMS decides, without I/O (patient_notify.domain.receipts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patient_notify.domain.receipts import (
    advances,
    delivery_failed_alert,
    furthest,
    inbound_action,
    is_dialable,
    ses_outcome,
    twilio_outcome,
    unverified_alert,
)

# Twilio's statuses for one message, in the order they happen; the last is one of the finals.
TWILIO_PROGRESS = ["accepted", "queued", "sending", "sent"]
TWILIO_FINALS = ["delivered", "undelivered", "failed"]


def _targets(statuses: list[str]) -> list[str]:
    return [t for t in (twilio_outcome(s, None).target for s in statuses) if t is not None]


class TestForwardOnly:
    # current status, receipt's target, moves?
    @pytest.mark.parametrize(
        ("current", "target", "moves"),
        [
            ("sending", "sent", True),  # the receipt proves the provider has it
            ("unknown", "delivered", True),  # a receipt settles a call whose outcome we could not tell
            ("sent", "delivered", True),  # the usual path
            ("sent", "undelivered", True),
            ("delivered", "sent", False),  # a late "sent" never overwrites "delivered"
            ("delivered", "undelivered", False),  # the first final status stands
            ("failed", "delivered", False),
            ("sent", "sent", False),  # a duplicate changes nothing
            ("queued", "delivered", False),  # never claimed: no receipt can be about it
            ("skipped", "delivered", False),
        ],
    )
    def test_a_status_only_moves_forward(self, current: str, target: str, moves: bool) -> None:
        """A receipt moves a notification only to a further status, and never out of a final one."""
        assert advances(current, target) is moves

    @given(
        final=st.sampled_from(TWILIO_FINALS),
        order=st.lists(st.integers(0, len(TWILIO_PROGRESS)), min_size=1, max_size=20),
        start=st.sampled_from(["sending", "sent", "unknown"]),
    )
    def test_any_order_and_duplication_ends_at_the_furthest_status(
        self, final: str, order: list[int], start: str
    ) -> None:
        """Callbacks in any order, any of them repeated (one SID for all segments): the furthest one wins."""
        sequence = [*TWILIO_PROGRESS, final]
        arrived = [sequence[i] for i in order]
        assert furthest(start, _targets(arrived)) == (final if final in arrived else "sent")

    @given(st.lists(st.sampled_from(["sent", "delivered", "undelivered", "failed"]), max_size=12))
    def test_the_first_final_status_stands(self, targets: list[str]) -> None:
        """Of several final statuses (never from one honest provider), the first received is kept."""
        finals = [t for t in targets if t in TWILIO_FINALS]
        assert furthest("sending", targets) == (finals[0] if finals else ("sent" if targets else "sending"))


class TestTwilioOutcome:
    # Twilio MessageStatus -> our notification status (None: kept, nothing moves)
    @pytest.mark.parametrize(
        ("status", "target"),
        [
            ("queued", "sent"),  # the provider has it
            ("accepted", "sent"),  # messaging service accepted it
            ("sending", "sent"),
            ("sent", "sent"),
            ("delivered", "delivered"),
            ("undelivered", "undelivered"),
            ("failed", "failed"),
            ("DELIVERED", "delivered"),  # case does not matter
            ("receiving", None),  # an inbound status: nothing to move
            ("", None),  # absent
        ],
    )
    def test_statuses_map_onto_ours(self, status: str, target: str | None) -> None:
        """Twilio's statuses map onto the notification's, and unknown ones move nothing."""
        assert twilio_outcome(status, None).target == target

    def test_error_21610_opts_the_number_out(self) -> None:
        """Twilio's 'unsubscribed recipient' error in a callback means the number replied STOP."""
        assert twilio_outcome("failed", "21610").opt_out
        assert not twilio_outcome("undelivered", "30003").opt_out

    def test_undelivered_and_failed_count_as_failures(self) -> None:
        """Only a final non-delivery is a failure that needs an alert."""
        assert [twilio_outcome(s, None).failed for s in ["sent", "delivered", "undelivered", "failed"]] == [
            False, False, True, True,
        ]  # fmt: skip


class TestSesOutcome:
    def test_a_hard_bounce_suppresses_the_addresses(self) -> None:
        """A Permanent bounce is undelivered, and its addresses (normalised) are never written to again."""
        outcome = ses_outcome("Bounce", "Permanent", [" Ada@Example.org", "ada@example.org"])
        assert (outcome.target, outcome.suppress, outcome.suppress_reason) == (
            "undelivered", ("ada@example.org",), "bounce",
        )  # fmt: skip

    def test_a_soft_bounce_is_undelivered_but_not_suppressed(self) -> None:
        """A Transient bounce (SES gave up retrying) is undelivered; the address stays usable."""
        outcome = ses_outcome("Bounce", "Transient", ["ada@example.org"])
        assert (outcome.target, outcome.suppress, outcome.suppress_reason) == ("undelivered", (), None)

    def test_a_complaint_suppresses_the_address(self) -> None:
        """A complaint suppresses the address for good."""
        outcome = ses_outcome("Complaint", None, ["ada@example.org"])
        assert (outcome.suppress, outcome.suppress_reason, outcome.failed) == (("ada@example.org",), "complaint", True)

    # SES eventType -> our notification status
    @pytest.mark.parametrize(
        ("event_type", "target"),
        [
            ("Delivery", "delivered"),
            ("Send", "sent"),
            ("Reject", "failed"),  # SES refused it (a virus, say)
            ("Rendering Failure", "failed"),
            ("DeliveryDelay", None),  # still trying: kept only
            ("Open", None),  # engagement events are not delivery
        ],
    )
    def test_other_events_map_onto_ours(self, event_type: str, target: str | None) -> None:
        """SES events other than bounces and complaints move the status and suppress nothing."""
        outcome = ses_outcome(event_type, None, ["ada@example.org"])
        assert (outcome.target, outcome.suppress) == (target, ())


class TestInboundKeywords:
    # body -> (action, keyword)
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ("STOP", ("opt_out", "STOP")),
            ("  stop \n", ("opt_out", "STOP")),  # trimmed, any case
            ("StopAll", ("opt_out", "STOPALL")),
            ("unsubscribe", ("opt_out", "UNSUBSCRIBE")),
            ("Cancel", ("opt_out", "CANCEL")),  # a carrier opt-out word: never an appointment action
            ("end", ("opt_out", "END")),
            ("QUIT", ("opt_out", "QUIT")),
            ("start", ("opt_in", "START")),
            ("Unstop", ("opt_in", "UNSTOP")),
            (" help", ("help", "HELP")),
            ("stop texting me", None),  # the whole message must be the keyword
            ("Can I cancel my appointment?", None),
            ("", None),
        ],
    )
    def test_keywords_are_the_whole_message(self, body: str, expected: tuple[str, str] | None) -> None:
        """STOP, START and HELP words count only as the whole message, trimmed, in any case."""
        action = inbound_action(body)
        assert (None if action is None else (action.action, action.keyword)) == expected

    # Twilio's OptOutType, body -> (action, keyword, Twilio replied itself)
    @pytest.mark.parametrize(
        ("opt_out_type", "body", "expected"),
        [
            ("STOP", "Alto", ("opt_out", "ALTO", True)),  # a site's own keyword, configured at Twilio
            ("START", "si", ("opt_in", "SI", True)),
            ("HELP", "Ayuda", ("help", "AYUDA", True)),  # Twilio sent the configured reply
            (None, "HELP", ("help", "HELP", False)),  # no Advanced Opt-Out: we reply
            ("", "STOP", ("opt_out", "STOP", False)),  # an empty parameter is no classification
        ],
    )
    def test_twilio_classification_wins(
        self, opt_out_type: str | None, body: str, expected: tuple[str, str, bool]
    ) -> None:
        """With Advanced Opt-Out, Twilio's OptOutType decides (custom keywords too) and Twilio has replied."""
        action = inbound_action(body, opt_out_type)
        assert action is not None and (action.action, action.keyword, action.answered_by_provider) == expected

    @pytest.mark.parametrize(
        ("number", "dialable"), [("+447700900123", True), ("07700 900123", False), ("+0123456", False), ("", False)]
    )
    def test_only_e164_numbers_are_opted_out(self, number: str, dialable: bool) -> None:
        """An opt-out is recorded for an E.164 number (the only form we send to)."""
        assert is_dialable(number) is dialable


class TestAlerts:
    def test_unverified_requests_raise_one_alert_per_endpoint_and_hour(self) -> None:
        """Forged requests in one hour share an alert; the next hour, or another endpoint, gets its own."""
        at = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
        keys = {unverified_alert(e, "signature invalid", t).dedup_key for e, t in [
            ("twilio-status", at), ("twilio-status", at.replace(minute=59)),
            ("twilio-status", at.replace(hour=10)), ("ses-events", at),
        ]}  # fmt: skip
        assert len(keys) == 3

    def test_delivery_failed_alert_names_ids_only(self) -> None:
        """The delivery alert shares the sender's key for the notification and carries no recipient."""
        alert = delivery_failed_alert(42, "twilio", "undelivered", "30003")
        assert (alert.dedup_key, alert.kind, alert.subject) == ("delivery_failed:42", "delivery_failed", "42")
        assert alert.detail == "twilio reported undelivered (error 30003)"
