"""Which status moves a message's stored delivery receipts make: pure, one plan for every path.

The webhooks apply a receipt as it arrives; the monitor applies one that arrived before the sender
had recorded the provider's message id (``patient_notify.receipts``). Both plan here, so a receipt
applied late moves a notification exactly as it would have on time: the receipts in the order
received, each moving each notification forward only (``advances``), so the end status is
``furthest`` of them however they were duplicated or reordered, and of two final ones the first
received stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from patient_notify.domain.alerts import Alert
from patient_notify.domain.receipts import advances, delivery_failed_alert, is_failure, receipt_target

__all__ = ["Move", "StoredReceipt", "failure_alerts", "plan_moves"]


@dataclass(frozen=True)
class StoredReceipt:
    """A verified delivery receipt as ``provider_receipts`` keeps it (the payload aside)."""

    id: int
    provider: str  # twilio | ses
    status: str  # Twilio's MessageStatus or SES's event type, as sent
    error_code: str | None = None


@dataclass(frozen=True)
class Move:
    notification_id: int
    from_status: str
    to_status: str
    receipt: StoredReceipt  # the receipt that made it

    @property
    def failed(self) -> bool:
        return is_failure(self.to_status)

    @property
    def error(self) -> str | None:
        """What the notification's ``last_error`` records for a failure: "twilio undelivered 30003"."""
        r = self.receipt
        return " ".join(filter(None, (r.provider, r.status, r.error_code))) if self.failed else None


def plan_moves(statuses: Mapping[int, str], receipts: Sequence[StoredReceipt]) -> list[Move]:
    """The moves ``receipts`` (oldest first) make from ``statuses`` (notification id → status), in order."""
    current, moves = dict(statuses), []
    for receipt in receipts:
        target = receipt_target(receipt.provider, receipt.status)
        for notification_id, status in current.items():
            if target is not None and advances(status, target):
                moves.append(Move(notification_id, status, target, receipt))
                current[notification_id] = target
    return moves


def failure_alerts(moves: Sequence[Move]) -> list[Alert]:
    return [
        delivery_failed_alert(m.notification_id, m.receipt.provider, m.receipt.status, m.receipt.error_code)
        for m in moves if m.failed
    ]  # fmt: skip
