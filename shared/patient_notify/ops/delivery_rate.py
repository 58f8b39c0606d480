"""``delivery-rate``: of the messages whose fate is known, how many reached the patient.

The rate is delivered / (delivered + undelivered + failed), by the UTC day a message was
created and its channel. Messages sent and awaiting a receipt, skipped, unknown or still in
flight are counted beside it, not in it: they have no verdict yet, or were never meant to go.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta

from patient_notify.ops.errors import BadArgument
from patient_notify.ops.session import Transactions
from patient_notify.ops.table import render_table

__all__ = ["DayChannel", "format_json", "format_table", "register", "total"]

_COUNTS = ("delivered", "undelivered", "failed", "awaiting_receipt", "skipped", "unknown", "in_flight")


@dataclass(frozen=True)
class DayChannel:
    day: date | None  # None: the total over the period
    channel: str
    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    awaiting_receipt: int = 0
    skipped: int = 0
    unknown: int = 0
    in_flight: int = 0

    @property
    def rate(self) -> float | None:
        settled = self.delivered + self.undelivered + self.failed
        return self.delivered / settled if settled else None


def total(rows: Sequence[DayChannel], channel: str) -> DayChannel:
    sums = {f.name: sum(getattr(r, f.name) for r in rows) for f in fields(DayChannel) if f.name in _COUNTS}
    return replace(DayChannel(None, channel), **sums)


def format_table(rows: Sequence[DayChannel], since: date, channel: str) -> str:
    title = f"delivery by day and channel since {since} (UTC); rate = delivered / (delivered + undelivered + failed)\n"
    if not rows:
        return title + "no notifications in this period\n"
    headers = ["day", "channel", *(name.replace("_", " ") for name in _COUNTS[:3]), "rate",
               *(name.replace("_", " ") for name in _COUNTS[3:])]  # fmt: skip
    body = [_cells(row) for row in [*rows, total(rows, channel)]]
    return title + render_table(headers, body, right=["rate"])


def format_json(rows: Sequence[DayChannel], since: date, channel: str) -> str:
    entries = [{**asdict(row), "day": str(row.day) if row.day else None, "rate": row.rate} for row in rows]
    summary = {**asdict(total(rows, channel)), "day": None, "rate": total(rows, channel).rate}
    return json.dumps({"since": str(since), "rows": entries, "total": summary}, indent=2) + "\n"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("delivery-rate", help="delivery rate by day and channel")
    parser.add_argument("--days", type=int, default=7, metavar="N", help="the last N UTC days, today included (7)")
    parser.add_argument("--channel", choices=["sms", "email"], help="one channel only")
    parser.add_argument("--json", action="store_true", help="JSON for machines")
    parser.set_defaults(handler=command)


async def command(db: Transactions, args: argparse.Namespace, now: datetime) -> str:
    if args.days < 1:
        raise BadArgument("--days", "must be 1 or more")
    since = now.astimezone(UTC).date() - timedelta(days=args.days - 1)
    params = {"since": datetime.combine(since, time(), UTC), "channel": args.channel}
    async with db.transaction() as tx:
        rows = [DayChannel(**row) for row in await tx.all("ops_delivery_rate", params)]
    formatted = format_json if args.json else format_table
    return formatted(rows, since, args.channel or "all")


def _cells(row: DayChannel) -> list[str | int | None]:
    rate = None if row.rate is None else f"{row.rate:.2%}"
    counts = [getattr(row, name) for name in _COUNTS]
    return [str(row.day) if row.day else "total", row.channel, *counts[:3], rate, *counts[3:]]
