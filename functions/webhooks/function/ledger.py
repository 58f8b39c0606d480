"""Writing down what a receipt decided: the receipt row, the forward-only move, opt-outs, suppressions, alerts.

Every write of one request happens in one transaction, so a database failure leaves nothing half
applied and the provider's retry (the 503 it gets) applies it whole.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patient_notify.alerts import raise_alerts
from patient_notify.db import Database, Transaction
from patient_notify.domain.receipts import ReceiptOutcome, advances, delivery_failed_alert, unverified_alert
from patient_notify.errors import DatabaseError

__all__ = ["Receipt", "advance", "log_applied", "opt_in", "opt_out", "record", "reject", "suppress"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """One request as received; ``payload`` is kept for audit and never logged."""

    provider: str  # twilio | ses | sns
    kind: str  # status | inbound | ses-event | sns-subscription
    provider_message_id: str | None
    status: str | None  # the provider's status or event type, as sent
    payload: Mapping[str, Any]


async def record(tx: Transaction, receipt: Receipt, *, reject_reason: str | None = None) -> int:
    row = await tx.one("webhook_record_receipt", _storable({
        "provider": receipt.provider, "kind": receipt.kind,
        "provider_message_id": receipt.provider_message_id, "status": receipt.status,
        "verified": reject_reason is None, "reject_reason": reject_reason,
        "payload": json.dumps(_storable(receipt.payload), ensure_ascii=False),
    }))  # fmt: skip
    if row is None:
        raise DatabaseError("webhook_record_receipt returned no row")
    return int(row["id"])


async def reject(db: Database, receipt: Receipt, endpoint: str, reason: str, now: datetime) -> None:
    """Keep an unverified request (verified=false, with why) and raise the endpoint's hourly alert."""
    async with db.transaction() as tx:
        receipt_id = await record(tx, receipt, reject_reason=reason)
        await raise_alerts(tx, [unverified_alert(endpoint, reason, now)])
    log.warning("webhook.rejected", extra={"provider": receipt.provider, "kind": receipt.kind,
                                           "reason": reason, "receipt_id": receipt_id})  # fmt: skip


async def advance(tx: Transaction, receipt: Receipt, outcome: ReceiptOutcome, code: str | None) -> list[int]:
    """Move the receipt's notifications forward to the outcome's status; the ids that moved.

    The rows are locked first, so concurrent receipts for one message apply one after the other,
    each deciding from the status the previous one left.
    """
    target, moved = outcome.target, []
    error = " ".join(filter(None, (receipt.provider, receipt.status, code))) if outcome.failed else None
    params = {"provider": receipt.provider, "provider_message_id": receipt.provider_message_id}
    for row in await tx.all("webhook_lock_notifications", params) if receipt.provider_message_id else []:
        if target is not None and advances(row["status"], target):
            update = {"id": row["id"], "from_status": row["status"], "to_status": target, "error": error}
            if await tx.run("webhook_advance_notification", update) == 1:
                moved.append(int(row["id"]))
    if outcome.failed:
        await raise_alerts(tx, [delivery_failed_alert(n, receipt.provider, receipt.status or "", code) for n in moved])
    return moved


async def opt_out(tx: Transaction, number: str, source: str) -> None:
    await tx.run("webhook_opt_out_number", {"number": number, "source": source})


async def opt_in(tx: Transaction, number: str) -> None:
    await tx.run("webhook_opt_in_number", {"number": number})


async def suppress(tx: Transaction, addresses: Sequence[str], reason: str, detail: str) -> None:
    await tx.run("webhook_suppress_addresses", {"addresses": list(addresses), "reason": reason, "detail": detail})


def log_applied(receipt_id: int, receipt: Receipt, moved: Sequence[int], *, blocked: int = 0) -> None:
    """Ids and statuses only; ``blocked``: numbers opted out or addresses suppressed (a warning)."""
    context = {"provider": receipt.provider, "kind": receipt.kind, "status": receipt.status, "receipt_id": receipt_id}
    for notification_id in moved:
        log.info("receipt.applied", extra={**context, "notification_id": notification_id})
    if not moved:
        log.info("receipt.recorded", extra=context)  # a duplicate, a late status, or an unknown message id
    if blocked:
        log.warning("receipt.blocked_recipient", extra={**context, "count": blocked})


def _storable(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold NUL: a forged request carrying one is still kept."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value
