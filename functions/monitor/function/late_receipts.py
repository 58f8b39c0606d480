"""Receipts that beat the provider id: applied on the tick once their notification carries it.

Twilio may post ``sent`` and ``delivered`` within milliseconds of accepting a message, before the
sender has committed the sid its API call returned, and never posts them again. The webhooks keep
such a receipt pending; each tick applies the pending receipts of every message whose
notification now carries the id, through ``patient_notify.receipts`` (the webhooks' own code:
forward only, in the order received). A receipt still matching nothing after the grace period is
given up on once, with one alert per provider; it is still applied should its notification turn up.
An SMS such a receipt reports undelivered falls back to email as on the webhooks' path: the send
events are staged here and published by the caller after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from patient_notify.alerts import raise_alerts
from patient_notify.db import Database
from patient_notify.domain.monitoring import unmatched_receipt_alerts
from patient_notify.receipts import apply_pending

from .checks import Limits

__all__ = ["LateReceipts", "apply_late_receipts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LateReceipts:
    messages: int  # messages whose waiting receipts were applied
    moved: int  # status moves they made
    orphaned: int  # receipts given up on this tick (alerted)
    outbox_ids: tuple[int, ...] = ()  # email fallbacks' send events, staged: publish after commit


async def apply_late_receipts(db: Database, now: datetime, limits: Limits, *, email_fallback: bool) -> LateReceipts:
    params = limits.params(now)
    moved, outbox_ids = 0, list[int]()
    async with db.transaction() as tx:
        messages = await tx.all("monitor_receipts_to_apply", params)
        for message in messages:
            applied = await apply_pending(tx, message["provider"], message["provider_message_id"],
                                          email_fallback=email_fallback)  # fmt: skip
            moved += len(applied.moves)
            outbox_ids.extend(applied.outbox_ids)
        orphaned = await tx.all("monitor_orphan_receipts", params)
        await raise_alerts(tx, unmatched_receipt_alerts(orphaned, limits.receipt_match_grace))
    result = LateReceipts(len(messages), moved, len(orphaned), tuple(outbox_ids))
    if result.messages:
        log.info("receipts.applied_late", extra={"count": result.messages, "applied": result.moved})
    if result.orphaned:
        log.warning("receipts.unmatched", extra={"count": result.orphaned})
    return result
