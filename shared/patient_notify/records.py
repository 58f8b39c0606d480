"""Keeping what we could not act on: rejected requests and dead letters, each with an alert."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudevents.core.base import BaseCloudEvent

from patient_notify.alerts import Alert, raise_alerts
from patient_notify.errors import DatabaseError, EventRejected

if TYPE_CHECKING:
    from patient_notify.function import Runtime

__all__ = ["record_dead_letter", "record_rejected", "storable"]

log = logging.getLogger(__name__)
_KEPT_HEADERS = ("content-type", "ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time")


async def record_rejected(
    runtime: Runtime,
    rejected: EventRejected,
    event: BaseCloudEvent | None,
    headers: Mapping[str, str],
    body: bytes,
) -> None:
    async with runtime.db.transaction() as tx:
        reason = storable(rejected.reason)
        row = await tx.one("record_rejected_event", {
            "receiver": runtime.name, "reason": reason,
            "event_source": storable(event.get_source() if event else headers.get("ce-source")),
            "event_id": storable(event.get_id() if event else headers.get("ce-id")),
            "event_type": storable(rejected.event_type or headers.get("ce-type")),
            "headers": json.dumps({k: storable(v) for k, v in headers.items() if k in _KEPT_HEADERS}),
            "body": body,
        })  # fmt: skip
        if row is None:
            raise DatabaseError("record_rejected_event returned no row")
        await raise_alerts(tx, [Alert(
            f"rejected:{row['id']}", "event_rejected", "warning", str(row["id"]),
            f"{runtime.name} rejected an event: {reason}"[:500],
        )])  # fmt: skip
    # The reason can quote the request; the log gets its category, the row keeps it whole.
    log.warning("event.rejected", extra={"function": runtime.name, "reason": rejected.reason.split(":")[0]})


def storable(value: Any) -> Any:
    """``value`` with every NUL replaced: PostgreSQL text and jsonb cannot hold one, and a request
    quoting one (a forged callback, a fuzzed event) must still be kept."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


async def record_dead_letter(runtime: Runtime, event: BaseCloudEvent) -> None:
    data = event.get_data()
    async with runtime.db.transaction() as tx:
        row = await tx.one("record_dead_letter", {
            "event_source": event.get_source(), "event_id": event.get_id(),
            "event_type": event.get_type(),
            "error_dest": str(event.get_extension("knativeerrordest")),
            "error_code": str(event.get_extension("knativeerrorcode") or ""),
            "data": json.dumps(data) if isinstance(data, dict) else None,
        })  # fmt: skip
        if row is not None:
            await raise_alerts(tx, [Alert(
                f"dead-letter:{event.get_source()}:{event.get_id()}", "dead_letter", "critical",
                event.get_id(), f"{event.get_type()} was dead-lettered",
            )])  # fmt: skip
    log.error("event.dead_lettered", extra={"function": runtime.name, "event_type": event.get_type()})
