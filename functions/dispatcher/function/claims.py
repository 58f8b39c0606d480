"""Claiming notifications exactly once, and the send events for the ones this call created."""

from __future__ import annotations

from collections.abc import Sequence

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from patient_notify.codec import new_event
from patient_notify.db import Transaction
from patient_notify.domain.dispatch import DispatchDecision
from patient_notify.events import send_request

SOURCE = "/patient-notify/dispatcher"


async def seen_before(tx: Transaction, event: BaseCloudEvent, outcome: str | None = None) -> bool:
    """Record the inbound event; True if it was recorded before (a redelivery)."""
    params = {"source": event.get_source(), "id": event.get_id(), "type": event.get_type(), "outcome": outcome}
    return await tx.one("record_processed_event", params) is None


async def claim_and_stage(tx: Transaction, decision: DispatchDecision) -> Sequence[CloudEvent]:
    """Insert the intents; send events for the rows this call created and nobody holds."""
    n = decision.notifications
    claimed = await tx.all("claim_notifications", {
        "natural_keys": [i.natural_key for i in n], "appointment_ids": [i.appointment_id for i in n],
        "appointment_versions": [i.appointment_version for i in n], "kinds": [i.kind for i in n],
        "channels": [i.channel for i in n], "recipients": [i.recipient for i in n],
        "languages": [i.language for i in n], "subjects": [i.subject for i in n],
        "bodies": [i.body for i in n], "hold_until": [i.hold_until for i in n],
    })  # fmt: skip
    return [
        send_event(row["id"], row["appointment_id"], row["channel"]) for row in claimed if row["hold_until"] is None
    ]


def send_event(notification_id: int, appointment_id: str, channel: str) -> CloudEvent:
    return new_event(
        send_request(notification_id, appointment_id, channel), source=SOURCE, subject=str(notification_id)
    )
