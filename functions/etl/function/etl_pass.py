"""One ETL pass: page by page, each page landed in one transaction with its checkpoint.

A page's records, the change events they cause, the quarantined records and the run's
checkpoint (the next page's URL) commit together, so a pass that fails resumes at the page it
could not land, and nothing lands twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from patient_notify.alerts import raise_alerts
from patient_notify.catalog import save_batch
from patient_notify.changelog import record_changes
from patient_notify.codec import new_event
from patient_notify.db import Database, Transaction
from patient_notify.domain.alerts import Alert
from patient_notify.domain.changes import changes_in
from patient_notify.errors import PatientNotifyError
from patient_notify.outbox import Publisher, stage

from .mapping import MappedPage, PageMalformed
from .resilience import SourceClient, SourceUnavailable
from .runs import PassReport, plan_pass

__all__ = ["EtlPass", "LeaseLost", "PassSettings", "SourceSpec"]

log = logging.getLogger(__name__)
SOURCE = "/patient-notify/etl"
_MALFORMED_TRIES = 3


class LeaseLost(PatientNotifyError):
    """Another pass took this run over (this one outlived its lease): stop without writing."""


@dataclass(frozen=True)
class SourceSpec:
    name: str  # "fhir:<base url>": the ledger's key
    first_url: Callable[[datetime, datetime, datetime | None, int], str]
    map_page: Callable[[bytes], MappedPage]


@dataclass(frozen=True)
class PassSettings:
    horizon: timedelta = timedelta(days=14)
    lookback: timedelta = timedelta(minutes=10)
    full_every: timedelta = timedelta(hours=24)
    page_size: int = 500
    lease: timedelta = timedelta(minutes=10)  # longer than one page can take with every retry
    max_resumes: int = 5  # a checkpoint failing this often is abandoned for a fresh pass
    max_resume_age: timedelta = timedelta(hours=6)


class EtlPass:
    def __init__(
        self, db: Database, client: SourceClient, source: SourceSpec, settings: PassSettings,
        publisher: Publisher | None,
    ) -> None:  # fmt: skip
        self._db, self._client, self._source, self._settings = db, client, source, settings
        self._publisher = publisher
        self._counted = (0, 0)  # the client's (requests, retries) already written to the ledger

    async def run(self, now: datetime | None = None) -> PassReport:
        started = time.monotonic()
        run = await self._begin(now or datetime.now(UTC))
        if run is None:
            return PassReport(run_id=0, mode="-", status="busy")
        report = PassReport(run_id=run["id"], mode=run["mode"], resumed=run["resumes"] > 0)
        try:
            await self._pages(run)
            await self._finish(run)
            report.status = "succeeded"
        except LeaseLost:
            report.status, report.error = "superseded", "another pass took over this run"
        except SourceUnavailable as exc:
            await self._fail(run, exc.reason)
            report.status, report.error = "failed", exc.reason
        except Exception as exc:  # a bug or the database: recorded and alerted, then raised (5xx)
            await self._fail(run, f"{type(exc).__name__} while running the pass")
            raise
        report.duration_s = time.monotonic() - started
        report.counts = await self._counts(run["id"])
        log.log(logging.INFO if report.status == "succeeded" else logging.ERROR, f"etl.{report.status}",
                extra={"count": report.counts.get("upserted", 0), "reason": report.error})  # fmt: skip
        return report

    async def _begin(self, now: datetime) -> dict[str, Any] | None:
        """Resume the last unfinished pass, or plan a new one; None when another pass holds the lease."""
        name, lease_s = self._source.name, self._settings.lease.total_seconds()
        async with self._db.transaction() as tx:
            await tx.run("lock_etl_source", {"source": name})
            if await tx.one("live_etl_run", {"source": name}):
                return None
            s = self._settings
            resumed = await tx.one("resume_etl_run", {
                "source": name, "lease_s": lease_s, "max_resumes": s.max_resumes,
                "max_age_s": s.max_resume_age.total_seconds(),
            })  # fmt: skip
            if resumed:
                return dict(resumed)
            plan = plan_pass(await tx.one("etl_history", {"source": name}), now,
                             horizon=s.horizon, lookback=s.lookback, full_every=s.full_every)  # fmt: skip
            first = self._source.first_url(plan.window_start, plan.window_end, plan.since, s.page_size)
            await tx.run("supersede_etl_runs", {"source": name})
            row = await tx.one("start_etl_run", {
                "source": name, "mode": plan.mode, "window_start": plan.window_start,
                "window_end": plan.window_end, "since": plan.since, "next_url": first, "lease_s": lease_s,
            })  # fmt: skip
        assert row is not None  # INSERT … RETURNING always returns the row
        return dict(row)

    async def _pages(self, run: dict[str, Any]) -> None:
        url: str | None = run["next_url"]
        while url:
            page = await self._fetch(url)
            ids = await self._land(run, page)
            if self._publisher is not None:
                await self._publisher.publish(ids)
            url = page.next_url

    async def _fetch(self, url: str) -> MappedPage:
        """A page that will not parse is kept and fetched again; a source that keeps sending it fails the pass."""
        for attempt in range(1, _MALFORMED_TRIES + 1):
            body = await self._client.get(url)
            try:
                return self._source.map_page(body)
            except PageMalformed as exc:
                async with self._db.transaction() as tx:
                    await _quarantine(tx, self._source.name, url, exc.reason, body.decode("utf-8", "replace"))
                if attempt == _MALFORMED_TRIES:
                    raise SourceUnavailable(f"page malformed {attempt} times: {exc.reason}") from exc
        raise AssertionError("unreachable")

    def _uncounted(self) -> tuple[int, int]:
        requests, retries = self._client.requests, self._client.retries
        delta = (requests - self._counted[0], retries - self._counted[1])
        self._counted = (requests, retries)
        return delta

    async def _land(self, run: dict[str, Any], page: MappedPage) -> list[int]:
        requests, retries = self._uncounted()
        async with self._db.transaction() as tx:
            rows = await save_batch(tx, page.batch, seen_at=run["started_at"])
            changes = changes_in(rows, detected_by="etl")
            await record_changes(tx, changes)
            ids = await stage(tx, [new_event(c, source=SOURCE, subject=c.appointment_id) for c in changes])
            for bad in page.quarantined:
                await _quarantine(tx, self._source.name, bad.source_id, bad.reason, bad.raw)
            advanced = await tx.one("advance_etl_run", {
                "id": run["id"], "epoch": run["resumes"], "next_url": page.next_url, "fetched": page.fetched,
                "upserted": len(rows), "changed": len(changes), "rejected": len(page.quarantined),
                "requests": requests, "retries": retries, "lease_s": self._settings.lease.total_seconds(),
            })  # fmt: skip
            if advanced is None:
                raise LeaseLost  # rolls this page back: the pass holding the lease lands it
        return ids

    async def _finish(self, run: dict[str, Any]) -> None:
        async with self._db.transaction() as tx:
            missing: list[Any] = []
            if run["mode"] == "full":
                missing = await tx.all("mark_missing_appointments", {
                    "now": datetime.now(UTC), "window_start": run["window_start"],
                    "window_end": run["window_end"], "seen_before": run["started_at"],
                })  # fmt: skip
            fence = {"id": run["id"], "epoch": run["resumes"]}
            row = await tx.one(
                "finish_etl_run", {**fence, "status": "succeeded", "missing": len(missing), "error": None}
            )
            if row is None:
                raise LeaseLost  # rolls back the missing marks too
            await raise_alerts(tx, _pass_alerts(run["id"], row, len(missing)))

    async def _fail(self, run: dict[str, Any], reason: str) -> None:
        requests, retries = self._uncounted()
        async with self._db.transaction() as tx:
            fence = {"id": run["id"], "epoch": run["resumes"]}
            await tx.run("count_etl_requests", {**fence, "requests": requests, "retries": retries})
            if await tx.one("finish_etl_run", {**fence, "status": "failed", "missing": 0, "error": reason}) is None:
                return  # another pass holds the run now: its outcome is the one to report
            detail = f"{self._source.name}: {reason}; the next pass resumes from its checkpoint"
            key = f"etl-failed:{run['id']}:{run['resumes']}"  # each failed attempt at the run is seen
            alert = Alert(key, "etl_pass_failed", "critical", str(run["id"]), detail)
            await raise_alerts(tx, [alert])

    async def _counts(self, run_id: int) -> dict[str, int]:
        async with self._db.transaction() as tx:
            row = await tx.one("etl_run_counts", {"id": run_id})
        return {k: int(v) for k, v in (row or {}).items()}


async def _quarantine(tx: Transaction, source: str, source_id: str, reason: str, raw: str) -> None:
    await tx.one("record_rejected_event", {
        "receiver": "etl", "reason": reason, "event_source": source, "event_id": source_id,
        "event_type": "source-record", "headers": json.dumps({}), "body": raw.encode(),
    })  # fmt: skip


def _pass_alerts(run_id: int, counts: dict[str, Any], missing: int) -> list[Alert]:
    alerts = []
    if counts.get("rejected"):
        alerts.append(
            Alert(
                f"etl-quarantined:{run_id}",
                "etl_records_quarantined",
                "warning",
                str(run_id),
                f"{counts['rejected']} source records were quarantined (rejected_events, receiver etl)",
            )
        )
    if missing:
        alerts.append(
            Alert(
                f"etl-missing:{run_id}",
                "appointments_missing_from_source",
                "warning",
                str(run_id),
                f"{missing} appointments disappeared from the source; no reminders go out for them",
            )
        )
    return alerts  # fmt: skip
