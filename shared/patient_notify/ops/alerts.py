"""``alerts``: the incidents a person must look at, newest sighting first."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from patient_notify.ops.session import Transactions
from patient_notify.ops.table import render_table, when
from patient_notify.redact import scrub

__all__ = ["format_json", "format_table", "register", "state"]

Row = Mapping[str, Any]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("alerts", help="open alerts")
    parser.add_argument("--all", action="store_true", help="resolved alerts too")
    parser.add_argument("--json", action="store_true", help="JSON for machines")
    parser.set_defaults(handler=command)


async def command(db: Transactions, args: argparse.Namespace, now: datetime) -> str:
    async with db.transaction() as tx:
        alerts = await tx.all("ops_alerts", {"include_resolved": args.all})
    return format_json(alerts) if args.json else format_table(alerts, include_resolved=args.all)


def state(alert: Row) -> str:
    if alert["resolved_at"]:
        return "resolved"
    return "acknowledged" if alert["acknowledged_at"] else "open"


def format_table(alerts: Sequence[Row], *, include_resolved: bool) -> str:
    if not alerts:
        return "no alerts\n" if include_resolved else "no open alerts\n"
    headers = ["id", "kind", "severity", "subject", "first seen", "last seen", "occurrences", "state"]
    rows = [
        [a["id"], a["kind"], a["severity"], _subject(a), when(a["created_at"]), when(a["last_seen_at"]),
         a["occurrences"], state(a)]
        for a in alerts
    ]  # fmt: skip
    return render_table(headers, rows)


def format_json(alerts: Sequence[Row]) -> str:
    entries = [
        {"id": a["id"], "kind": a["kind"], "severity": a["severity"], "subject": _subject(a),
         "first_seen": a["created_at"].isoformat(), "last_seen": a["last_seen_at"].isoformat(),
         "occurrences": a["occurrences"], "state": state(a),
         "resolved_at": a["resolved_at"].isoformat() if a["resolved_at"] else None}
        for a in alerts
    ]  # fmt: skip
    return json.dumps(entries, indent=2) + "\n"


def _subject(alert: Row) -> str | None:
    """An id by contract; scrubbed all the same, in case a writer ever breaks the contract."""
    return scrub(alert["subject"]) if alert["subject"] else None
