"""The moves stored receipts make, applied on time or late (patient_notify.domain.receipt_moves)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patient_notify.domain.receipt_moves import Move, StoredReceipt, failure_alerts, plan_moves
from patient_notify.domain.receipts import furthest, receipt_target

TWILIO_STATUSES = ["accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read"]


def make_receipt(status: str, receipt_id: int = 1, error_code: str | None = None) -> StoredReceipt:
    return StoredReceipt(receipt_id, "twilio", status, error_code)


class TestPlan:
    def test_receipts_apply_in_the_order_received(self) -> None:
        """sent then delivered: two moves, each from the status the previous one left."""
        moves = plan_moves({7: "sending"}, [make_receipt("sent", 1), make_receipt("delivered", 2)])
        assert [(m.from_status, m.to_status, m.receipt.id) for m in moves] == [
            ("sending", "sent", 1), ("sent", "delivered", 2),
        ]  # fmt: skip

    def test_a_late_sent_moves_nothing(self) -> None:
        """delivered, then sent (received later, or applied later): one move, to delivered."""
        moves = plan_moves({7: "sent"}, [make_receipt("delivered", 1), make_receipt("sent", 2)])
        assert [(m.to_status, m.receipt.id) for m in moves] == [("delivered", 1)]

    def test_every_notification_of_the_message_moves(self) -> None:
        """Two notifications sharing a provider id (never by design, but possible) each move forward."""
        moves = plan_moves({7: "sent", 8: "delivered"}, [make_receipt("failed")])
        assert [(m.notification_id, m.to_status) for m in moves] == [(7, "failed")]

    @given(
        start=st.sampled_from(["sending", "sent", "unknown", "delivered"]),
        statuses=st.lists(st.sampled_from(TWILIO_STATUSES), max_size=12),
    )
    def test_the_end_status_is_the_furthest_and_each_move_goes_forward(self, start: str, statuses: list[str]) -> None:
        """Any receipts, repeated, in any order: the last move ends where ``furthest`` does."""
        receipts = [make_receipt(s, i) for i, s in enumerate(statuses)]
        moves = plan_moves({7: start}, receipts)
        targets = [t for t in (receipt_target("twilio", s) for s in statuses) if t is not None]
        assert (moves[-1].to_status if moves else start) == furthest(start, targets)
        assert all(a.to_status == b.from_status for a, b in itertools.pairwise(moves))


class TestFailures:
    def test_a_failure_carries_the_providers_status_and_code(self) -> None:
        """The error recorded on the notification names provider, status and error code."""
        [move] = plan_moves({7: "sent"}, [make_receipt("undelivered", error_code="30003")])
        assert (move.failed, move.error) == (True, "twilio undelivered 30003")

    def test_only_failures_alert(self) -> None:
        """One delivery_failed alert per failed move, keyed as the senders key theirs."""
        moves = [Move(7, "sent", "delivered", make_receipt("delivered")),
                 Move(8, "sent", "failed", make_receipt("failed", error_code="30008"))]  # fmt: skip
        assert [(a.dedup_key, a.subject) for a in failure_alerts(moves)] == [("delivery_failed:8", "8")]


class TestTargets:
    # provider, status as sent -> our status (None: kept, moves nothing)
    @pytest.mark.parametrize(("provider", "status", "target"), [
        ("twilio", "Delivered", "delivered"),  # Twilio's, any case
        ("ses", "Bounce", "undelivered"),  # SES's event type
        ("ses", "delivery", None),  # SES's are exact
        ("sns", "Notification", None),  # an SNS message is no delivery receipt
    ])  # fmt: skip
    def test_each_providers_statuses(self, provider: str, status: str, target: str | None) -> None:
        """A receipt's status maps onto ours by its provider's vocabulary."""
        assert receipt_target(provider, status) == target
