"""Applying verified delivery receipts: the one implementation the webhooks and the monitor share.

A delivery receipt is recorded ``pending`` (``provider_receipts.match_state``, migration 0008),
then ``apply_pending`` applies it, in the same transaction, with every other receipt of its
message not applied yet: the message's notifications are locked, its unapplied receipts locked
in the order received, their moves planned (``domain.receipt_moves``: forward only), made, and
the receipts marked ``matched``. A failure alerts (``delivery_failed``), and an SMS a receipt
reports ``failed`` or ``undelivered`` is replaced by one email in the same transaction
(``patient_notify.fallback``, when the patient allows it): its send event is staged, for the
caller to publish after commit, or for the monitor's outbox drain.

Twilio may call back within milliseconds of accepting a message, before the sender has committed
the sid its API call returned. Such a receipt finds no notification: nothing is locked, and it
stays pending. The monitor's next tick applies it through this same function once the
notification carries the id; the next receipt of the message would too, in the order received.

Locks are taken notifications first, receipts second, on every path, so two never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass

from patient_notify.alerts import raise_alerts
from patient_notify.db import Transaction
from patient_notify.domain.receipt_moves import Move, StoredReceipt, failure_alerts, plan_moves
from patient_notify.fallback import fallback_to_email

__all__ = ["Applied", "Move", "apply_pending"]

_SMS_PROVIDERS = frozenset({"twilio"})  # receipts about SMS: a failure may fall back to email


@dataclass(frozen=True)
class Applied:
    moves: tuple[Move, ...] = ()  # none: a duplicate, a late status, or no notification carries the id yet
    outbox_ids: tuple[int, ...] = ()  # email fallbacks' send events, staged: publish after commit


async def apply_pending(tx: Transaction, provider: str, message_id: str, *, email_fallback: bool) -> Applied:
    """Apply the message's pending receipts to its notifications, and fall back to email where one failed.

    ``email_fallback``: the site's EMAIL_FALLBACK, whether an SMS-only patient may be emailed.
    """
    key = {"provider": provider, "provider_message_id": message_id}
    notifications = await tx.all("receipt_lock_notifications", key)
    if not notifications:
        return Applied()
    rows = await tx.all("receipt_lock_pending", key)
    received = {int(r["id"]): r["received_at"] for r in rows}
    receipts = [StoredReceipt(int(r["id"]), r["provider"], r["status"] or "", r["error_code"]) for r in rows]
    made = []
    for move in plan_moves({int(n["id"]): n["status"] for n in notifications}, receipts):
        if await tx.run("receipt_advance_notification", {
            "id": move.notification_id, "from_status": move.from_status, "to_status": move.to_status,
            "error": move.error, "received_at": received[move.receipt.id],
        }) == 1:  # fmt: skip
            made.append(move)
    await tx.run("receipt_mark_matched", {"ids": list(received)})
    await raise_alerts(tx, failure_alerts(made))
    outbox_ids: list[int] = []
    for move in made:
        if move.failed and move.receipt.provider in _SMS_PROVIDERS:
            fallback = await fallback_to_email(tx, move.notification_id, email_fallback=email_fallback)
            outbox_ids.extend(fallback.outbox_ids)
    return Applied(tuple(made), tuple(outbox_ids))
