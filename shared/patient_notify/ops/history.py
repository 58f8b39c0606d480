"""``history``: a notification's whole story, or every notification of one appointment.

Status changes with their times and details, the provider and its message id, the fallback and
redrive links, and the provider's receipts for that message id: their statuses and times only,
never their payloads. The recipient is masked; free text is scrubbed of anything phone- or
email-shaped.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from patient_notify.ops.errors import NotFound
from patient_notify.ops.masking import mask_recipient
from patient_notify.ops.session import Transactions
from patient_notify.ops.table import EMPTY, render_table, when
from patient_notify.redact import scrub

__all__ = ["format_history", "register"]

Row = Mapping[str, Any]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("history", help="a notification's history, or every notification of an appointment")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("notification_id", nargs="?", type=int, help="a notification id")
    target.add_argument("--appointment", metavar="ID", help="every notification of this appointment")
    parser.set_defaults(handler=command)


async def command(db: Transactions, args: argparse.Namespace, now: datetime) -> str:
    ids = [] if args.notification_id is None else [args.notification_id]
    async with db.transaction() as tx:
        notifications = await tx.all("ops_notifications", {"ids": ids, "appointment_id": args.appointment})
        found = [n["id"] for n in notifications]
        history = await tx.all("ops_status_history", {"ids": found})
        message_ids = [n["provider_message_id"] for n in notifications if n["provider_message_id"]]
        receipts = await tx.all("ops_receipts", {"provider_message_ids": message_ids})
    if not notifications:
        raise _not_found(args)
    return format_history(notifications, history, receipts)


def _not_found(args: argparse.Namespace) -> NotFound:
    if args.appointment:
        return NotFound("notifications for appointment", [args.appointment])
    return NotFound("notification", [args.notification_id])


def format_history(notifications: Sequence[Row], history: Sequence[Row], receipts: Sequence[Row]) -> str:
    by_notification: defaultdict[int, list[Row]] = defaultdict(list)
    for change in history:
        by_notification[change["notification_id"]].append(change)
    by_message: defaultdict[str, list[Row]] = defaultdict(list)
    for receipt in receipts:
        by_message[receipt["provider_message_id"]].append(receipt)
    blocks = [
        _block(n, by_notification[n["id"]], by_message.get(n["provider_message_id"] or "", [])) for n in notifications
    ]
    return "\n".join(blocks)


def _block(n: Row, changes: Sequence[Row], receipts: Sequence[Row]) -> str:
    provider = f"{n['provider'] or EMPTY} · message {n['provider_message_id'] or EMPTY}"
    times = f"created {when(n['created_at'])} · sent {when(n['sent_at'])} · last receipt {when(n['receipt_at'])}"
    facts = [
        ("appointment", f"{n['appointment_id']} v{n['appointment_version']}"), ("natural key", n["natural_key"]),
        ("recipient", mask_recipient(n["recipient"])), ("provider", provider), ("attempts", str(n["attempts"])),
        ("times", times), ("links", _links(n)),
    ]  # fmt: skip
    lines = [f"notification {n['id']} · {n['kind']} · {n['channel']} · {n['status']}"]
    lines += [f"  {label:<12}  {value}" for label, value in facts]
    lines.append("  status history")
    rows = [[when(c["at"]), c["status"], scrub(c["detail"]) if c["detail"] else None] for c in changes]
    lines.append(render_table(["at", "status", "detail"], rows, indent="    ").rstrip("\n"))
    lines.append(f"  receipts for message {n['provider_message_id']}" if receipts else "  receipts      none")
    if receipts:
        rows = [[when(r["received_at"]), r["provider"], r["kind"], r["status"], _verified(r)] for r in receipts]
        lines.append(render_table(["received", "provider", "kind", "status", "verified"], rows, indent="    ").rstrip())
    return "\n".join(lines) + "\n"


def _links(n: Row) -> str:
    links = [f"fallback of #{n['fallback_of']}"] if n["fallback_of"] else []
    links += [f"fallback #{f}" for f in n["fallbacks"] or []]
    links += [f"redrive of #{n['redrive_of']}"] if n["redrive_of"] else []
    links += [f"redriven as #{n['redriven_as']}"] if n["redriven_as"] else []
    return " · ".join(links) or "none"


def _verified(receipt: Row) -> str:
    return "yes" if receipt["verified"] else f"no: {scrub(receipt['reject_reason'] or 'unverified')}"
