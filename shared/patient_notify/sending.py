"""One provider call per notification, bracketed by durable state (DESIGN §5).

claim (queued → sending, after re-reading the appointment) · call the provider · record:
sent with the provider's id | queued again when the provider surely refused (retry) |
failed + alert when it never will | unknown + alert when we cannot tell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patient_notify.alerts import raise_alerts
from patient_notify.db import Database, Transaction
from patient_notify.delivery import ProviderAccepted
from patient_notify.domain.alerts import Alert
from patient_notify.domain.sending import SendCandidate, send_verdict
from patient_notify.errors import EventRejected, ProviderPermanent, ProviderRetryable
from patient_notify.redact import scrub

__all__ = ["Claimed", "deliver"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    channel: str
    recipient: str
    subject: str
    body: str


async def deliver(db: Database, notification_id: int, send: Callable[[Claimed], ProviderAccepted]) -> None:
    claimed = await _claim(db, notification_id)
    if claimed is None:
        return
    try:
        accepted = await asyncio.to_thread(send, claimed)
    except ProviderRetryable as exc:
        await _settle(db, claimed.id, "queued", error=_describe(exc))
        raise
    except ProviderPermanent as exc:
        await _settle(db, claimed.id, "failed", error=_describe(exc), alert="delivery_failed")
    except Exception as exc:  # noqa: BLE001 - the provider may have accepted it: never guess, never resend
        await _settle(db, claimed.id, "unknown", error=_describe(exc), alert="delivery_unknown")
    else:
        await _settle(db, claimed.id, "sent", provider=accepted.provider, provider_message_id=accepted.message_id)


async def _claim(db: Database, notification_id: int) -> Claimed | None:
    async with db.transaction() as tx:
        row = await tx.one("lock_notification_for_send", {"id": notification_id})
        if row is None:
            raise EventRejected(f"unknown notification {notification_id}")
        verdict = send_verdict(SendCandidate(
            row["status"], row["kind"], row["appointment_version"], row["appointment_status"],
            row["current_version"],
        ))  # fmt: skip
        extra = {"notification_id": notification_id, "status": row["status"], "reason": verdict.reason}
        if verdict.action == "done":
            log.info("send.duplicate", extra=extra)
            return None
        if verdict.action == "skip":
            await _move(tx, notification_id, "queued", "skipped", skip_reason=verdict.reason)
            log.info("send.skipped", extra=extra)
            return None
        await _move(tx, notification_id, "queued", "sending", attempt=1)
    return Claimed(row["id"], row["kind"], row["channel"], row["recipient"], row["subject"], row["body"])


async def _settle(
    db: Database, notification_id: int, to_status: str, *, alert: str | None = None, **fields: Any
) -> None:
    async with db.transaction() as tx:
        await _move(tx, notification_id, "sending", to_status, **fields)
        if alert:
            await raise_alerts(tx, [Alert(
                f"{alert}:{notification_id}", alert, "critical", str(notification_id),
                f"notification {notification_id} is {to_status}: {fields.get('error', '')}",
            )])  # fmt: skip
    level = logging.ERROR if alert else logging.INFO
    log.log(level, f"send.{to_status}", extra={"notification_id": notification_id, "status": to_status})


async def _move(tx: Transaction, notification_id: int, from_status: str, to_status: str, **fields: Any) -> None:
    params = {
        "id": notification_id, "from_status": from_status, "to_status": to_status, "attempt": 0,
        "provider": None, "provider_message_id": None, "error": None, "skip_reason": None, **fields,
    }  # fmt: skip
    await tx.run("move_notification", params)


def _describe(exc: Exception) -> str:
    """Provider errors quote the recipient ("The 'To' number +1... is not valid"): scrub it."""
    return scrub(f"{type(exc).__name__}: {exc}")[:500]
