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
from patient_notify.domain.sending import SendCandidate, Verdict, send_verdict
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
    except BaseException as exc:  # the provider may have accepted it: never guess, never resend blindly
        # Cancellation included: record the uncertainty even while the task is being torn down.
        await asyncio.shield(_settle(db, claimed.id, "unknown", error=_describe(exc), alert="delivery_unknown"))
        if not isinstance(exc, Exception):
            raise
    else:
        await _settle(db, claimed.id, "sent", provider=accepted.provider, provider_message_id=accepted.message_id)


async def _claim(db: Database, notification_id: int) -> Claimed | None:
    async with db.transaction() as tx:
        row = await tx.one("lock_notification_for_send", {"id": notification_id})
        if row is None:
            raise EventRejected(f"unknown notification {notification_id}")
        verdict = send_verdict(SendCandidate(
            row["status"], row["kind"], row["appointment_version"], row["appointment_status"],
            row["current_version"], row["status_age_s"],
        ))  # fmt: skip
        if verdict.action == "send":
            await _move(tx, notification_id, "queued", "sending", attempt=1)
            return Claimed(row["id"], row["kind"], row["channel"], row["recipient"], row["subject"], row["body"])
        await _record_no_send(tx, notification_id, row["status"], verdict)
    return None


async def _record_no_send(tx: Transaction, notification_id: int, status: str, verdict: Verdict) -> None:
    if verdict.action == "skip":
        await _move(tx, notification_id, "queued", "skipped", skip_reason=verdict.reason)
    elif verdict.action == "stale":
        await _move(tx, notification_id, "sending", "unknown", error=verdict.reason)
    if verdict.alert:
        await raise_alerts(tx, [_alert(verdict.alert, notification_id, verdict.reason)])
    extra = {"notification_id": notification_id, "status": status, "reason": verdict.reason}
    log.log(logging.WARNING if verdict.alert else logging.INFO, f"send.{verdict.action}", extra=extra)


async def _settle(
    db: Database, notification_id: int, to_status: str, *, alert: str | None = None, **fields: Any
) -> None:
    """Record the call's outcome; if the row moved meanwhile, keep the outcome in an alert."""
    async with db.transaction() as tx:
        moved = await _move(tx, notification_id, "sending", to_status, **fields)
        if not moved:
            alert = "delivery_conflict"
            fields["error"] = f"outcome {to_status} arrived after the status changed; {fields}"
        if alert:
            await raise_alerts(tx, [_alert(alert, notification_id, f"{to_status}: {fields.get('error', '')}")])
    level = logging.ERROR if alert else logging.INFO
    log.log(level, f"send.{to_status}", extra={"notification_id": notification_id, "status": to_status})


async def _move(tx: Transaction, notification_id: int, from_status: str, to_status: str, **fields: Any) -> bool:
    params = {
        "id": notification_id, "from_status": from_status, "to_status": to_status, "attempt": 0,
        "provider": None, "provider_message_id": None, "error": None, "skip_reason": None, **fields,
    }  # fmt: skip
    return await tx.run("move_notification", params) == 1


def _alert(kind: str, notification_id: int, detail: str) -> Alert:
    return Alert(f"{kind}:{notification_id}", kind, "critical", str(notification_id), scrub(detail)[:500])


def _describe(exc: BaseException) -> str:
    """Provider errors quote the recipient ("The 'To' number +1... is not valid"): scrub it."""
    return scrub(f"{type(exc).__name__}: {exc}")[:500]
