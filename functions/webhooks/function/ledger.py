"""Writing down what a receipt decided: the receipt row, the forward-only move, opt-outs, suppressions, alerts.

Every write of one request happens in one transaction, so a database failure leaves nothing half
applied and the provider's retry (the 503 it gets) applies it whole. A delivery receipt is applied
by ``patient_notify.receipts``, the code the monitor applies early receipts with.

A verified request is kept whole. An unverified one is anyone's, so it is kept bounded: its first
2 KiB as text with its size and sha256 (``bounded_payload``), and the ids and status read from it
clipped to 128 characters; with why it was refused, enough to audit it without storing what
an unauthenticated sender chose to send.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from patient_notify.alerts import raise_alerts
from patient_notify.db import Database, Transaction
from patient_notify.domain.receipts import unverified_alert
from patient_notify.errors import DatabaseError
from patient_notify.receipts import Move, apply_pending
from patient_notify.records import storable

__all__ = ["Receipt", "apply", "bounded_payload", "log_applied", "opt_in", "opt_out", "record", "reject", "suppress"]

log = logging.getLogger(__name__)
KEPT_BODY_BYTES = 2048  # of an unverified request
KEPT_FIELD_CHARS = 128  # ids and statuses read from an unverified request: SIDs are 34, SES ids about 60


@dataclass(frozen=True)
class Receipt:
    """One request as received; ``payload`` is kept for audit and never logged."""

    provider: str  # twilio | ses | sns
    kind: str  # status | inbound | ses-event | sns-subscription
    provider_message_id: str | None
    status: str | None  # the provider's status or event type, as sent
    payload: Mapping[str, Any]
    error_code: str | None = None  # Twilio's ErrorCode, SES's bounceType


async def record(tx: Transaction, receipt: Receipt, *, reject_reason: str | None = None, pending: bool = False) -> int:
    """Keep the request; ``pending``: a verified delivery receipt, to apply to its notifications."""
    row = await tx.one("webhook_record_receipt", storable({
        "provider": receipt.provider, "kind": receipt.kind,
        "provider_message_id": receipt.provider_message_id, "status": receipt.status,
        "error_code": receipt.error_code or None, "verified": reject_reason is None, "reject_reason": reject_reason,
        "payload": json.dumps(storable(receipt.payload), ensure_ascii=False),
        "match_state": "pending" if pending else None,
    }))  # fmt: skip
    if row is None:
        raise DatabaseError("webhook_record_receipt returned no row")
    return int(row["id"])


async def reject(db: Database, receipt: Receipt, body: bytes, endpoint: str, reason: str, now: datetime) -> None:
    """Keep an unverified request (verified=false, with why), bounded, and raise the endpoint's hourly alert."""
    async with db.transaction() as tx:
        receipt_id = await record(tx, _bounded(receipt, body), reject_reason=reason)
        await raise_alerts(tx, [unverified_alert(endpoint, reason, now)])
    log.warning("webhook.rejected", extra={"provider": receipt.provider, "kind": receipt.kind,
                                           "reason": reason, "receipt_id": receipt_id})  # fmt: skip


def bounded_payload(body: bytes) -> dict[str, Any]:
    """What an unverified request's body is kept as: its head, its size and its digest."""
    head = body[:KEPT_BODY_BYTES].decode("utf-8", errors="replace")  # NULs are replaced by ``record``
    return {"body_head": head, "body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}


def _bounded(receipt: Receipt, body: bytes) -> Receipt:
    def clip(value: str | None) -> str | None:
        return None if value is None else value[:KEPT_FIELD_CHARS]

    return replace(receipt, provider_message_id=clip(receipt.provider_message_id), status=clip(receipt.status),
                   error_code=clip(receipt.error_code), payload=bounded_payload(body))  # fmt: skip


async def apply(tx: Transaction, receipt: Receipt, *, email_fallback: bool) -> tuple[int, Sequence[Move]]:
    """Keep a verified delivery receipt and move its notifications forward; (receipt id, moves made).

    With no notification carrying its message id yet (the sender has not committed it), the
    receipt stays pending: the monitor applies it once one does. An SMS it reports undelivered
    is replaced by an email (``email_fallback``: the site's EMAIL_FALLBACK) whose send event is
    staged here; this function has no broker, so the monitor's outbox drain publishes it.
    """
    message_id = storable(receipt.provider_message_id)  # as kept: a forged id holding NUL matches nothing
    receipt_id = await record(tx, receipt, pending=message_id is not None)
    if not message_id:
        return receipt_id, ()
    return receipt_id, (await apply_pending(tx, receipt.provider, message_id, email_fallback=email_fallback)).moves


async def opt_out(tx: Transaction, number: str, source: str) -> None:
    await tx.run("webhook_opt_out_number", {"number": number, "source": source})


async def opt_in(tx: Transaction, number: str) -> None:
    await tx.run("webhook_opt_in_number", {"number": number})


async def suppress(tx: Transaction, addresses: Sequence[str], reason: str, detail: str) -> None:
    await tx.run("webhook_suppress_addresses", {"addresses": list(addresses), "reason": reason, "detail": detail})


def log_applied(receipt_id: int, receipt: Receipt, moves: Sequence[Move], *, blocked: int = 0) -> None:
    """Ids and statuses only; ``blocked``: numbers opted out or addresses suppressed (a warning)."""
    context = {"provider": receipt.provider, "kind": receipt.kind, "status": receipt.status, "receipt_id": receipt_id}
    for move in moves:  # an earlier receipt's too, when it waited for its notification
        log.info("receipt.applied", extra={**context, "status": move.receipt.status, "receipt_id": move.receipt.id,
                                           "notification_id": move.notification_id})  # fmt: skip
    if not moves:
        log.info("receipt.recorded", extra=context)  # a duplicate, a late status, or one awaiting its notification
    if blocked:
        log.warning("receipt.blocked_recipient", extra={**context, "count": blocked})
