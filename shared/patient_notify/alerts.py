"""Raising alerts: set-based, idempotent (a duplicate event never raises the same alert twice)."""

from __future__ import annotations

from collections.abc import Sequence

from patient_notify.db import Transaction
from patient_notify.domain.alerts import Alert

__all__ = ["Alert", "raise_alerts"]


async def raise_alerts(tx: Transaction, alerts: Sequence[Alert]) -> None:
    if alerts:
        await tx.run("raise_alerts", {
            "dedup_keys": [a.dedup_key for a in alerts], "kinds": [a.kind for a in alerts],
            "severities": [a.severity for a in alerts], "subjects": [a.subject for a in alerts],
            "details": [a.detail for a in alerts],
        })  # fmt: skip
