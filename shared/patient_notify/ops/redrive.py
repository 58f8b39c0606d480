"""``redrive``: send again what failed for good, or what the broker gave up on.

Gather (locked, so two operators cannot both redrive one thing) → decide (``redrive_plan``) →
act in the same transaction: new notifications with their send events in the outbox, or dead
letters re-staged in the outbox and marked redriven. The publisher sends the outbox rows at its
next drain (the scheduler's tick). ``--dry-run`` decides and rolls back.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from patient_notify.codec import new_event
from patient_notify.db import Transaction
from patient_notify.events import send_request
from patient_notify.ops.arguments import parse_since
from patient_notify.ops.errors import BadArgument, NotFound
from patient_notify.ops.masking import mask_recipient
from patient_notify.ops.redrive_plan import (
    DeadLetter,
    FailedCandidate,
    Redrive,
    Refusal,
    plan_dead_letter,
    plan_redrive,
)
from patient_notify.ops.session import Transactions
from patient_notify.outbox import stage

__all__ = ["SOURCE", "register"]

SOURCE = "/patient-notify/ops"


class _DryRun(Exception):
    """Raised inside the transaction so a dry run writes nothing."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("redrive", help="retry failed notifications, or re-send dead-lettered events")
    parser.add_argument("what", choices=["failed", "dead-letters"])
    parser.add_argument("--id", dest="ids", type=int, nargs="+", action="extend", metavar="ID", help="these only")
    parser.add_argument("--since", metavar="AGE|DATE", help="failed or dead-lettered since: 6h, 2d, 2026-11-25")
    parser.add_argument("--dry-run", action="store_true", help="show what would be done, write nothing")
    parser.set_defaults(handler=command)


async def command(db: Transactions, args: argparse.Namespace, now: datetime) -> str:
    if not args.ids and not args.since:
        raise BadArgument("redrive", "choose what: --id ID ... and/or --since AGE|DATE")
    params = {"ids": args.ids, "since": parse_since(args.since, now) if args.since else None}
    redrive = _failed if args.what == "failed" else _dead_letters
    lines: list[str] = []
    try:
        async with db.transaction() as tx:
            lines = await redrive(tx, params, now, dry_run=args.dry_run)
            if args.dry_run:
                raise _DryRun
    except _DryRun:
        lines.append("dry run: nothing written")
    return "\n".join(lines) + "\n"


async def _failed(tx: Transaction, params: dict[str, Any], now: datetime, *, dry_run: bool) -> list[str]:
    candidates = [FailedCandidate(**row) for row in await tx.all("ops_lock_redrive_candidates", params)]
    _check_found(params["ids"], [c.id for c in candidates], "notification")
    plans = [plan_redrive(c, now) for c in candidates]
    redrives = [p for p in plans if isinstance(p, Redrive)]
    created = {} if dry_run else await _create(tx, redrives)
    lines = [_failed_line(c, p, created, dry_run) for c, p in zip(candidates, plans, strict=True)]
    done = len(redrives) if dry_run else len(created)
    return [*lines, f"{done} redriven, {len(plans) - done} refused" if plans else "nothing to redrive"]


async def _create(tx: Transaction, redrives: Sequence[Redrive]) -> dict[int, int]:
    """The new notifications and their send events; original id → new id."""
    rows = await tx.all("ops_insert_redrives", {
        "ids": [r.notification_id for r in redrives], "natural_keys": [r.natural_key for r in redrives],
        "recipients": [r.recipient for r in redrives],
    })  # fmt: skip
    events = [
        new_event(send_request(row["id"], row["appointment_id"], row["channel"]), source=SOURCE, subject=str(row["id"]))
        for row in rows
    ]
    await stage(tx, events)
    return {row["redrive_of"]: row["id"] for row in rows}


def _failed_line(c: FailedCandidate, plan: Redrive | Refusal, created: dict[int, int], dry_run: bool) -> str:
    head = f"notification {c.id} ({c.kind} · {c.channel})"
    if isinstance(plan, Refusal):
        return f"{head}: refused: {plan.reason}"
    to = mask_recipient(plan.recipient)
    to += "" if plan.recipient == c.recipient else f" (was {mask_recipient(c.recipient)})"
    if dry_run:
        return f"{head}: would be redriven as {plan.natural_key} to {to}"
    if c.id not in created:
        return f"{head}: not redriven: {plan.natural_key} is already taken"
    return f"{head}: redriven as notification {created[c.id]} ({plan.natural_key}) to {to}; send event staged"


async def _dead_letters(tx: Transaction, params: dict[str, Any], now: datetime, *, dry_run: bool) -> list[str]:
    letters = [DeadLetter(**row) for row in await tx.all("ops_lock_dead_letters", params)]
    _check_found(params["ids"], [d.id for d in letters], "dead letter")
    refusals = [plan_dead_letter(d) for d in letters]
    chosen = [d.id for d, refusal in zip(letters, refusals, strict=True) if refusal is None]
    staged: dict[int, int] = {}
    if chosen and not dry_run:
        staged = {r["id"]: r["outbox_id"] for r in await tx.all("ops_restage_dead_letters", {"ids": chosen})}
    lines = [_dead_letter_line(d, r, staged, dry_run) for d, r in zip(letters, refusals, strict=True)]
    done = len(chosen) if dry_run else len(staged)
    return [*lines, f"{done} redriven, {len(letters) - done} refused" if letters else "nothing to redrive"]


def _dead_letter_line(d: DeadLetter, refusal: Refusal | None, staged: dict[int, int], dry_run: bool) -> str:
    head = f"dead letter {d.id} ({d.event_type}, event {d.event_id})"
    if refusal:
        return f"{head}: refused: {refusal.reason}"
    if dry_run:
        return f"{head}: would be re-staged in the outbox"
    if d.id not in staged:
        return f"{head}: not redriven: the outbox holds another event with this id"
    return f"{head}: re-staged as outbox row {staged[d.id]}; sent at the publisher's next drain"


def _check_found(asked: Sequence[int] | None, found: Sequence[int], what: str) -> None:
    missing = sorted(set(asked or ()) - set(found))
    if missing:
        raise NotFound(what, missing)
