"""The transactional outbox: events are written with the state change, then published.

``stage`` writes events in the caller's transaction. ``Publisher.publish`` POSTs committed rows
to the broker ingress as binary CloudEvents; only a 2xx counts. Rows left unpublished (ingress
down, crash between commit and POST, a writer that stopped early to answer in time) are re-sent by
``Publisher.drain``.

Whoever sends a row holds a lease on it first (``publish`` as much as ``drain``), so a writer still
sending its rows and a drain that finds them old enough never both send one; the only repeat is
the one at-least-once allows: a sender that dies between the POST and recording it, whose lease
then runs out.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from patient_notify.codec import encode_binary
from patient_notify.db import Database, Transaction

__all__ = ["DRAIN_MIN_AGE_S", "LEASE_S", "PublishReport", "Publisher", "stage"]

log = logging.getLogger(__name__)
_CORE = ("id", "source", "type", "subject", "specversion", "time", "datacontenttype")
LEASE_S = 300.0  # how long a sender holds rows: longer than a batch takes to POST at the HTTP timeouts
DRAIN_MIN_AGE_S = 30.0  # a row younger than this is still with the writer that staged it


async def stage(tx: Transaction, events: Sequence[BaseCloudEvent]) -> list[int]:
    """Write events to the outbox in the caller's transaction; returns their outbox ids."""
    if not events:
        return []
    # One JSON document for the whole batch: converting per-column arrays cost more than the insert.
    rows = await tx.all("stage_outbox", {"events": json.dumps([{
        "event_id": e.get_id(), "type": e.get_type(), "source": e.get_source(), "subject": e.get_subject(),
        "extensions": _extensions(e), "data": e.get_data(),
    } for e in events])})  # fmt: skip
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class PublishReport:
    published: int
    failed: int
    last_id: int = 0  # the highest row id posted (0: none), where a drain that continues resumes


class Publisher:
    def __init__(self, db: Database, ingress_url: str, client: httpx.AsyncClient, concurrency: int = 32) -> None:
        self._db = db
        self._url = ingress_url
        self._client = client
        self._limit = asyncio.Semaphore(concurrency)

    async def publish(self, ids: Sequence[int]) -> PublishReport:
        if not ids:
            return PublishReport(0, 0)
        async with self._db.transaction() as tx:
            rows = await tx.all("lease_outbox_rows", {"ids": list(ids), "lease_s": LEASE_S})
        return await self._send_and_record(rows)

    async def drain(
        self, *, limit: int = 1000, min_age_s: float = DRAIN_MIN_AGE_S, lease_s: float = LEASE_S, after_id: int = 0
    ) -> PublishReport:
        """Re-send rows nobody published (rows younger than ``min_age_s`` are still with their writer),
        oldest first, from the row after ``after_id`` (a drain in chunks passes each chunk's ``last_id``,
        so a row the ingress refused is not posted again in the same pass).

        The rows are leased for ``lease_s``, so an overlapping drain does not send them too.
        """
        async with self._db.transaction() as tx:
            params = {"limit": limit, "min_age_s": min_age_s, "lease_s": lease_s, "after_id": after_id}
            rows = await tx.all("lease_unpublished_outbox", params)
        return await self._send_and_record(rows)

    async def _send_and_record(self, rows: Sequence[dict[str, Any]]) -> PublishReport:
        if not rows:
            return PublishReport(0, 0)
        results = await asyncio.gather(*(self._post(row) for row in rows))
        ok = [row["id"] for row, error in zip(rows, results, strict=True) if error is None]
        failed = [(row["id"], error) for row, error in zip(rows, results, strict=True) if error]
        async with self._db.transaction() as tx:  # each statement only when it has rows: a round trip saved
            if ok:
                await tx.run("mark_outbox_published", {"ids": ok})
            if failed:
                await tx.run("mark_outbox_failed", {"ids": [i for i, _ in failed], "errors": [e for _, e in failed]})
        if failed:
            log.warning("outbox.publish_failed", extra={"failed": len(failed), "published": len(ok)})
        return PublishReport(len(ok), len(failed), max(row["id"] for row in rows))

    async def _post(self, row: dict[str, Any]) -> str | None:
        """None when the ingress answered 2xx, else why not (kept on the row)."""
        try:
            headers, body = encode_binary(_event_from_row(row))
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the others being recorded
            return f"unencodable: {type(exc).__name__}"
        async with self._limit:
            try:
                response = await self._client.post(self._url, headers=headers, content=body)
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__}: {exc}"[:500]
        return None if response.is_success else f"HTTP {response.status_code}"


def _extensions(event: BaseCloudEvent) -> dict[str, Any]:
    return {k: v for k, v in event.get_attributes().items() if k not in _CORE}


def _event_from_row(row: dict[str, Any]) -> CloudEvent:
    attributes = {
        "id": row["event_id"], "source": row["source"], "type": row["type"], "specversion": "1.0",
        "time": row["created_at"], "datacontenttype": "application/json", **row["extensions"],
    }  # fmt: skip
    if row["subject"]:
        attributes["subject"] = row["subject"]
    return CloudEvent(attributes=attributes, data=row["data"])
