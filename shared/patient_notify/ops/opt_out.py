"""``opt-out``: is this number opted out of SMS, since when and why; add or remove it by hand.

The number is shown hashed and masked only, so the output can be pasted into a ticket.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from patient_notify.ops.errors import BadArgument
from patient_notify.ops.masking import digest, mask_phone, normalise_number
from patient_notify.ops.session import Transactions
from patient_notify.ops.table import when

__all__ = ["MANUAL_SOURCE", "describe", "register"]

MANUAL_SOURCE = "manual:ops"
Action = Literal["lookup", "add", "remove"]
Row = Mapping[str, Any]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("opt-out", help="look up, add or remove an SMS opt-out")
    parser.add_argument("number", help="E.164, separators allowed: '+1 202 555 0112'")
    change = parser.add_mutually_exclusive_group()
    change.add_argument("--add", action="store_true", help=f"opt the number out (source {MANUAL_SOURCE})")
    change.add_argument("--remove", action="store_true", help="opt it back in (as a START reply would)")
    parser.set_defaults(handler=command)


async def command(db: Transactions, args: argparse.Namespace, now: datetime) -> str:
    number = normalise_number(args.number)
    if number is None:
        raise BadArgument("number", "not an E.164 phone number (+ then 7 to 15 digits)")
    async with db.transaction() as tx:
        before = await tx.one("ops_sms_opt_out", {"number": number})
        if args.add:
            await tx.run("ops_add_sms_opt_out", {"number": number, "source": MANUAL_SOURCE})
        elif args.remove:
            await tx.run("ops_remove_sms_opt_out", {"number": number})
        after = await tx.one("ops_sms_opt_out", {"number": number})
    return describe(number, "add" if args.add else "remove" if args.remove else "lookup", before, after)


def describe(number: str, action: Action, before: Row | None, after: Row | None) -> str:
    """One line: the number masked and hashed, then what is (and what changed)."""
    who = f"{mask_phone(number)} ({digest(number)})"
    return f"{who}: {_what(action, before, after)}\n"


def _what(action: Action, before: Row | None, after: Row | None) -> str:
    if action == "add" and before is None and after is not None:
        return f"opted out now (source {after['source']})"
    if action == "remove" and before is not None:
        return f"opted back in (was opted out since {when(before['since'])}, source {before['source']})"
    if action == "remove":
        return "not opted out: nothing to remove"
    prefix = "already " if action == "add" else ""
    return f"{prefix}opted out since {when(after['since'])} (source {after['source']})" if after else "not opted out"
