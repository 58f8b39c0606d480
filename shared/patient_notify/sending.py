"""One provider call per notification, bracketed by durable state (DESIGN §5).

claim (queued → sending, after re-reading the appointment and the recipient's opt-out or
suppression) · ``send`` (the sender's: choose a provider, wait for its pacing turn, call it) ·
record: sent with the provider's id | queued again when the provider surely refused or no turn
came (retry) | failed + alert when it never will | unknown + alert when we cannot tell.

Senders take their pacing turn inside ``send``, after the claim and immediately before the call,
so nothing with a variable latency (the claim's transaction) lies between turn and provider to
bunch paced calls together; a claim then waits at most ``PACING_MAX_WAIT_S``, well under the
120 s after which an unsettled claim counts as stale. A sender that waited calls
``confirm_still_wanted`` after its turn: a cancellation, a change or an opt-out committed during
the wait then stops the call (``sending → skipped``), as it would have stopped the claim.

Opt-outs are atomic with the claim: the claim locks the notification, then takes the recipient's
advisory lock shared and only then reads ``sms_opt_outs`` / ``email_suppressions``; every opt-out
is written under the same lock, exclusive (migration 0006). An opt-out committed before the claim
is seen (``skipped``, reason ``opted out`` or ``suppressed``, no provider call); one arriving
during the claim waits for it. Locks are always taken notification first, recipient second.

A message that cannot reach its recipient (skipped for an opt-out, or refused for good) is handed
to the sender's ``Recover`` inside the transaction that records it; whatever it stages in the
outbox (an email fallback) is published after commit.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, cast

from patient_notify.alerts import raise_alerts
from patient_notify.db import Database, Transaction
from patient_notify.delivery import Claimed, ProviderAccepted, Recover, Recovered, Send, Unsendable
from patient_notify.domain.alerts import Alert
from patient_notify.domain.sending import SendCandidate, Verdict, send_verdict, still_wanted
from patient_notify.errors import DatabaseUnavailable, EventRejected, ProviderPermanent, ProviderRetryable
from patient_notify.outbox import Publisher
from patient_notify.redact import scrub

__all__ = ["Claimed", "NoLongerWanted", "Recover", "Recovered", "Send", "Unsendable", "confirm_still_wanted", "deliver"]

log = logging.getLogger(__name__)
Severity = Literal["warning", "critical"]
# Recording a provider's acceptance: up to 3 tries, 0.5 s then 1 s apart, while the failures are
# blips (within SETTLE_BLIP_S of the first try).
SETTLE_TRIES, SETTLE_BACKOFF_S, SETTLE_BLIP_S = 3, 0.5, 2.0


async def deliver(
    db: Database, notification_id: int, send: Send, *, recover: Recover | None = None,
    publisher: Publisher | None = None,
) -> None:  # fmt: skip
    """At most one ``send`` per claim; raises ``ProviderRetryable`` (a 503) when it surely did not send."""
    claimed, staged = await _claim(db, notification_id, recover)
    if claimed is not None:
        staged = await _call(db, claimed, send, recover)
    if staged and publisher is not None:
        await publisher.publish(staged)  # unpublished rows are re-sent by the outbox drain


class NoLongerWanted(Exception):
    """A claimed message that must not be sent after all (raised from ``send``; recorded as skipped)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


async def confirm_still_wanted(db: Database, claimed: Claimed) -> None:
    """Re-read the appointment and the recipient's opt-out or suppression (under the same locks as
    the claim) after a wait inside ``send``; raises ``NoLongerWanted`` when the call must not happen."""
    async with db.transaction() as tx:
        row = await tx.one("lock_notification_for_send", {"id": claimed.id})
        verdict = still_wanted(_candidate(row, await _blocked(tx, row))) if row else Verdict("send")
    if verdict.action == "skip":
        raise NoLongerWanted(verdict)


async def _claim(db: Database, notification_id: int, recover: Recover | None) -> tuple[Claimed | None, Sequence[int]]:
    async with db.transaction() as tx:
        row = await tx.one("lock_notification_for_send", {"id": notification_id})
        if row is None:
            raise EventRejected(f"unknown notification {notification_id}")
        verdict = send_verdict(_candidate(row, await _blocked(tx, row) if row["status"] == "queued" else None))
        if verdict.action == "send":
            await _move(tx, notification_id, "queued", "sending", attempt=1)
            return Claimed(row["id"], row["kind"], row["channel"], row["recipient"], row["subject"], row["body"]), ()
        recovered = await _record_no_send(tx, row, verdict, recover)
    return None, recovered.outbox_ids


def _candidate(row: Mapping[str, Any], blocked: str | None) -> SendCandidate:
    return SendCandidate(
        row["status"], row["kind"], row["appointment_version"], row["appointment_status"], row["current_version"],
        row["status_age_s"], blocked, row["appointment_started"],
    )  # fmt: skip


async def _blocked(tx: Transaction, row: Mapping[str, Any]) -> str | None:
    """The recipient's opt-out or suppression, read under its lock (see the module docstring)."""
    recipient = {"channel": row["channel"], "recipient": row["recipient"]}
    await tx.one("sender_lock_recipient", recipient)
    found = await tx.one("sender_recipient_blocked", recipient)
    return None if found is None else str(found["reason"])


async def _record_no_send(
    tx: Transaction, row: Mapping[str, Any], verdict: Verdict, recover: Recover | None
) -> Recovered:
    notification_id, recovered = row["id"], Recovered()
    if verdict.action == "skip":
        await _move(tx, notification_id, "queued", "skipped", skip_reason=verdict.reason)
        if verdict.blocked and recover is not None:
            recovered = await recover(tx, unsendable=Unsendable(notification_id, row["channel"], row["recipient"]))
    elif verdict.action == "stale":
        await _move(tx, notification_id, "sending", "unknown", error=verdict.reason)
    if verdict.alert:
        await raise_alerts(tx, [_alert(verdict.alert, notification_id, verdict.reason)])
    extra = {"notification_id": notification_id, "status": row["status"], "reason": verdict.reason}
    log.log(logging.WARNING if verdict.alert else logging.INFO, f"send.{verdict.action}", extra=extra)
    return recovered


async def _call(db: Database, claimed: Claimed, send: Send, recover: Recover | None) -> Sequence[int]:
    try:
        accepted = await _invoke(send, claimed)
    except NoLongerWanted as exc:  # re-read after the pacing wait: surely not sent
        verdict = exc.verdict
        skipped = Unsendable(claimed.id, claimed.channel, claimed.recipient)
        then = functools.partial(recover, unsendable=skipped) if verdict.blocked and recover is not None else None
        return await _settle(db, claimed, "skipped", alert=verdict.alert, then=then, skip_reason=verdict.reason)
    except ProviderRetryable as exc:  # the provider's refusal, or no pacing turn: surely not sent
        await _settle(db, claimed, "queued", error=_describe(exc))
        raise
    except ProviderPermanent as exc:
        lost = Unsendable(claimed.id, claimed.channel, claimed.recipient, exc)
        then = None if recover is None else functools.partial(recover, unsendable=lost)
        return await _settle(db, claimed, "failed", error=_describe(exc), alert="delivery_failed", then=then)
    except BaseException as exc:  # the provider may have accepted it: never guess, never resend blindly
        # Cancellation included: record the uncertainty even while the task is being torn down.
        await asyncio.shield(_settle(db, claimed, "unknown", error=_describe(exc), alert="delivery_unknown"))
        if not isinstance(exc, Exception):
            raise
        return ()
    await _record_sent(db, claimed, accepted)
    return ()


async def _record_sent(db: Database, claimed: Claimed, accepted: ProviderAccepted) -> None:
    """The provider has the message: a database blip must not lose its id (receipts match by it).

    Retried briefly after a fast failure (a dropped connection; the move is conditional on
    ``sending``, so a second try changes nothing twice), not after one that took the pool's whole
    timeout (the database is away: more tries would only outlast the Trigger's timeout). Then the
    id is logged for the operator and the claim goes stale: the monitor marks it ``unknown`` with
    an alert, and it is never sent again.
    """
    began = time.monotonic()
    for attempt in range(1, SETTLE_TRIES + 1):
        try:
            await _settle(db, claimed, "sent", provider=accepted.provider, provider_message_id=accepted.message_id)
            return
        except DatabaseUnavailable:
            if attempt == SETTLE_TRIES or time.monotonic() - began > SETTLE_BLIP_S:
                log.error("send.unrecorded", extra={  # the type, never the text: it may quote values
                    "notification_id": claimed.id, "provider": accepted.provider,
                    "provider_message_id": accepted.message_id, "error_type": "DatabaseUnavailable",
                })  # fmt: skip
                raise
            await asyncio.sleep(SETTLE_BACKOFF_S * 2 ** (attempt - 1))


async def _invoke(send: Send, claimed: Claimed) -> ProviderAccepted:
    if inspect.iscoroutinefunction(send):
        return await cast(Callable[[Claimed], Awaitable[ProviderAccepted]], send)(claimed)
    return await asyncio.to_thread(cast(Callable[[Claimed], ProviderAccepted], send), claimed)


async def _settle(
    db: Database, claimed: Claimed, to_status: str, *, alert: str | None = None,
    then: Callable[[Transaction], Awaitable[Recovered]] | None = None, **fields: Any,
) -> Sequence[int]:  # fmt: skip
    """Record the call's outcome (and ``then`` in the same transaction); if the row moved
    meanwhile, keep the outcome in an alert."""
    recovered = Recovered()
    async with db.transaction() as tx:
        moved = await _move(tx, claimed.id, "sending", to_status, **fields)
        if not moved:
            alert = "delivery_conflict"
            fields["error"] = f"outcome {to_status} arrived after the status changed; {fields}"
        elif then is not None:
            recovered = await then(tx)
        if alert:
            why = fields.get("error") or fields.get("skip_reason") or ""
            detail = f"{to_status}: {why}" + (f"; {recovered.note}" if recovered.note else "")
            # Still alerted when an email took over: the number on file is wrong or opted out.
            severity: Severity = "warning" if recovered.covered else "critical"
            await raise_alerts(tx, [_alert(alert, claimed.id, detail, severity)])
    level = logging.ERROR if alert else logging.INFO
    log.log(level, f"send.{to_status}", extra={"notification_id": claimed.id, "status": to_status})
    return recovered.outbox_ids


async def _move(tx: Transaction, notification_id: int, from_status: str, to_status: str, **fields: Any) -> bool:
    params = {
        "id": notification_id, "from_status": from_status, "to_status": to_status, "attempt": 0,
        "provider": None, "provider_message_id": None, "error": None, "skip_reason": None, **fields,
    }  # fmt: skip
    return await tx.run("move_notification", params) == 1


def _alert(kind: str, notification_id: int, detail: str, severity: Severity = "critical") -> Alert:
    return Alert(f"{kind}:{notification_id}", kind, severity, str(notification_id), scrub(detail)[:500])


def _describe(exc: BaseException) -> str:
    """Provider errors quote the recipient ("The 'To' number +1... is not valid"): scrub it."""
    return scrub(f"{type(exc).__name__}: {exc}")[:500]
