"""Raising and resolving alerts: set-based, one row per incident (``dedup_key``).

An alert is *open* while ``resolved_at`` is NULL. Raising an open one again counts it
(``last_seen_at``, ``occurrences``) and never opens a second row, so a redelivered event never
raises the same alert twice; raising a resolved one re-opens it (and clears ``acknowledged_at``:
it is news again). Resolving is by key, or by kind for conditions evaluated as a whole each time
("every open alert of this kind except these keys").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from patient_notify.db import Transaction
from patient_notify.domain.alerts import Alert

__all__ = ["Alert", "raise_alerts", "resolve_alerts", "resolve_alerts_of_kind"]


async def raise_alerts(tx: Transaction, alerts: Sequence[Alert]) -> None:
    if alerts:
        await tx.run("raise_alerts", {
            "dedup_keys": [a.dedup_key for a in alerts], "kinds": [a.kind for a in alerts],
            "severities": [a.severity for a in alerts], "subjects": [a.subject for a in alerts],
            "details": [a.detail for a in alerts],
        })  # fmt: skip


async def resolve_alerts(tx: Transaction, keys: Iterable[str]) -> int:
    """Resolve the open alerts with these keys; returns how many were open."""
    keys = list(keys)
    return await tx.run("monitor_resolve_alerts", {"keys": keys}) if keys else 0


async def resolve_alerts_of_kind(tx: Transaction, kind: str, keep: Iterable[str]) -> int:
    """Resolve every open alert of ``kind`` whose key is not in ``keep`` (the condition cleared)."""
    return await tx.run("monitor_resolve_alerts_of_kind", {"kind": kind, "keep": list(keep)})
